//! Link proxies that the fault harness puts between every ordered pair of nodes.
//!
//! Node `i` reaches node `j` only through the proxy of link `(i, j)`: a UDP proxy for the
//! consensus engine's QUIC (which a node runs on the UDP port numbered like its configured
//! `/ip4/H/tcp/P` address) and a TCP proxy, on the same port number, for the transaction
//! gossip's libp2p TCP connection. The UDP proxy works per packet, in both directions: it can cut,
//! delay, drop, duplicate and reorder consensus traffic. libp2p's TCP streams are encrypted, so
//! the TCP proxy can only cut or delay a gossip connection.
//!
//! Every proxy polls its sockets with [`POLL`] timeouts, so a change of [`LinkFaults`] or a stop
//! takes effect within that time, and every thread it starts ends when it is stopped.

use anyhow::{Context, Result};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often every proxy thread looks at its link's faults and the stop flag.
pub const POLL: Duration = Duration::from_millis(50);
/// The largest datagram the UDP proxy forwards (QUIC keeps datagrams below 1,500 bytes).
const DATAGRAM_BYTES_MAX: usize = 65_535;
/// The most client addresses one UDP proxy keeps an upstream socket (and a thread) for. Every
/// start of a node is a new QUIC endpoint on new addresses, so over a long run a link sees far
/// more; past this bound a new client replaces the one heard from least recently.
const UDP_CLIENTS_MAX: usize = 64;
/// The most TCP connections one proxy forwards at once; further ones are closed at once.
const TCP_CONNECTIONS_MAX: usize = 64;
/// The most datagrams one direction of a link holds while they wait out a delay; past it, new
/// ones are dropped (as a router's full queue would).
const DELAYED_MAX: usize = 10_000;

/// What a link does to the traffic crossing it, both ways. The default is a healthy link.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkFaults {
    /// Nothing crosses: every datagram is dropped, open TCP connections are closed, new ones
    /// refused.
    pub cut: bool,
    /// Added to every UDP datagram and TCP chunk, in milliseconds.
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
    /// Datagrams that reached the UDP proxy, either way (dropped ones included), so a run can
    /// show that consensus traffic crossed a link while it was faulty.
    pub datagrams: AtomicU64,
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

/// A UDP and a TCP proxy on one port number, forwarding to a node's UDP (consensus) and TCP
/// (gossip) ports.
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

/// A datagram on its way out of the proxy.
struct Datagram {
    socket: Arc<UdpSocket>,
    /// `None`: `socket` is connected to where it goes.
    to: Option<SocketAddr>,
    bytes: Vec<u8>,
}

impl Datagram {
    fn send(&self) {
        let _ = match self.to {
            Some(to) => self.socket.send_to(&self.bytes, to),
            None => self.socket.send(&self.bytes),
        };
    }
}

/// One direction of a UDP link: its own random choices, the datagram held back to be sent after
/// the next one, and the datagrams waiting out the link's delay (in arrival order, each with the
/// time it is due, so a delay postpones every datagram without queueing them behind each other's
/// delay).
struct Lane {
    rng: ChaCha8Rng,
    held: Option<Datagram>,
    delayed: VecDeque<(Instant, Datagram)>,
}

impl Lane {
    fn new(seed: u64) -> Lane {
        Lane {
            rng: ChaCha8Rng::seed_from_u64(seed),
            held: None,
            delayed: VecDeque::new(),
        }
    }

    fn chance(&mut self, share: f64) -> bool {
        share > 0.0 && (self.rng.next_u64() as f64 / u64::MAX as f64) < share
    }

