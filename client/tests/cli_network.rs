//! Every `ipledger` command end to end: the real binary against four validators started in this
//! process from a directory made by `ipledger-genesis local` (fresh keys, ports from the OS),
//! each node started from its `config.toml` as `ipledger-node run` starts it. Each refusal of the
//! demo is checked by its rule code and exit code 1.
//!
//! One network per test binary at a time: the tests that start one hold [`NETWORK`].

use ipledger_genesis::{create_local, LocalOptions, NodeConfig};
use ipledger_node::service::start_from_config;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Serialises the tests that start a network (Malachite's metrics registry is process-global,
/// and two networks would compete for two cores).
static NETWORK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The patent the flows record and pledge.
const PATENT: &str = "patent:CNIPA:ZL202110000001.X";
/// How long a node may take to reach a height.
const HEIGHT_DEADLINE: Duration = Duration::from_secs(120);

/// Runs the `ipledger` binary against one node of the network.
struct Cli {
    genesis: PathBuf,
    node: String,
    work: PathBuf,
    keys: PathBuf,
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Ran {
        let out = Command::new(env!("CARGO_BIN_EXE_ipledger"))
            .arg("--node")
            .arg(&self.node)
            .arg("--genesis")
            .arg(&self.genesis)
            .args(args)
            .current_dir(&self.work)
            .output()
            .expect("the binary runs");
        Ran {
            code: out.status.code().expect("exited"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs with `--json`, requires exit 0, returns the JSON.
    fn ok(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let ran = self.run(&all);
        assert_eq!(
            ran.code, 0,
            "ipledger {args:?}: {}{}",
            ran.stdout, ran.stderr
        );
        let json: Value = serde_json::from_str(&ran.stdout).expect("one JSON object");
        assert_eq!(json["ok"], true, "{json}");
        json
    }

    /// Requires a refusal by the ledger with `code`: exit 1 and the code in the JSON and on stderr.
    fn refused(&self, code: &str, args: &[&str]) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let ran = self.run(&all);
        assert_eq!(
            ran.code, 1,
            "ipledger {args:?}: {}{}",
            ran.stdout, ran.stderr
        );
        let json: Value = serde_json::from_str(&ran.stdout).expect("one JSON object");
        assert_eq!(json["error"]["code"], code, "{json}");
        assert!(ran.stderr.contains(code), "{}", ran.stderr);
    }

    /// Requires exit `code` without `--json` (usage, unreachable, verification).
    fn fails(&self, code: i32, args: &[&str]) -> String {
        let ran = self.run(args);
        assert_eq!(
            ran.code, code,
            "ipledger {args:?}: {}{}",
            ran.stdout, ran.stderr
        );
        ran.stderr
    }

    fn key(&self, org: &str) -> String {
        self.keys.join(format!("{org}.key")).display().to_string()
    }

    fn path(&self, name: &str) -> String {
        self.work.join(name).display().to_string()
    }
}

fn wait_for_height(cli: &Cli, height: u64) {
    let deadline = Instant::now() + HEIGHT_DEADLINE;
    loop {
        let ran = cli.run(&["--json", "status"]);
        if ran.code == 0 {
            let json: Value = serde_json::from_str(&ran.stdout).expect("JSON");
            if json["status"]["height"].as_u64().unwrap_or(0) >= height {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no height {height} within {HEIGHT_DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn json_file(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_command_works_against_a_four_validator_network() {
    let _network = NETWORK.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let net = dir.path().join("net");
    let local = create_local(&LocalOptions::new(&net)).expect("local network");
    let mut nodes = Vec::new();
    for node in &local.nodes {
        let config = NodeConfig::load(&node.config_path).expect("config loads");
        nodes.push(start_from_config(&config).await.expect("node starts"));
    }
    let work = dir.path().join("users");
    std::fs::create_dir_all(&work).expect("work dir");
    let cli = Cli {
        genesis: local.genesis_path.clone(),
        node: format!("http://{}", local.nodes[0].http),
        work,
        keys: net.join("keys"),
    };
    let others: Vec<String> = local.nodes[1..]
        .iter()
        .map(|n| format!("http://{}", n.http))
        .collect();
    let flows = tokio::task::spawn_blocking(move || {
        wait_for_height(&cli, 1);
        users_flows(&cli);
        for url in others {
            let other = Cli {
                node: url,
                genesis: cli.genesis.clone(),
                work: cli.work.clone(),
                keys: cli.keys.clone(),
            };
            let status = other.ok(&["status"]);
            assert!(status["certified"]["height"].as_u64().is_some(), "{status}");
        }
    })
    .await;
    for running in nodes {
        running.stop().await.expect("node stops cleanly");
    }
    flows.expect("every command behaves as the rules say");
}

/// What the stages of the flows share.
struct Flow<'a> {
    cli: &'a Cli,
    tc: String,
    li: String,
    song: String,
    work: String,
    pledge_a_id: String,
    pledge_b_id: String,
}

fn users_flows(cli: &Cli) {
    let mut flow = Flow {
        cli,
        tc: cli.key("trading-center"),
        li: cli.path("li.key"),
        song: cli.path("song.flac"),
        work: String::new(),
        pledge_a_id: String::new(),
        pledge_b_id: String::new(),
    };
    keys_and_assets(&mut flow);
    pledges_and_their_refusals(&mut flow);
    evidence_verified_offline(&flow);
    court_orders_and_enforcement(&flow);
    proven_lists(&flow);
    governance_and_drafts(&flow);
}

/// Keys (0600, the secret never printed), enrolment, a work and a patent.
fn keys_and_assets(flow: &mut Flow) {
    let cli = flow.cli;
    let tc = flow.tc.clone();
    let li = flow.li.clone();
    // Keys: 0600, the public key shown, the secret never printed.
    let created = cli.ok(&["keys", "create", &li]);
    let public = created["public_key"]
        .as_str()
        .expect("public key")
        .to_owned();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&li).expect("key").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let secret = json_file(&li)["secret_seed_hex"]
        .as_str()
        .expect("seed")
        .to_owned();
    let shown = cli.run(&["keys", "show", &li]);
    assert_eq!(shown.stdout.trim(), public);
    assert!(!shown.stdout.contains(&secret) && !created.to_string().contains(&secret));
    cli.fails(2, &["keys", "create", &li]); // never overwritten

    // Enrolment, a work, a patent.
    std::fs::write(cli.path("id.jpg"), b"ID card scan").expect("write");
    cli.ok(&[
        "party",
        "enroll",
        "--party",
        "holder-li",
        "--name",
        "Li Wei",
        "--id-document",
        &cli.path("id.jpg"),
        "--public-key",
        &public,
        "--key",
        &tc,
        "--key",
        &li,
    ]);
    let song = cli.path("song.flac");
    std::fs::write(&song, vec![7u8; 3 * 1024 * 1024]).expect("write");
    let registered = cli.ok(&[
        "work",
        "register",
        &song,
        "--title",
        "Jinli Street",
        "--kind",
        "music",
        "--author",
        "Li Wei",
        "--key",
        &li,
    ]);
    let work = registered["asset"].as_str().expect("asset").to_owned();
    assert!(
        Path::new(&format!("{song}.receipt.json")).exists(),
        "the receipt is saved beside the work"
    );
    cli.ok(&[
        "asset",
        "record",
        "--kind",
        "patent",
        "--office",
        "CNIPA",
        "--number",
        "ZL202110000001.X",
        "--title",
        "Watermark",
        "--owner",
        "holder-li",
        "--key",
        &tc,
        "--key",
        &li,
    ]);
    let shown = cli.ok(&["work", "show", "--file", &song]);
    assert_eq!(shown["record"]["owner"], "holder-li");
    assert!(shown["proven_height"].as_u64().unwrap() >= registered["height"].as_u64().unwrap());

    flow.work = work;
}

/// Bank A's first-rank pledge (draft, value, sign x3, submit), the refusals of the demo.
fn pledges_and_their_refusals(flow: &mut Flow) {
    let cli = flow.cli;
    let tc = flow.tc.clone();
    let li = flow.li.clone();
    let song = flow.song.clone();
    let work = flow.work.clone();
    // Bank A's first-rank pledge: draft, value, sign x3, submit.
    let pledge_a = cli.path("pledge-a.json");
    cli.ok(&[
        "pledge",
        "draft",
        "--pledgor",
        "holder-li",
        "--bank",
        "bank-a",
        "--asset",
        &work,
        "--asset",
        PATENT,
        "--amount",
        "3000000",
        "--maturity",
        "2027-06-30",
        "--first-rank",
        "--out",
        &pledge_a,
    ]);
    cli.fails(2, &["pledge", "submit", &pledge_a]); // unsigned
    std::fs::write(cli.path("report.pdf"), b"valuation report").expect("write");
    cli.ok(&[
        "pledge",
        "value",
        &pledge_a,
        "--amount",
        "5000000",
        "--report",
        &cli.path("report.pdf"),
        "--key",
        &cli.key("appraiser"),
    ]);
    for key in [&li, &cli.key("bank-a"), &tc] {
        cli.ok(&["pledge", "sign", &pledge_a, "--key", key]);
    }
    // A valuation after signatures would invalidate them: refused as bad input.
    cli.fails(
        2,
        &[
            "pledge",
            "value",
            &pledge_a,
            "--amount",
            "1",
            "--report",
            &cli.path("report.pdf"),
            "--key",
            &cli.key("appraiser"),
        ],
    );
    let submitted = cli.ok(&["pledge", "submit", &pledge_a]);
    let pledge_a_id = submitted["pledge_id"]
        .as_str()
        .expect("pledge id")
        .to_owned();

    // Refusals of the demo.
    cli.refused(
        "missing_signature",
        &["work", "transfer", &work, "--to", "bank-b", "--key", &li],
    );
    let pledge_b = cli.path("pledge-b.json");
    cli.ok(&[
        "pledge",
        "draft",
        "--pledgor",
        "holder-li",
        "--bank",
        "bank-b",
        "--work-file",
        &song,
        "--amount",
        "1000000",
        "--maturity",
        "2027-06-30",
        "--out",
        &pledge_b,
    ]);
    for key in [&li, &cli.key("bank-b"), &tc] {
        cli.ok(&["pledge", "sign", &pledge_b, "--key", key, "--yes"]);
    }
    let pledge_b_id = cli.ok(&["pledge", "submit", &pledge_b])["pledge_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let shown = cli.ok(&["pledge", "show", &pledge_b_id]);
    assert_eq!(
        shown["record"]["ranks_at_registration"],
        serde_json::json!([2])
    );
    let demand = cli.path("pledge-demand.json");
    cli.ok(&[
        "pledge",
        "draft",
        "--pledgor",
        "holder-li",
        "--bank",
        "bank-b",
        "--asset",
        &work,
        "--amount",
        "1",
        "--maturity",
        "2027-06-30",
        "--first-rank",
        "--out",
        &demand,
    ]);
    for key in [&li, &cli.key("bank-b"), &tc] {
        cli.ok(&["pledge", "sign", &demand, "--key", key]);
    }
    cli.refused("first_rank_unavailable", &["pledge", "submit", &demand]);

    flow.pledge_a_id = pledge_a_id;
    flow.pledge_b_id = pledge_b_id;
}

/// Evidence, verified offline; a tampered file and receipt fail with exit 4.
fn evidence_verified_offline(flow: &Flow) {
    let cli = flow.cli;
    let li = flow.li.clone();
    // Evidence, verified offline; a tampered file and receipt fail with exit 4.
    let page = cli.path("page.html");
    std::fs::write(&page, b"<html>a copy of Jinli Street</html>").expect("write");
    cli.ok(&[
        "evidence",
        "attest",
        &page,
        "--kind",
        "web-page",
        "--case-ref",
        "(2026)X100",
        "--key",
        &li,
    ]);
    let receipt = format!("{page}.receipt.json");
    let offline = Cli {
        node: "http://127.0.0.1:9".into(),
        genesis: cli.genesis.clone(),
        work: cli.work.clone(),
        keys: cli.keys.clone(),
    };
    let verified = offline.ok(&["evidence", "verify", &page, "--receipt", &receipt]);
    assert_eq!(verified["attestor"], "holder-li");
    std::fs::write(
        cli.path("tampered.html"),
        b"<html>a copy of Jinli Streets</html>",
    )
    .expect("write");
    offline.fails(
        4,
        &[
            "evidence",
            "verify",
            &cli.path("tampered.html"),
            "--receipt",
            &receipt,
        ],
    );
    let mut tampered = json_file(&receipt);
    tampered["leaf"]["time_ms"] = Value::from(tampered["leaf"]["time_ms"].as_u64().unwrap() - 1);
    std::fs::write(cli.path("tampered.receipt.json"), tampered.to_string()).expect("write");
    offline.fails(
        4,
        &[
            "evidence",
            "verify",
            &page,
            "--receipt",
            &cli.path("tampered.receipt.json"),
        ],
    );
}

/// The court, releases, consent of the remaining pledgee, court-ordered transfer and enforcement.
fn court_orders_and_enforcement(flow: &Flow) {
    let cli = flow.cli;
    let li = flow.li.clone();
    let song = flow.song.clone();
    let work = flow.work.clone();
    let pledge_a_id = flow.pledge_a_id.clone();
    let pledge_b_id = flow.pledge_b_id.clone();
    // The court: freeze, enforcement refused as frozen, unfreeze; bank A releases.
    let court = cli.key("court");
    cli.ok(&[
        "court",
        "freeze",
        &work,
        "--case-ref",
        "(2026)X100",
        "--key",
        &court,
    ]);
    cli.refused(
        "asset_frozen",
        &[
            "pledge",
            "enforce",
            &pledge_a_id,
            "--key",
            &cli.key("bank-a"),
        ],
    );
    cli.refused(
        "asset_frozen",
        &[
            "work",
            "license",
            &work,
            "--to",
            "bank-b",
            "--start",
            "2026-01-01",
            "--end",
            "2027-01-01",
            "--key",
            &li,
            "--key",
            &cli.key("bank-a"),
            "--key",
            &cli.key("bank-b"),
        ],
    );
    cli.ok(&[
        "court",
        "unfreeze",
        &work,
        "--case-ref",
        "(2026)X100",
        "--key",
        &court,
    ]);
    cli.ok(&[
        "pledge",
        "release",
        &pledge_a_id,
        "--key",
        &cli.key("bank-a"),
    ]);

    // With the remaining pledgee's consent: a licence and a transfer; then a court order back,
    // and bank B enforces its pledge on a court order (the court co-signs).
    cli.ok(&[
        "work",
        "license",
        "--file",
        &song,
        "--to",
        "bank-a",
        "--start",
        "2026-01-01",
        "--end",
        "2027-01-01",
        "--key",
        &li,
        "--key",
        &cli.key("bank-b"),
    ]);
    cli.ok(&[
        "work",
        "transfer",
        &work,
        "--to",
        "bank-a",
        "--key",
        &li,
        "--key",
        &cli.key("bank-b"),
    ]);
    cli.ok(&[
        "court",
        "order-transfer",
        &work,
        "--to",
        "holder-li",
        "--case-ref",
        "(2026)X101",
        "--key",
        &court,
    ]);
    cli.ok(&[
        "pledge",
        "enforce",
        &pledge_b_id,
        "--court",
        "court",
        "--case-ref",
        "(2026)X102",
        "--key",
        &cli.key("bank-b"),
        "--key",
        &court,
    ]);
}

/// Proven lists.
fn proven_lists(flow: &Flow) {
    let cli = flow.cli;
    let work = flow.work.clone();
    // Proven lists.
    let history = cli.ok(&["work", "history", &work]);
    let events: Vec<String> = history["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            e["event"]
                .as_object()
                .unwrap()
                .keys()
                .next()
                .unwrap()
                .clone()
        })
        .collect();
    assert_eq!(
        events,
        [
            "registered",
            "pledged",
            "pledged",
            "frozen",
            "unfrozen",
            "pledge_released",
            "licensed",
            "transferred",
            "court_transferred",
            "pledge_enforced"
        ]
    );
    let list = cli.ok(&["pledge", "list", "--bank", "bank-a"]);
    assert_eq!(list["pledges"].as_array().unwrap().len(), 1);
    assert_eq!(
        list["pledges"][0]["status"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap(),
        "released"
    );
    assert_eq!(
        cli.ok(&["work", "show", &work])["record"]["owner"],
        "bank-b"
    );
}

/// Governance, drafts co-signed elsewhere, and the failures that are not refusals.
fn governance_and_drafts(flow: &Flow) {
    let cli = flow.cli;
    let tc = flow.tc.clone();
    let work = flow.work.clone();
    // Governance: admit bank-c, signed by three of the four validator organisations.
    let bank_c = cli.path("bank-c.key");
    let bank_c_public = cli.ok(&["keys", "create", &bank_c])["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let admit = cli.path("admit.json");
    cli.ok(&[
        "gov",
        "draft",
        "--out",
        &admit,
        "admit",
        "--party",
        "bank-c",
        "--name",
        "Bank C",
        "--role",
        "bank",
        "--public-key",
        &bank_c_public,
    ]);
    cli.ok(&["gov", "sign", &admit, "--key", &tc]);
    cli.refused("quorum_not_reached", &["gov", "submit", &admit]);
    for org in ["bank-a", "bank-b"] {
        cli.ok(&["gov", "sign", &admit, "--key", &cli.key(org)]);
    }
    cli.ok(&["gov", "submit", &admit]);
    assert_eq!(
        cli.ok(&["pledge", "list", "--bank", "bank-c"])["pledges"],
        serde_json::json!([])
    );

    // Any command as a draft for a co-signer on another machine: the trading center enrols a
    // second holder, who signs the draft on their own machine; anyone submits it.
    let wang = cli.path("wang.key");
    let wang_public = cli.ok(&["keys", "create", &wang])["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let enrol = cli.path("enrol-wang.json");
    let drafted = cli.ok(&[
        "party",
        "enroll",
        "--party",
        "holder-wang",
        "--name",
        "Wang Fang",
        "--id-document",
        &cli.path("id.jpg"),
        "--public-key",
        &wang_public,
        "--key",
        &tc,
        "--draft",
        &enrol,
    ]);
    assert_eq!(drafted["signatures"], 1);
    cli.refused("missing_signature", &["pledge", "submit", &enrol]);
    cli.ok(&["pledge", "sign", &enrol, "--key", &wang]);
    cli.ok(&["pledge", "submit", &enrol]);
    std::fs::set_permissions(&wang, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let refused = cli.fails(2, &["keys", "show", &wang]);
    assert!(refused.contains("chmod 600"), "{refused}");

    // A draft that was edited after signing is refused as a bad file; a stale answer is refused.
    let mut edited = json_file(&admit);
    edited["tx"]["body"]["valid_until"] = Value::from(1);
    std::fs::write(cli.path("edited.json"), edited.to_string()).expect("write");
    cli.fails(2, &["gov", "submit", &cli.path("edited.json")]);
    cli.fails(4, &["--max-age", "0", "work", "show", &work]);
    let unreachable = Cli {
        node: "http://127.0.0.1:9".into(),
        genesis: cli.genesis.clone(),
        work: cli.work.clone(),
        keys: cli.keys.clone(),
    };
    unreachable.fails(3, &["work", "show", &work]);
    let status = cli.ok(&["status"]);
    assert!(status["status"]["height"].as_u64().unwrap() >= 1);
    let human = cli.run(&["status"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    for line in ["peers", "sync", "certified      height"] {
        assert!(
            human.stdout.contains(line),
            "status without {line:?}: {}",
            human.stdout
        );
    }
}
