//! Free ports for local networks and tests, chosen outside the kernel's ephemeral range.
//!
//! A port the OS hands out for `bind(port 0)` comes from the ephemeral range, the same range from
//! which the kernel picks the source port of every outgoing connection and of every UDP socket
//! bound to port 0 (a QUIC dial, a DNS lookup). A port chosen that way and released until its
//! node starts can be taken meanwhile by any socket on the machine; CI saw a node fail with
//! "gossip cannot listen on …/udp/42827" for that reason. Ports below (or above) the ephemeral
//! range are never handed out implicitly, so only another process choosing ports explicitly can
//! take one, and the bind check plus a random starting point make that rare.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out: below it lie well-known and registered services.
pub const CHOSEN_PORT_LOW: u16 = 10_000;
/// Fewer candidate ports than this outside the ephemeral range is an error, not a fallback to
/// the ephemeral range.
const CANDIDATES_MIN: u32 = 1_000;
/// Where the kernel publishes its ephemeral range (`low high`).
const EPHEMERAL_RANGE_FILE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
/// Linux's default ephemeral range, used where the file above does not exist.
const EPHEMERAL_RANGE_DEFAULT: (u16, u16) = (32_768, 60_999);

/// The next candidate, as an offset into the candidate ports; shared by every call in the
/// process so that a port handed out and released before its node binds it is not handed out
/// again by the next call. `u32::MAX`: not yet seeded.
static CURSOR: AtomicU32 = AtomicU32::new(u32::MAX);

/// `count` distinct ports on `host`, each free for both TCP and UDP when chosen (a node's p2p
/// port serves the consensus engine and transaction gossip, one on each), none in the kernel's
/// ephemeral range. Nothing holds them afterwards: the caller binds them soon.
pub fn free_ports(host: IpAddr, count: usize) -> io::Result<Vec<u16>> {
    let (low, high) = candidate_range(ephemeral_range())?;
    let candidates = u32::from(high) - u32::from(low) + 1;
    assert!(candidates >= CANDIDATES_MIN);
    let seed = (RandomState::new().hash_one("ports") % u64::from(candidates)) as u32;
    let _ = CURSOR.compare_exchange(u32::MAX, seed, Ordering::Relaxed, Ordering::Relaxed);
    // Hold every socket until all are chosen, so that the ports are distinct.
    let mut held = Vec::with_capacity(count);
    let mut ports = Vec::with_capacity(count);
    let mut tried = 0;
    while ports.len() < count {
        if tried == candidates {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("no {count} ports free for TCP and UDP in {low}..={high} on {host}"),
            ));
        }
        tried += 1;
        let offset = CURSOR.fetch_add(1, Ordering::Relaxed) % candidates;
        let port = low + offset as u16;
        let address = SocketAddr::new(host, port);
        let Ok(tcp) = TcpListener::bind(address) else {
            continue;
        };
        let Ok(udp) = UdpSocket::bind(address) else {
            continue;
        };
        held.push((tcp, udp));
        ports.push(port);
    }
    Ok(ports)
}

/// The kernel's ephemeral port range, inclusive.
fn ephemeral_range() -> (u16, u16) {
    let Ok(text) = std::fs::read_to_string(EPHEMERAL_RANGE_FILE) else {
        return EPHEMERAL_RANGE_DEFAULT;
    };
    let mut numbers = text.split_whitespace().map(str::parse::<u16>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(low)), Some(Ok(high))) if low <= high => (low, high),
        _ => EPHEMERAL_RANGE_DEFAULT,
    }
}

/// The ports to choose from, inclusive: the larger gap below or above the ephemeral range.
fn candidate_range((ephemeral_low, ephemeral_high): (u16, u16)) -> io::Result<(u16, u16)> {
    let below = (CHOSEN_PORT_LOW, ephemeral_low.saturating_sub(1));
    let above = (ephemeral_high.saturating_add(1), u16::MAX);
    let size = |(low, high): (u16, u16)| (u32::from(high) + 1).saturating_sub(u32::from(low));
    let best = if size(below) >= size(above) {
        below
    } else {
        above
    };
    if size(best) < CANDIDATES_MIN {
        return Err(io::Error::other(format!(
            "the ephemeral port range {ephemeral_low}-{ephemeral_high} leaves fewer than \
             {CANDIDATES_MIN} ports from {CHOSEN_PORT_LOW} to choose from"
        )));
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn candidates_avoid_the_ephemeral_range() {
        assert_eq!(candidate_range((32_768, 60_999)).unwrap(), (10_000, 32_767));
        assert_eq!(candidate_range((1_024, 50_000)).unwrap(), (50_001, 65_535));
        assert!(candidate_range((10_500, 65_000)).is_err());
    }

    #[test]
    fn ports_are_distinct_free_and_outside_the_ephemeral_range() {
        let host = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (low, high) = ephemeral_range();
        let first = free_ports(host, 8).unwrap();
        let second = free_ports(host, 8).unwrap();
        let mut all: Vec<u16> = first.iter().chain(&second).copied().collect();
        for port in &all {
            assert!(!(low..=high).contains(port), "{port} is ephemeral");
            assert!(*port >= CHOSEN_PORT_LOW);
            TcpListener::bind((host, *port)).expect("free for TCP");
            UdpSocket::bind((host, *port)).expect("free for UDP");
        }
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 16, "a port was handed out twice");
    }
}
