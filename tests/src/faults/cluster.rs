//! A local network of real `ipledger-node` processes whose links all cross [`LinkProxy`]s.

use super::proxy::{LinkFaults, LinkProxy};
use crate::get_json;
use anyhow::{bail, ensure, Context, Result};
use ipledger_genesis::{NodeConfig, P2pAddress};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node has to exit after SIGTERM before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(20);

/// One node process of a [`Cluster`].
pub struct ClusterNode {
    /// Its directory name without `node-`.
    pub name: String,
    /// Its `config.toml`.
    pub config_path: PathBuf,
    /// `http://host:port`.
    pub url: String,
    /// The running process, if any.
    child: Option<Child>,
    /// How many times it was started.
    pub starts: u32,
}

/// Four validator processes made by `ipledger-genesis local`, every ordered pair of them
/// connected through its own link proxy: a node's configured peer address `/ip4/H/tcp/P` names
/// the proxy's port P, which the node dials over UDP (consensus QUIC) and over TCP (gossip).
pub struct Cluster {
    /// The network directory.
    pub dir: PathBuf,
    /// The nodes, in directory order.
    pub nodes: Vec<ClusterNode>,
    bin: PathBuf,
    /// The proxy node `i` dials to reach node `j`, by `(i, j)`.
    proxies: BTreeMap<(usize, usize), LinkProxy>,
    agent: ureq::Agent,
}

impl Cluster {
    /// Creates the consortium in `dir` with `bin/ipledger-genesis`, rewrites every node's peers to
    /// go through link proxies, and starts nothing yet.
    pub fn create(
        dir: &Path,
        bin: &Path,
        seed: u64,
        store_cache_mib: Option<u32>,
    ) -> Result<Cluster> {
        let status = Command::new(bin.join("ipledger-genesis"))
            .args(["local", "--dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .status()
            .with_context(|| format!("running {}/ipledger-genesis", bin.display()))?;
        ensure!(status.success(), "ipledger-genesis local failed: {status}");
        let mut configs = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if let Some(name) = file_name.strip_prefix("node-") {
                let path = entry.path().join("config.toml");
                let config = NodeConfig::load(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                configs.push((name.to_owned(), path, config));
            }
        }
        ensure!(configs.len() >= 2, "a cluster needs at least two nodes");
        let listen_ports: Vec<u16> = configs
            .iter()
            .map(|(_, _, c)| c.p2p.listen.port())
            .collect();
        let mut proxies = BTreeMap::new();
        let mut nodes = Vec::new();
        for (i, (name, path, mut config)) in configs.into_iter().enumerate() {
            for peer in &mut config.p2p.peers {
                let j = listen_ports
                    .iter()
                    .position(|port| *port == peer.address.port())
                    .with_context(|| format!("{name}'s peer {} is no node", peer.address))?;
                let link_seed = seed ^ ((i as u64) << 40) ^ ((j as u64) << 32);
                let proxy = LinkProxy::start(listen_ports[j], link_seed)?;
                peer.address = P2pAddress::tcp(Ipv4Addr::LOCALHOST.into(), proxy.port);
                proxies.insert((i, j), proxy);
            }
            if let Some(cache_mib) = store_cache_mib {
                config.store.cache_mib = cache_mib;
            }
            config
                .save(&path)
                .with_context(|| format!("writing {}", path.display()))?;
            nodes.push(ClusterNode {
                name,
                url: format!("http://{}", config.http.listen),
                config_path: path,
                child: None,
                starts: 0,
            });
        }
        Ok(Cluster {
            dir: dir.to_owned(),
            nodes,
            bin: bin.to_owned(),
            proxies,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(3)))
                .build()
                .into(),
        })
    }

    /// Starts node `i` (appending its output to `node.log` beside its config).
    pub fn start(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        assert!(
            node.child.is_none(),
            "node {} is already running",
            node.name
        );
        let log_path = node.config_path.with_file_name("node.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let child = Command::new(self.bin.join("ipledger-node"))
            .arg("run")
            .arg("--config")
            .arg(&node.config_path)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting node {}", node.name))?;
        node.child = Some(child);
        node.starts += 1;
        Ok(())
    }

    /// Starts every node that is not running.
    pub fn start_all(&mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            if !self.is_running(i) {
                self.start(i)?;
            }
        }
        Ok(())
    }

    /// Whether node `i`'s process was started and not killed or stopped since (one that exited
    /// by itself counts until [`Cluster::exited_by_themselves`] reports it).
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// Nodes whose process exited without being killed: `(name, exit status)`.
    pub fn exited_by_themselves(&mut self) -> Vec<(String, String)> {
        let mut exited = Vec::new();
        for node in &mut self.nodes {
            if let Some(child) = &mut node.child {
                if let Ok(Some(status)) = child.try_wait() {
                    exited.push((node.name.clone(), status.to_string()));
                    node.child = None;
                }
            }
        }
        exited
    }

