//! Peer-to-peer addresses: TCP libp2p multiaddrs.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A node's peer-to-peer address as a libp2p multiaddr over TCP: `/ip4/A.B.C.D/tcp/PORT`,
/// `/ip6/ADDR/tcp/PORT` or `/dns/HOST/tcp/PORT` (also `/dns4`, `/dns6`).
///
/// It is read from either that form or `host:port` (`10.0.0.5:26656`, `[::1]:26656`,
/// `bank-a.example.com:26656`), and always written as the multiaddr. The port is never 0.
/// The node parses [`P2pAddress::as_str`] with libp2p's `Multiaddr`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct P2pAddress {
    text: String,
    host: Host,
    port: u16,
}

/// The host part of a [`P2pAddress`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// An IP address (`/ip4` or `/ip6`).
    Ip(IpAddr),
    /// A DNS name, with the multiaddr protocol that named it (`dns`, `dns4` or `dns6`).
    Dns {
        /// `dns`, `dns4` or `dns6`.
        protocol: &'static str,
        /// The name.
        name: String,
    },
}

/// Why text is not a peer-to-peer address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a p2p address ({problem}); write /ip4/A.B.C.D/tcp/PORT, /ip6/ADDR/tcp/PORT, /dns/HOST/tcp/PORT or HOST:PORT")]
pub struct AddressError {
    text: String,
    problem: &'static str,
}

impl P2pAddress {
    /// The address of `ip` and `port`.
    pub fn tcp(ip: IpAddr, port: u16) -> P2pAddress {
        P2pAddress::from_parts(Host::Ip(ip), port)
    }

    fn from_parts(host: Host, port: u16) -> P2pAddress {
        let text = match &host {
            Host::Ip(IpAddr::V4(ip)) => format!("/ip4/{ip}/tcp/{port}"),
            Host::Ip(IpAddr::V6(ip)) => format!("/ip6/{ip}/tcp/{port}"),
            Host::Dns { protocol, name } => format!("/{protocol}/{name}/tcp/{port}"),
        };
        P2pAddress { text, host, port }
    }

    /// The multiaddr text, e.g. `/ip4/127.0.0.1/tcp/26656`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address to listen on for this advertised address: itself for an IP address, all
    /// IPv4 interfaces (`/ip4/0.0.0.0/tcp/PORT`) for a DNS name, which cannot be listened on.
    pub fn listen_address(&self) -> P2pAddress {
        match self.host {
            Host::Ip(_) => self.clone(),
            Host::Dns { .. } => P2pAddress::tcp(IpAddr::V4(Ipv4Addr::UNSPECIFIED), self.port),
        }
    }
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn parse_port(text: &str) -> Result<u16, &'static str> {
    match text.parse::<u16>() {
        Ok(0) => Err("port 0 is not an address"),
        Ok(port) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err("the port is not a number from 1 to 65535"),
    }
}

fn parse_multiaddr(text: &str) -> Result<P2pAddress, &'static str> {
    let parts: Vec<&str> = text.split('/').collect();
    let [empty, protocol, host, tcp, port] = parts[..] else {
        return Err("a multiaddr here has exactly the form /PROTOCOL/HOST/tcp/PORT");
    };
    if !empty.is_empty() || tcp != "tcp" {
        return Err("a multiaddr here has exactly the form /PROTOCOL/HOST/tcp/PORT");
    }
    let host = match protocol {
        "ip4" => Host::Ip(IpAddr::V4(
            host.parse::<Ipv4Addr>()
                .map_err(|_| "not an IPv4 address")?,
        )),
        "ip6" => Host::Ip(IpAddr::V6(
            host.parse::<Ipv6Addr>()
                .map_err(|_| "not an IPv6 address")?,
        )),
        "dns" | "dns4" | "dns6" => {
            if !is_dns_name(host) {
                return Err("not a DNS name");
            }
            let protocol = match protocol {
                "dns" => "dns",
                "dns4" => "dns4",
                _ => "dns6",
            };
            Host::Dns {
                protocol,
                name: host.to_ascii_lowercase(),
            }
        }
        _ => return Err("the protocol must be ip4, ip6, dns, dns4 or dns6"),
    };
    Ok(P2pAddress::from_parts(host, parse_port(port)?))
}

fn parse_host_port(text: &str) -> Result<P2pAddress, &'static str> {
    let (host, port) = text.rsplit_once(':').ok_or("no port")?;
    let port = parse_port(port)?;
    let host = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Host::Ip(IpAddr::V6(
            inner.parse().map_err(|_| "not an IPv6 address")?,
        ))
    } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
        Host::Ip(IpAddr::V4(ip))
    } else if host.contains(':') {
        return Err("an IPv6 address must be written in brackets, [ADDR]:PORT");
    } else if is_dns_name(host) {
        Host::Dns {
            protocol: "dns",
            name: host.to_ascii_lowercase(),
        }
    } else {
        return Err("the host is neither an IP address nor a DNS name");
    };
    Ok(P2pAddress::from_parts(host, port))
}

impl std::str::FromStr for P2pAddress {
    type Err = AddressError;
    fn from_str(text: &str) -> Result<P2pAddress, AddressError> {
        let parsed = if text.starts_with('/') {
            parse_multiaddr(text)
        } else {
            parse_host_port(text)
        };
        parsed.map_err(|problem| AddressError {
            text: text.chars().take(200).collect(),
            problem,
        })
    }
}

impl fmt::Display for P2pAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
impl fmt::Debug for P2pAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl Serialize for P2pAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}
impl<'de> Deserialize<'de> for P2pAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<String, AddressError> {
        text.parse::<P2pAddress>().map(|a| a.to_string())
    }

    #[test]
    fn both_forms_give_a_multiaddr() {
        assert_eq!(
            parse("127.0.0.1:26656").unwrap(),
            "/ip4/127.0.0.1/tcp/26656"
        );
        assert_eq!(parse("[::1]:9000").unwrap(), "/ip6/::1/tcp/9000");
        assert_eq!(
            parse("Bank-A.example.com:26656").unwrap(),
            "/dns/bank-a.example.com/tcp/26656"
        );
        for text in [
            "/ip4/10.0.0.5/tcp/26656",
            "/ip6/::1/tcp/1",
            "/dns4/node.example/tcp/443",
        ] {
            assert_eq!(parse(text).unwrap(), text);
        }
    }

    #[test]
    fn bad_addresses_are_refused() {
        for text in [
            "127.0.0.1",
            "127.0.0.1:0",
            "127.0.0.1:65536",
            "::1:9000",
            "/ip4/127.0.0.1/udp/9000",
            "/ip4/300.0.0.1/tcp/9000",
            "/ip4/127.0.0.1/tcp/9000/p2p",
            "bad host:1",
            "",
        ] {
            assert!(parse(text).is_err(), "{text} should be refused");
        }
    }

    #[test]
    fn dns_names_listen_on_all_interfaces() {
        let address: P2pAddress = "node.example:26656".parse().unwrap();
        assert_eq!(address.listen_address().as_str(), "/ip4/0.0.0.0/tcp/26656");
        let address: P2pAddress = "10.0.0.5:26656".parse().unwrap();
        assert_eq!(address.listen_address(), address);
    }
}
