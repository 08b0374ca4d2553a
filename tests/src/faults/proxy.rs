//! Link proxies that the fault harness puts between every ordered pair of nodes.
//!
//! Node `i` reaches node `j` only through the proxy of link `(i, j)`: a TCP proxy for the
//! consensus engine's libp2p connection and a UDP proxy, on the same port number, for the
//! transaction gossip's QUIC (which dials the UDP port numbered like the peer's TCP port).
//! libp2p's streams are encrypted, so the TCP proxy can only cut or delay a connection; the UDP
//! proxy works per packet and can also drop, duplicate and reorder.
//!
//! Every proxy polls its sockets with [`POLL`] timeouts, so a change of [`LinkFaults`] or a stop
//! takes effect within that time, and every thread it starts ends when it is stopped.

use anyhow::{Context, Result};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often every proxy thread looks at its link's faults and the stop flag.
pub const POLL: Duration = Duration::from_millis(50);
/// The largest datagram the UDP proxy forwards (QUIC keeps datagrams below 1,500 bytes).
const DATAGRAM_BYTES_MAX: usize = 65_535;
/// The most client addresses one UDP proxy keeps an upstream socket for. A QUIC endpoint uses
/// one address, so this is far above what a link sees; past it new clients are dropped.
const UDP_CLIENTS_MAX: usize = 64;
/// The most TCP connections one proxy forwards at once; further ones are closed at once.
const TCP_CONNECTIONS_MAX: usize = 64;

/// What a link does to the traffic crossing it. The default is a healthy link.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkFaults {
    /// Nothing crosses; open TCP connections are closed.
    pub cut: bool,
    /// Added to every TCP chunk and UDP datagram, in milliseconds.
    pub delay_ms: u64,
    /// Share of UDP datagrams dropped.
    pub loss: f64,
    /// Share of UDP datagrams sent twice.
    pub duplicate: f64,
    /// Share of UDP datagrams held back and sent after the next one.
    pub reorder: f64,
}

/// The faults of one link, shared by its TCP and UDP proxies and the harness.
#[derive(Default)]
pub struct Link {
    faults: Mutex<LinkFaults>,
    /// Datagrams dropped, duplicated or reordered, and TCP connections cut, so a run can show
    /// that the faults it asked for happened.
    pub faults_applied: AtomicU64,
}

impl Link {
    /// Sets the link's faults.
    pub fn set(&self, faults: LinkFaults) {
        *self.faults.lock().expect("link lock") = faults;
    }

    /// The link's faults now.
    pub fn get(&self) -> LinkFaults {
        *self.faults.lock().expect("link lock")
    }
}

/// A TCP and a UDP proxy on one port number, forwarding to a node's TCP and UDP ports.
pub struct LinkProxy {
    /// The port both proxies listen on (127.0.0.1).
    pub port: u16,
    /// The link's faults.
    pub link: Arc<Link>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl LinkProxy {
    /// Starts proxies on a port free for both TCP and UDP, forwarding to `target_port` on
    /// 127.0.0.1; `seed` fixes the UDP proxy's per-packet choices.
    pub fn start(target_port: u16, seed: u64) -> Result<LinkProxy> {
        let (tcp, udp) = bind_pair()?;
        let port = tcp.local_addr()?.port();
        let link = Arc::new(Link::default());
        let stop = Arc::new(AtomicBool::new(false));
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, target_port));
        let threads = vec![
            spawn_named(format!("tcp-proxy-{port}"), {
                let (link, stop) = (link.clone(), stop.clone());
                move || tcp_accept_loop(tcp, target, &link, &stop)
            })?,
            spawn_named(format!("udp-proxy-{port}"), {
                let (link, stop) = (link.clone(), stop.clone());
                move || udp_loop(udp, target, &link, &stop, seed)
            })?,
        ];
        Ok(LinkProxy {
            port,
            link,
            stop,
            threads,
        })
    }

    /// Stops both proxies and waits for their threads.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().expect("a proxy thread does not panic");
        }
    }
}

