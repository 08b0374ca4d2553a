//! Nodes as the operator runs them: `ipledger-node run` as a child process, its HTTP API over a
//! plain TCP socket, a local network made by `ipledger-genesis local`, and a size-limited tmpfs.

use ipledger_genesis::{create_local, KeyFile, LocalNetwork, LocalOptions, NodeConfig};
use ledger_core::crypto::Digest;
use ledger_core::genesis::Genesis;
use ledger_core::tx::{Action, SignedTx, TxBody};
use ledger_core::types::EvidenceKind;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a node process may take to start, reach a height, or exit. Generous: CI machines
/// are slow and loaded, and every wait polls a condition.
pub const PROCESS_DEADLINE: Duration = Duration::from_secs(180);
/// How long one HTTP request to a node may take (a `?wait=true` submission asks for less).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a condition on a node is polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A local network of `validators` nodes (fresh keys, ports from the OS) under `dir`, with every
/// config loaded.
pub fn local_network(dir: &Path, validators: usize) -> (LocalNetwork, Vec<NodeConfig>) {
    let mut options = LocalOptions::new(dir.join("net"));
    options.validators = validators;
    let local = create_local(&options).expect("ipledger-genesis local");
    let configs = local
        .nodes
        .iter()
        .map(|node| NodeConfig::load(&node.config_path).expect("config loads"))
        .collect();
    (local, configs)
}

/// Points a node's config at another data directory and saves it.
pub fn set_data_dir(config_path: &Path, config: &mut NodeConfig, data_dir: &Path) {
    config.chain.data_dir = data_dir.to_owned();
    config.save(config_path).expect("config saves");
}

/// An evidence attestation by the court of a local network, unique per call, valid until
/// `valid_until`.
pub fn court_attestation(
    genesis: &Genesis,
    court: &KeyFile,
    what: &str,
    valid_until: u64,
) -> SignedTx {
    static SALT: AtomicU64 = AtomicU64::new(0);
    let mut salt = [0u8; 16];
    salt[..8].copy_from_slice(&SALT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    salt[8..].copy_from_slice(&std::process::id().to_le_bytes().repeat(2));
    let mut tx = SignedTx::unsigned(TxBody {
        chain_id: genesis.chain_id.clone(),
        salt,
        valid_until,
        action: Action::AttestEvidence {
            attestor: "court".into(),
            evidence_hash: Digest::sha256(what.as_bytes()),
            kind: EvidenceKind::Document,
            case_ref: Some(format!("(2026) storage test {what}")),
            related_asset: None,
        },
    });
    tx.sign(court.signing_key());
    tx
}

/// One HTTP/1.1 request with `Connection: close`; the status code and the JSON body (`Null` if
/// the body is not JSON).
pub fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of the response head"))?;
    let head = String::from_utf8_lossy(&answer[..split]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad("no status code"))?;
    let mut body = answer[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

fn dechunk(mut bytes: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = bytes.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&bytes[..line]).ok()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(bytes.get(line + 2..line + 2 + size)?);
        bytes = bytes.get(line + 4 + size..)?;
    }
}

/// `ipledger-node run --config <config>` as a child process, its stdout (the log) and stderr
/// (where a failure is reported) written to files. Killed on drop.
pub struct NodeProcess {
    child: Child,
    /// Its HTTP API.
    pub http: SocketAddr,
    /// Its log.
    pub stdout: PathBuf,
    /// Its error output.
    pub stderr: PathBuf,
}

impl NodeProcess {
    /// Starts the node of `config_path`; `run` names the log files, which go in `logs`.
    pub fn start(config_path: &Path, config: &NodeConfig, logs: &Path, run: &str) -> NodeProcess {
        std::fs::create_dir_all(logs).expect("log directory");
        let stdout = logs.join(format!("{run}.stdout"));
        let stderr = logs.join(format!("{run}.stderr"));
        let child = Command::new(env!("CARGO_BIN_EXE_ipledger-node"))
            .arg("run")
            .arg("--config")
            .arg(config_path)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(
                std::fs::File::create(&stdout).expect("stdout file"),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(&stderr).expect("stderr file"),
            ))
            .spawn()
            .expect("ipledger-node starts");
        NodeProcess {
            child,
            http: config.http.listen,
            stdout,
            stderr,
        }
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The last lines of its log, for a failed assertion.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("child status")
    }

    /// The committed height its API reports, if it answers.
    pub fn height(&self) -> Option<u64> {
        match http(self.http, "GET", "/v1/status", None, Duration::from_secs(5)) {
            Ok((200, answer)) => answer["height"].as_u64(),
            _ => None,
        }
    }

    /// Waits until its API reports at least `height`; fails if it exits first.
    pub fn wait_for_height(&mut self, height: u64) -> u64 {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                panic!(
                    "the node exited ({status}) before height {height}: {}\n{}",
                    self.stderr(),
                    self.log_tail()
                );
            }
            if let Some(reached) = self.height().filter(|h| *h >= height) {
                return reached;
            }
            assert!(
                started.elapsed() < PROCESS_DEADLINE,
                "the node did not reach height {height} (at {:?}):\n{}",
                self.height(),
                self.log_tail()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits for it to exit by itself.
    pub fn wait_for_exit(&mut self) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                started.elapsed() < PROCESS_DEADLINE,
                "the node did not exit:\n{}",
                self.log_tail()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits for it to exit by itself; fails as soon as its API answers (it started instead).
    pub fn wait_for_exit_without_serving(&mut self) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            if let Some(height) = self.height() {
                panic!(
                    "the node started and serves height {height}:\n{}",
                    self.log_tail()
                );
            }
            assert!(
                started.elapsed() < PROCESS_DEADLINE,
                "the node did not exit:\n{}",
                self.log_tail()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// SIGKILL, and reaps it.
    pub fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child.wait().expect("reap the node")
    }

    /// SIGTERM (a graceful stop), and waits for it to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(sent.success(), "kill -TERM failed");
        self.wait_for_exit()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tmpfs of a fixed size mounted at a directory, unmounted on drop (also when a test panics).
pub struct Tmpfs {
    /// The mount point.
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_mib` MiB at `path` (created if missing). Fails the test, never
    /// skips it, when mounting is impossible: the test needs root (or CAP_SYS_ADMIN) and mount(8).
    pub fn mount(path: &Path, size_mib: u64) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mount point");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(path)
            .output();
        match output {
            Ok(output) if output.status.success() => Tmpfs {
                path: path.to_owned(),
            },
            Ok(output) => panic!(
                "mounting a {size_mib} MiB tmpfs at {} failed ({}): {}; this test needs root \
                 (CAP_SYS_ADMIN) to give a node a small file system",
                path.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            Err(error) => panic!("running mount(8) failed: {error}; this test needs it, as root"),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|status| status.success());
        if !unmounted {
            // Something still holds a file there (a node that did not die yet): detach it now,
            // the kernel frees it when the last file closes.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Fills the file system holding `dir` with a file of zeros until writes fail for lack of space,
/// then shrinks it to leave `headroom` bytes free. Returns the file.
pub fn fill_leaving(dir: &Path, headroom: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler file");
    let mut written: u64 = 0;
    for chunk in [1 << 20, 4096] {
        let zeros = vec![0u8; chunk];
        loop {
            match file.write(&zeros) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(error) if error.kind() == std::io::ErrorKind::StorageFull => break,
                Err(error) => panic!("filling {}: {error}", dir.display()),
            }
        }
    }
    file.set_len(written.saturating_sub(headroom))
        .expect("shrink the filler");
    file.sync_all().expect("sync the filler");
    path
}
