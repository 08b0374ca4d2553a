//! The local sockets behind the node's libp2p addresses. The consensus engine (QUIC, UDP) and
//! transaction gossip (TCP) listen on one port number; a node stopped in a process must wait until
//! its sockets are released before it can start again on that port.

use libp2p::multiaddr::{Multiaddr, Protocol};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::time::Duration;
use tracing::warn;

/// How often a stopped listener's port is tried again.
const PORT_FREE_POLL: Duration = Duration::from_millis(20);

/// Which socket a port is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// A TCP listener (gossip).
    Tcp,
    /// A UDP socket (the engine's QUIC).
    Udp,
}

/// The IP socket address and transport of an `/ip4|ip6/…/tcp|udp/…` multiaddr; `None` for a DNS
/// name or an address without a port.
pub(crate) fn socket_address(address: &Multiaddr) -> Option<(SocketAddr, Transport)> {
    let mut ip = None;
    let mut port = None;
    for protocol in address.iter() {
        match protocol {
            Protocol::Ip4(v4) => ip = Some(IpAddr::V4(v4)),
            Protocol::Ip6(v6) => ip = Some(IpAddr::V6(v6)),
            Protocol::Tcp(tcp) => port = Some((tcp, Transport::Tcp)),
            Protocol::Udp(udp) => port = Some((udp, Transport::Udp)),
            _ => {}
        }
    }
    let (port, transport) = port?;
    Some((SocketAddr::new(ip?, port), transport))
}

/// Waits up to `timeout` until `address`'s port can be bound again; logs a warning naming `what`
/// if it cannot. std's TCP listener sets SO_REUSEADDR but not SO_REUSEPORT, which libp2p's
/// listener sets: it binds only once no listener holds the port, and closing connections do not
/// count.
pub(crate) async fn wait_until_free(address: &Multiaddr, timeout: Duration, what: &str) {
    let Some((socket, transport)) = socket_address(address) else {
        return;
    };
    let started = tokio::time::Instant::now();
    let free = || match transport {
        Transport::Tcp => TcpListener::bind(socket).is_ok(),
        Transport::Udp => UdpSocket::bind(socket).is_ok(),
    };
    while !free() {
        if started.elapsed() > timeout {
            warn!(%socket, "{what} is still open after stopping");
            return;
        }
        tokio::time::sleep(PORT_FREE_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addresses_of_ip_addresses_only() {
        let tcp: Multiaddr = "/ip4/10.0.0.2/tcp/26656".parse().unwrap();
        assert_eq!(
            socket_address(&tcp),
            Some(("10.0.0.2:26656".parse().unwrap(), Transport::Tcp))
        );
        let quic: Multiaddr = "/ip6/::1/udp/4000/quic-v1".parse().unwrap();
        assert_eq!(
            socket_address(&quic),
            Some(("[::1]:4000".parse().unwrap(), Transport::Udp))
        );
        let dns: Multiaddr = "/dns/bank-a.example/tcp/4000".parse().unwrap();
        assert_eq!(socket_address(&dns), None);
    }

    #[tokio::test]
    async fn waiting_ends_once_the_port_is_free() {
        let held = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let address: Multiaddr = format!("/ip4/127.0.0.1/udp/{port}/quic-v1")
            .parse()
            .unwrap();
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            drop(held);
        });
        wait_until_free(&address, Duration::from_secs(30), "the test socket").await;
        UdpSocket::bind(("127.0.0.1", port)).expect("free once the wait ends");
        release.await.unwrap();
    }
}