fn spawn_named(name: String, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(body)
        .with_context(|| format!("starting thread {name}"))
}

/// A TCP listener and a UDP socket bound to the same free port on 127.0.0.1.
fn bind_pair() -> Result<(TcpListener, UdpSocket)> {
    const ATTEMPTS: usize = 100;
    for _ in 0..ATTEMPTS {
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding a TCP port")?;
        let port = tcp.local_addr()?.port();
        if let Ok(udp) = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)) {
            tcp.set_nonblocking(true)?;
            udp.set_read_timeout(Some(POLL))?;
            return Ok((tcp, udp));
        }
    }
    anyhow::bail!("no port free for both TCP and UDP after {ATTEMPTS} attempts")
}

fn tcp_accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    link: &Arc<Link>,
    stop: &Arc<AtomicBool>,
) {
    let mut pumps: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        pumps.retain(|pump| !pump.is_finished());
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(POLL);
                continue;
            }
            Err(_) => continue,
        };
        // Dropping the socket closes it: a cut link refuses, like an unplugged cable would.
        if link.get().cut || pumps.len() >= 2 * TCP_CONNECTIONS_MAX {
            continue;
        }
        let Ok(upstream) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
            continue;
        };
        for (from, to) in [(&client, &upstream), (&upstream, &client)] {
            let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                continue;
            };
            let (link, stop) = (link.clone(), stop.clone());
            if let Ok(pump) = std::thread::Builder::new()
                .name("tcp-pump".into())
                .spawn(move || tcp_pump(from, to, &link, &stop))
            {
                pumps.push(pump);
            }
        }
    }
    for pump in pumps {
        pump.join().expect("a pump thread does not panic");
    }
}

/// Copies `from` to `to` until either closes, the link is cut or the proxy stops.
fn tcp_pump(mut from: TcpStream, mut to: TcpStream, link: &Link, stop: &AtomicBool) {
    let _ = from.set_read_timeout(Some(POLL));
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let faults = link.get();
        if faults.cut {
            link.faults_applied.fetch_add(1, Ordering::Relaxed);
            break;
        }
        let read = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                continue
            }
            Err(_) => break,
        };
        if faults.delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(faults.delay_ms));
        }
        if to.write_all(&buffer[..read]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Forwards datagrams from clients to `target` and back, applying the link's faults to the
/// client → target direction (each direction of a node pair has its own link proxy).
fn udp_loop(
    socket: UdpSocket,
    target: SocketAddr,
    link: &Arc<Link>,
    stop: &Arc<AtomicBool>,
    seed: u64,
) {
    let socket = Arc::new(socket);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut repliers: Vec<JoinHandle<()>> = Vec::new();
    let mut held: Option<(Arc<UdpSocket>, Vec<u8>)> = None;
    let mut buffer = vec![0u8; DATAGRAM_BYTES_MAX];
    let chance = |rng: &mut ChaCha8Rng, share: f64| {
        share > 0.0 && (rng.next_u64() as f64 / u64::MAX as f64) < share
    };
    while !stop.load(Ordering::Relaxed) {
        let (read, client) = match socket.recv_from(&mut buffer) {
            Ok(received) => received,
            Err(_) => {
                // Quiet link: let a held datagram go rather than keep it forever.
                if let Some((upstream, datagram)) = held.take() {
                    let _ = upstream.send(&datagram);
                }
                continue;
            }
        };
        let upstream = match upstreams.get(&client) {
            Some(upstream) => upstream.clone(),
            None if upstreams.len() < UDP_CLIENTS_MAX => {
                let Ok(upstream) = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)) else {
                    continue;
                };
                if upstream.connect(target).is_err()
                    || upstream.set_read_timeout(Some(POLL)).is_err()
                {
                    continue;
                }
                let upstream = Arc::new(upstream);
                let (reply_socket, reply_from) = (socket.clone(), upstream.clone());
                let (link, stop) = (link.clone(), stop.clone());
                if let Ok(replier) = std::thread::Builder::new()
                    .name("udp-replier".into())
                    .spawn(move || udp_replies(&reply_from, &reply_socket, client, &link, &stop))
                {
                    repliers.push(replier);
                }
                upstreams.insert(client, upstream.clone());
                upstream
            }
            None => continue,
        };
        let faults = link.get();
        let datagram = buffer[..read].to_vec();
        if faults.cut || chance(&mut rng, faults.loss) {
            link.faults_applied.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if faults.delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(faults.delay_ms));
        }
        if held.is_none() && chance(&mut rng, faults.reorder) {
            link.faults_applied.fetch_add(1, Ordering::Relaxed);
            held = Some((upstream, datagram));
            continue;
        }
        let _ = upstream.send(&datagram);
        if chance(&mut rng, faults.duplicate) {
            link.faults_applied.fetch_add(1, Ordering::Relaxed);
            let _ = upstream.send(&datagram);
        }
        if let Some((held_upstream, held_datagram)) = held.take() {
            let _ = held_upstream.send(&held_datagram);
        }
    }
    for replier in repliers {
        replier.join().expect("a replier thread does not panic");
    }
}