    /// `kill -9` of node `i`, waiting until the process is gone.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        let mut child = node
            .child
            .take()
            .with_context(|| format!("node {} is not running", node.name))?;
        child
            .kill()
            .with_context(|| format!("killing {}", node.name))?;
        child.wait()?;
        Ok(())
    }

    /// SIGTERM to node `i`, then SIGKILL after `STOP_DEADLINE`; waits until it is gone.
    pub fn stop(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        let Some(mut child) = node.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_DEADLINE;
        while child.try_wait()?.is_none() {
            if Instant::now() >= deadline {
                child.kill()?;
                child.wait()?;
                bail!(
                    "node {} did not stop within {STOP_DEADLINE:?} of SIGTERM",
                    node.name
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Stops every running node.
    pub fn stop_all(&mut self) -> Result<()> {
        let mut first_error = None;
        for i in 0..self.nodes.len() {
            if let Err(error) = self.stop(i) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Node `i`'s committed height, or `None` if it does not answer.
    pub fn height(&self, i: usize) -> Option<u64> {
        let url = format!("{}/v1/status", self.nodes[i].url);
        match get_json(&self.agent, &url) {
            Ok((200, answer)) => answer["height"].as_u64(),
            _ => None,
        }
    }

    /// The highest height any node answers with (0 if none answers).
    pub fn max_height(&self) -> u64 {
        (0..self.nodes.len())
            .filter_map(|i| self.height(i))
            .max()
            .unwrap_or(0)
    }

    /// Node `i`'s resident memory in KiB, if it runs.
    pub fn rss_kib(&self, i: usize) -> Option<u64> {
        let pid = self.nodes[i].child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Sets the faults of the links between `a` and `b`, both directions; fails if either has
    /// no proxy (the fault could not be injected).
    pub fn set_link(&self, a: usize, b: usize, faults: LinkFaults) -> Result<()> {
        for key in [(a, b), (b, a)] {
            let proxy = self
                .proxies
                .get(&key)
                .with_context(|| format!("no link proxy from node {} to node {}", key.0, key.1))?;
            proxy.link.set(faults);
        }
        Ok(())
    }

    /// Every link `(i, j)` with `i < j` (each stands for both directions).
    pub fn links(&self) -> Vec<(usize, usize)> {
        self.proxies
            .keys()
            .copied()
            .filter(|(i, j)| i < j)
            .collect()
    }

    /// How many datagrams the UDP proxies of `links` (both directions of each) have seen.
    pub fn datagrams(&self, links: &[(usize, usize)]) -> u64 {
        links
            .iter()
            .flat_map(|&(a, b)| [(a, b), (b, a)])
            .filter_map(|key| self.proxies.get(&key))
            .map(|proxy| {
                proxy
                    .link
                    .datagrams
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .sum()
    }

    /// Sets the faults of every link.
    pub fn set_all_links(&self, faults: LinkFaults) {
        for proxy in self.proxies.values() {
            proxy.link.set(faults);
        }
    }

    /// How many datagrams or connections the proxies dropped, duplicated, held or cut.
    pub fn link_faults_applied(&self) -> u64 {
        self.proxies
            .values()
            .map(|proxy| {
                proxy
                    .link
                    .faults_applied
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .sum()
    }

    /// Runs `ipledger-node verify-store` on node `i` (which must be stopped): re-executes its
    /// whole chain from genesis, checking hash links, certificates and state roots.
    pub fn verify_store(&self, i: usize) -> Result<String> {
        let node = &self.nodes[i];
        assert!(
            node.child.is_none(),
            "verify-store needs node {} stopped",
            node.name
        );
        let output = Command::new(self.bin.join("ipledger-node"))
            .arg("verify-store")
            .arg("--config")
            .arg(&node.config_path)
            .output()
            .with_context(|| format!("running verify-store for {}", node.name))?;
        let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        ensure!(
            output.status.success(),
            "verify-store of {} failed ({}): {stdout} {}",
            node.name,
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(stdout)
    }

    /// Stops the link proxies (after the nodes).
    pub fn shut_down(mut self) -> Result<()> {
        let stopped = self.stop_all();
        for (_, proxy) in std::mem::take(&mut self.proxies) {
            proxy.stop();
        }
        stopped
    }
}

impl Drop for Cluster {
    /// A harness that fails half-way must not leave node processes behind.
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