    /// A datagram arrived: drop, hold back, duplicate or delay it as the link's faults say.
    fn arrived(&mut self, datagram: Datagram, link: &Link) {
        link.datagrams.fetch_add(1, Ordering::Relaxed);
        let faults = link.get();
        if faults.cut || self.chance(faults.loss) {
            link.faults_applied.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.held.is_none() && self.chance(faults.reorder) {
            link.faults_applied.fetch_add(1, Ordering::Relaxed);
            self.held = Some(datagram);
            return;
        }
        let twice = self.chance(faults.duplicate);
        if twice {
            link.faults_applied.fetch_add(1, Ordering::Relaxed);
            let copy = Datagram {
                socket: datagram.socket.clone(),
                to: datagram.to,
                bytes: datagram.bytes.clone(),
            };
            self.forward(copy, &faults, link);
        }
        self.forward(datagram, &faults, link);
        if let Some(held) = self.held.take() {
            self.forward(held, &faults, link);
        }
    }

    /// Sends `datagram` now, or after the link's delay.
    fn forward(&mut self, datagram: Datagram, faults: &LinkFaults, link: &Link) {
        if faults.delay_ms == 0 && self.delayed.is_empty() {
            datagram.send();
        } else if self.delayed.len() >= DELAYED_MAX {
            link.faults_applied.fetch_add(1, Ordering::Relaxed);
        } else {
            let due = Instant::now() + Duration::from_millis(faults.delay_ms);
            self.delayed.push_back((due, datagram));
        }
    }

    /// Sends the delayed datagrams that are due (in order), and the held one if the link went
    /// `quiet`; a link cut meanwhile drops them.
    fn release(&mut self, link: &Link, quiet: bool) {
        let cut = link.get().cut;
        let now = Instant::now();
        while self.delayed.front().is_some_and(|(due, _)| *due <= now) {
            let (_, datagram) = self.delayed.pop_front().expect("a front");
            if cut {
                link.faults_applied.fetch_add(1, Ordering::Relaxed);
            } else {
                datagram.send();
            }
        }
        if quiet {
            if let Some(held) = self.held.take() {
                if cut {
                    link.faults_applied.fetch_add(1, Ordering::Relaxed);
                } else {
                    held.send();
                }
            }
        }
    }

    /// How long to wait for the next datagram: [`POLL`], or less if a delayed one is due sooner.
    fn wait(&self) -> Duration {
        let until_due = self.delayed.front().map_or(POLL, |(due, _)| {
            due.saturating_duration_since(Instant::now())
        });
        until_due.clamp(Duration::from_millis(1), POLL)
    }
}

/// Receives on `socket` until the proxy stops, passing each datagram and its sender to
/// `arrived`, and letting `lane` send what is due.
fn receive_loop(
    socket: &UdpSocket,
    lane: &mut Lane,
    link: &Link,
    stop: &AtomicBool,
    mut arrived: impl FnMut(&mut Lane, Vec<u8>, SocketAddr),
) {
    let mut buffer = vec![0u8; DATAGRAM_BYTES_MAX];
    while !stop.load(Ordering::Relaxed) {
        let _ = socket.set_read_timeout(Some(lane.wait()));
        let quiet = match socket.recv_from(&mut buffer) {
            Ok((read, from)) => {
                arrived(lane, buffer[..read].to_vec(), from);
                false
            }
            Err(_) => true,
        };
        lane.release(link, quiet);
    }
}

/// One client address of a UDP proxy: the socket that talks to the target for it, and the
/// thread that sends the target's answers back.
struct UdpClient {
    upstream: Arc<UdpSocket>,
    last_heard: Instant,
    stop: Arc<AtomicBool>,
    replier: JoinHandle<()>,
}

impl UdpClient {
    /// An upstream socket connected to `target` and a replier thread sending what it receives
    /// to `client` through `socket`.
    fn start(
        socket: &Arc<UdpSocket>,
        client: SocketAddr,
        target: SocketAddr,
        link: &Arc<Link>,
        seed: u64,
    ) -> Result<UdpClient> {
        let upstream = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        upstream.connect(target)?;
        let upstream = Arc::new(upstream);
        let stop = Arc::new(AtomicBool::new(false));
        let replier = spawn_named("udp-replier".into(), {
            let (socket, upstream, link, stop) =
                (socket.clone(), upstream.clone(), link.clone(), stop.clone());
            move || udp_replies(&upstream, socket, client, &link, &stop, seed)
        })?;
        Ok(UdpClient {
            upstream,
            last_heard: Instant::now(),
            stop,
            replier,
        })
    }