/// Sends what the target answers on `upstream` back to `client`; a cut link drops it.
fn udp_replies(
    upstream: &UdpSocket,
    socket: &UdpSocket,
    client: SocketAddr,
    link: &Link,
    stop: &AtomicBool,
) {
    let mut buffer = vec![0u8; DATAGRAM_BYTES_MAX];
    while !stop.load(Ordering::Relaxed) {
        let Ok(read) = upstream.recv(&mut buffer) else {
            continue;
        };
        if link.get().cut {
            continue;
        }
        let _ = socket.send_to(&buffer[..read], client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_udp_proxy_forwards_both_ways_and_a_cut_link_drops_everything() {
        let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let proxy = LinkProxy::start(server.local_addr().unwrap().port(), 7).unwrap();
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client.connect((Ipv4Addr::LOCALHOST, proxy.port)).unwrap();
        let mut buffer = [0u8; 16];

        client.send(b"ping").unwrap();
        let (read, from) = server.recv_from(&mut buffer).unwrap();
        assert_eq!(&buffer[..read], b"ping");
        server.send_to(b"pong", from).unwrap();
        let read = client.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..read], b"pong");

        proxy.link.set(LinkFaults {
            cut: true,
            ..LinkFaults::default()
        });
        client.send(b"lost").unwrap();
        server
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert!(
            server.recv_from(&mut buffer).is_err(),
            "a cut link forwards nothing"
        );
        assert!(proxy.link.faults_applied.load(Ordering::Relaxed) >= 1);
        proxy.stop();
    }

    #[test]
    fn a_tcp_proxy_forwards_and_a_cut_closes_the_connection_and_refuses_new_ones() {
        let server = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let proxy = LinkProxy::start(server.local_addr().unwrap().port(), 7).unwrap();
        let mut client = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port)).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let (mut accepted, _) = server.accept().unwrap();
        client.write_all(b"hello").unwrap();
        let mut buffer = [0u8; 5];
        accepted.read_exact(&mut buffer).unwrap();
        assert_eq!(&buffer, b"hello");

        proxy.link.set(LinkFaults {
            cut: true,
            ..LinkFaults::default()
        });
        // The pumps notice the cut within POLL and close both sides.
        assert_eq!(
            client.read(&mut buffer).unwrap_or(0),
            0,
            "the cut closes the client"
        );
        let mut refused = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port)).unwrap();
        refused
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(
            refused.read(&mut buffer).unwrap_or(0),
            0,
            "a cut link refuses"
        );
        proxy.stop();
    }
}