    /// Stops the replier thread and closes the upstream socket.
    fn end(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.replier
            .join()
            .expect("a replier thread does not panic");
    }
}

/// Forwards datagrams from clients to `target` and back, each direction applying the link's
/// faults on its own ([`Lane`]): a cut drops everything both ways, a delay, loss, duplication
/// or reordering hits the datagrams going either way.
fn udp_loop(
    socket: UdpSocket,
    target: SocketAddr,
    link: &Arc<Link>,
    stop: &Arc<AtomicBool>,
    seed: u64,
) {
    let socket = Arc::new(socket);
    let mut clients: HashMap<SocketAddr, UdpClient> = HashMap::new();
    let mut clients_started = 0u64;
    let mut lane = Lane::new(seed);
    receive_loop(
        &socket.clone(),
        &mut lane,
        link,
        stop,
        |lane, bytes, address| {
            if !clients.contains_key(&address) {
                if clients.len() >= UDP_CLIENTS_MAX {
                    let quietest = clients
                        .iter()
                        .min_by_key(|(_, client)| client.last_heard)
                        .map(|(address, _)| *address)
                        .expect("a full map has a quietest client");
                    clients.remove(&quietest).expect("just found").end();
                }
                clients_started += 1;
                let reply_seed = seed ^ clients_started.wrapping_mul(0x9E37_79B9);
                match UdpClient::start(&socket, address, target, link, reply_seed) {
                    Ok(client) => {
                        clients.insert(address, client);
                    }
                    // Out of sockets or threads: the datagram is lost, as on a busy router.
                    Err(_) => return,
                }
            }
            let client = clients.get_mut(&address).expect("inserted above");
            client.last_heard = Instant::now();
            let datagram = Datagram {
                socket: client.upstream.clone(),
                to: None,
                bytes,
            };
            lane.arrived(datagram, link);
        },
    );
    assert!(clients.len() <= UDP_CLIENTS_MAX);
    for (_, client) in clients {
        client.end();
    }
}

/// Sends what the target answers on `upstream` back to `client` through the proxy's `socket`,
/// with the link's faults.
fn udp_replies(
    upstream: &UdpSocket,
    socket: Arc<UdpSocket>,
    client: SocketAddr,
    link: &Link,
    stop: &AtomicBool,
    seed: u64,
) {
    let mut lane = Lane::new(seed);
    receive_loop(upstream, &mut lane, link, stop, |lane, bytes, _| {
        let datagram = Datagram {
            socket: socket.clone(),
            to: Some(client),
            bytes,
        };
        lane.arrived(datagram, link);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client and a server talking through a link proxy: `(client, server, proxy, the
    /// address the server sees the client at)`, after one exchange.
    fn udp_pair() -> (UdpSocket, UdpSocket, LinkProxy, SocketAddr) {
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
        (client, server, proxy, from)
    }

    /// Receives until `socket` is quiet for 300 ms.
    fn receive_all(socket: &UdpSocket) -> Vec<u32> {
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buffer = [0u8; 16];
        let mut received = Vec::new();
        while let Ok((read, _)) = socket.recv_from(&mut buffer) {
            received.push(u32::from_le_bytes(buffer[..read].try_into().unwrap()));
        }
        received
    }

    /// Found by the soak with seed 20261128: after many restarts of the nodes (each a new QUIC
    /// endpoint on new addresses), the proxies were full, dropped every new client, and the
    /// network stopped for good.
    #[test]
    fn a_udp_proxy_keeps_serving_new_clients_after_more_than_its_bound_came_and_went() {
        let (_first, server, proxy, _) = udp_pair();
        let mut buffer = [0u8; 16];
        for n in 0..UDP_CLIENTS_MAX as u32 + 8 {
            let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            client.connect((Ipv4Addr::LOCALHOST, proxy.port)).unwrap();
            client.send(&n.to_le_bytes()).unwrap();
            let (read, from) = server
                .recv_from(&mut buffer)
                .unwrap_or_else(|error| panic!("client {n} got nothing through: {error}"));
            assert_eq!(&buffer[..read], n.to_le_bytes());
            server.send_to(&n.to_le_bytes(), from).unwrap();
            let read = client.recv(&mut buffer).unwrap();
            assert_eq!(
                &buffer[..read],
                n.to_le_bytes(),
                "client {n} got its answer"
            );
        }
        proxy.stop();
    }

    #[test]
    fn a_udp_proxy_forwards_both_ways_and_a_cut_link_drops_everything_both_ways() {
        let (client, server, proxy, from) = udp_pair();
        proxy.link.set(LinkFaults {
            cut: true,
            ..LinkFaults::default()
        });
        client.send(b"lost").unwrap();
        server.send_to(b"lost", from).unwrap();
        let mut buffer = [0u8; 16];
        for socket in [&server, &client] {
            socket
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            assert!(
                socket.recv_from(&mut buffer).is_err(),
                "a cut link forwards nothing either way"
            );
        }
        assert_eq!(proxy.link.faults_applied.load(Ordering::Relaxed), 2);
        assert_eq!(proxy.link.datagrams.load(Ordering::Relaxed), 4);
        proxy.stop();
    }

    #[test]
    fn a_slow_udp_link_delays_every_datagram_once_without_queueing_them_both_ways() {
        let (client, server, proxy, from) = udp_pair();
        let delay = Duration::from_millis(200);
        proxy.link.set(LinkFaults {
            delay_ms: delay.as_millis() as u64,
            ..LinkFaults::default()
        });
        for (sender, receiver, to) in [(&client, &server, None), (&server, &client, Some(from))] {
            let sent = Instant::now();
            for number in 0u32..50 {
                match to {
                    None => sender.send(&number.to_le_bytes()).unwrap(),
                    Some(to) => sender.send_to(&number.to_le_bytes(), to).unwrap(),
                };
            }
            let mut buffer = [0u8; 16];
            receiver
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            receiver.recv_from(&mut buffer).unwrap();
            let first = sent.elapsed();
            let rest = receive_all(receiver);
            let last = sent.elapsed() - Duration::from_millis(300);
            assert!(first >= delay, "the first datagram came after {first:?}");
            assert_eq!(rest, (1..50).collect::<Vec<u32>>(), "all of them, in order");
            assert!(
                last < 4 * delay,
                "fifty datagrams delayed by {delay:?} took {last:?}: each one waited once"
            );
        }
        proxy.stop();
    }

    #[test]
    fn a_lossy_udp_link_drops_duplicates_and_reorders_both_ways() {
        let (client, server, proxy, from) = udp_pair();
        proxy.link.set(LinkFaults {
            loss: 0.3,
            duplicate: 0.2,
            reorder: 0.2,
            ..LinkFaults::default()
        });
        for (sender, receiver, to) in [(&client, &server, None), (&server, &client, Some(from))] {
            for number in 0u32..400 {
                match to {
                    None => sender.send(&number.to_le_bytes()).unwrap(),
                    Some(to) => sender.send_to(&number.to_le_bytes(), to).unwrap(),
                };
                // Keep below the socket buffers, so every loss is the proxy's.
                std::thread::sleep(Duration::from_micros(200));
            }
            let received = receive_all(receiver);
            let mut distinct = received.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert!(
                distinct.len() < 360,
                "some lost: {} of 400 came",
                distinct.len()
            );
            assert!(distinct.len() > 200, "most came: {}", distinct.len());
            assert!(received.len() > distinct.len(), "some came twice");
            assert!(
                received.windows(2).any(|pair| pair[0] > pair[1]),
                "some came out of order"
            );
        }
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
