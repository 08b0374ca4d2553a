//! The binary end to end, through `std::process::Command`.

mod common;

use common::run;
use ipledger_genesis::{read_genesis, KeyFile, NodeConfig};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn secret_of(path: &Path) -> String {
    hex::encode(KeyFile::read(path).unwrap().signing_key().seed())
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn keygen_prints_the_public_key_and_never_the_secret() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("keys");
    let (ok, stdout, stderr) = run(&["keygen", "--out", s(&dir), "--name", "bank-a"]);
    assert!(ok, "{stderr}");
    let path = dir.join("bank-a.key");
    let key = KeyFile::read(&path).unwrap();
    assert_eq!(stdout, format!("{}\n", key.public_key()));
    let secret = secret_of(&path);
    for text in [&stdout, &stderr] {
        assert!(!text.contains(&secret));
        assert!(!text.contains(&secret[..16]));
        assert!(!text.contains("secret_seed_hex"));
    }
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir), 0o700);

    // A second keygen under the same name fails and leaves the key alone.
    let (ok, stdout, stderr) = run(&["keygen", "--out", s(&dir), "--name", "bank-a"]);
    assert!(!ok);
    assert!(stdout.is_empty());
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(secret_of(&path), secret);

    // pubkey shows the same public key, again without the secret.
    let (ok, stdout, stderr) = run(&["pubkey", s(&path)]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, format!("{}\n", key.public_key()));
    assert!(!stdout.contains(&secret) && !stderr.contains(&secret));

    // Names that could leave the directory are refused.
    for name in ["../x", ".hidden", "a/b", ""] {
        let (ok, _, stderr) = run(&["keygen", "--out", s(&dir), "--name", name]);
        assert!(!ok, "{name}");
        assert!(stderr.contains("--name"), "{stderr}");
    }
}

#[test]
fn keygen_with_a_seed_is_deterministic_and_warns() {
    let temp = tempfile::tempdir().unwrap();
    let a = run(&[
        "keygen",
        "--out",
        s(&temp.path().join("a")),
        "--name",
        "n",
        "--seed",
        "x",
    ]);
    let b = run(&[
        "keygen",
        "--out",
        s(&temp.path().join("b")),
        "--name",
        "n",
        "--seed",
        "x",
    ]);
    assert!(a.0 && b.0);
    assert_eq!(a.1, b.1);
    assert_eq!(
        a.1.trim(),
        KeyFile::from_test_seed("x", "n").public_key().to_string()
    );
    assert!(a.2.contains("tests only"), "{}", a.2);
    let c = run(&["keygen", "--out", s(&temp.path().join("c")), "--name", "n"]);
    assert_ne!(a.1, c.1);
}

#[test]
fn a_world_readable_key_is_refused_by_the_binary() {
    let temp = tempfile::tempdir().unwrap();
    let (ok, _, _) = run(&["keygen", "--out", s(temp.path()), "--name", "k"]);
    assert!(ok);
    let path = temp.path().join("k.key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, stdout, stderr) = run(&["pubkey", s(&path)]);
    assert!(!ok);
    assert!(stdout.is_empty());
    assert!(stderr.contains("0644"), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(!stderr.contains("stack backtrace") && !stderr.contains("Stack backtrace"));
}

#[test]
fn local_prints_no_secret_and_is_deterministic_with_a_seed() {
    let temp = tempfile::tempdir().unwrap();
    let one = temp.path().join("one");
    let (ok, stdout, stderr) = run(&[
        "local",
        "--dir",
        s(&one),
        "--validators",
        "4",
        "--seed",
        "ci",
    ]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("tests only"), "{stderr}");
    let genesis = read_genesis(one.join("genesis.json")).unwrap();
    assert!(
        stdout.contains(&format!("fingerprint  {}", genesis.hash())),
        "{stdout}"
    );

    let mut key_files = Vec::new();
    for entry in std::fs::read_dir(one.join("keys")).unwrap() {
        key_files.push(entry.unwrap().path());
    }
    for node in ["trading-center", "bank-a", "bank-b", "court"] {
        let home = one.join(format!("node-{node}"));
        key_files.push(home.join("node.key"));
        let config = NodeConfig::load(home.join("config.toml")).unwrap();
        assert!(config.validator);
        assert!(stdout.contains(config.p2p.listen.as_str()), "{stdout}");
    }
    assert_eq!(key_files.len(), 10);
    for path in &key_files {
        assert_eq!(mode(path), 0o600, "{}", path.display());
        let secret = secret_of(path);
        assert!(!stdout.contains(&secret) && !stderr.contains(&secret));
    }

    let two = temp.path().join("two");
    let (ok, stdout_two, _) = run(&["local", "--dir", s(&two), "--seed", "ci"]);
    assert!(ok);
    let fingerprint_line = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("fingerprint"))
            .unwrap()
            .to_owned()
    };
    assert_eq!(fingerprint_line(&stdout), fingerprint_line(&stdout_two));

    let three = temp.path().join("three");
    let (ok, stdout_three, _) = run(&["local", "--dir", s(&three)]);
    assert!(ok);
    assert_ne!(fingerprint_line(&stdout), fingerprint_line(&stdout_three));
}

/// The real-consortium flow: each organisation runs keygen "on its own host" (its own
/// directory), the trading center assembles from public keys, each organisation checks the
/// fingerprint and writes its node config.
#[test]
fn a_consortium_from_public_keys_end_to_end() {
    let temp = tempfile::tempdir().unwrap();
    let orgs = [
        ("trading-center", "trading_center", Some("10.1.0.1:26656")),
        ("bank-a", "bank", Some("bank-a.example.com:26656")),
        ("court", "court", Some("[fd00::3]:26656")),
        ("regulator", "regulator", None),
    ];
    let mut spec =
        String::from("chain_id = \"ipledger-e2e\"\ngenesis_time = 2026-06-01T00:00:00+08:00\n");
    let mut validators = String::new();
    for (org, role, p2p) in orgs {
        let host = temp.path().join(org);
        let keys = host.join("keys");
        let (ok, org_key, stderr) = run(&["keygen", "--out", s(&keys), "--name", org]);
        assert!(ok, "{stderr}");
        spec += &format!(
            "\n[[organisation]]\nid = \"{org}\"\nname = \"{org} Ltd\"\nrole = \"{role}\"\nkey = \"{}\"\n",
            org_key.trim()
        );
        let node_name = format!("{org}-node");
        let (ok, node_key, _) = run(&["keygen", "--out", s(&keys), "--name", &node_name]);
        assert!(ok);
        if let Some(p2p) = p2p {
            validators += &format!(
                "\n[[validator]]\norganisation = \"{org}\"\nkey = \"{}\"\npower = 10\np2p = \"{p2p}\"\n",
                node_key.trim()
            );
        }
    }
    spec += &validators;

    // The trading center assembles.
    let center = temp.path().join("trading-center");
    let spec_path = center.join("consortium.toml");
    let genesis_path = center.join("genesis.json");
    std::fs::write(&spec_path, &spec).unwrap();
    let (ok, fingerprint, stderr) = run(&[
        "assemble",
        "--spec",
        s(&spec_path),
        "--out",
        s(&genesis_path),
    ]);
    assert!(ok, "{stderr}");
    let fingerprint = fingerprint.trim().to_owned();
    let genesis = read_genesis(&genesis_path).unwrap();
    assert_eq!(fingerprint, genesis.hash().to_string());
    assert_eq!(genesis.genesis_time_ms, 1_780_243_200_000);
    assert_eq!(genesis.validators.len(), 3);

    // Each organisation receives genesis.json and consortium.toml, checks, writes its config.
    for (org, _, p2p) in orgs {
        let host = temp.path().join(org);
        if org != "trading-center" {
            std::fs::copy(&spec_path, host.join("consortium.toml")).unwrap();
            std::fs::copy(&genesis_path, host.join("genesis.json")).unwrap();
        }
        let node_key = host.join("keys").join(format!("{org}-node.key"));
        let home = host.join("node");
        let (host_spec, host_genesis) = (host.join("consortium.toml"), host.join("genesis.json"));
        let args = [
            "config",
            "--spec",
            s(&host_spec),
            "--genesis",
            s(&host_genesis),
            "--node-key",
            s(&node_key),
            "--home",
            s(&home),
            "--expect-fingerprint",
            &fingerprint,
        ];
        let (ok, stdout, stderr) = run(&args);
        assert!(ok, "{stderr}");
        assert!(!stdout.contains(&secret_of(&node_key)) && !stderr.contains(&secret_of(&node_key)));
        let config = NodeConfig::load(home.join("config.toml")).unwrap();
        let key = config.load_node_key().unwrap();
        let node_genesis = config.load_genesis().unwrap();
        assert_eq!(node_genesis.hash().to_string(), fingerprint);
        config
            .check_genesis(&node_genesis, &key.public_key())
            .unwrap();
        assert_eq!(config.validator, p2p.is_some(), "{org}");
        assert_eq!(config.organisation.is_some(), p2p.is_some());
        let expected_peers = if p2p.is_some() { 2 } else { 3 };
        assert_eq!(config.p2p.peers.len(), expected_peers, "{org}");
        match org {
            "bank-a" => assert_eq!(config.p2p.listen.as_str(), "/ip4/0.0.0.0/tcp/26656"),
            "court" => assert_eq!(config.p2p.listen.as_str(), "/ip6/fd00::3/tcp/26656"),
            "trading-center" => {
                assert_eq!(config.p2p.listen.as_str(), "/ip4/10.1.0.1/tcp/26656");
                let addresses: Vec<&str> = config
                    .p2p
                    .peers
                    .iter()
                    .map(|p| p.address.as_str())
                    .collect();
                assert_eq!(
                    addresses,
                    [
                        "/dns/bank-a.example.com/tcp/26656",
                        "/ip6/fd00::3/tcp/26656"
                    ]
                );
            }
            _ => {}
        }

        // Writing it again needs --force.
        let (ok, _, stderr) = run(&args);
        assert!(!ok);
        assert!(stderr.contains("--force"), "{stderr}");
    }

    // A wrong fingerprint is refused.
    let home = temp.path().join("elsewhere");
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let (ok, _, stderr) = run(&[
        "config",
        "--spec",
        s(&spec_path),
        "--genesis",
        s(&genesis_path),
        "--node-key",
        s(&center.join("keys").join("trading-center-node.key")),
        "--home",
        s(&home),
        "--expect-fingerprint",
        &wrong,
    ]);
    assert!(!ok);
    assert!(
        stderr.contains(&wrong) && stderr.contains(&fingerprint),
        "{stderr}"
    );
    assert!(!home.join("config.toml").exists());

    // A spec that does not describe the genesis is refused.
    let other_spec = center.join("other.toml");
    std::fs::write(&other_spec, spec.replace("power = 10", "power = 11")).unwrap();
    let (ok, _, stderr) = run(&[
        "config",
        "--spec",
        s(&other_spec),
        "--genesis",
        s(&genesis_path),
        "--node-key",
        s(&center.join("keys").join("trading-center-node.key")),
        "--home",
        s(&home),
    ]);
    assert!(!ok);
    assert!(stderr.contains("does not describe"), "{stderr}");
}

#[test]
fn every_command_has_help_with_examples() {
    let (ok, stdout, _) = run(&["--help"]);
    assert!(ok);
    assert!(stdout.contains("Examples:"));
    for command in [
        "keygen",
        "assemble",
        "config",
        "local",
        "fingerprint",
        "pubkey",
    ] {
        let (ok, stdout, stderr) = run(&[command, "--help"]);
        assert!(ok, "{command}: {stderr}");
        assert!(stdout.contains("Example"), "{command}: {stdout}");
        assert!(stdout.contains("ipledger-genesis"), "{command}: {stdout}");
    }
}

#[test]
fn fingerprint_refuses_an_invalid_genesis() {
    let temp = tempfile::tempdir().unwrap();
    let path = temp.path().join("genesis.json");
    std::fs::write(&path, "{\"chain_id\": 1}").unwrap();
    let (ok, stdout, stderr) = run(&["fingerprint", s(&path)]);
    assert!(!ok);
    assert!(stdout.is_empty());
    assert!(stderr.contains("genesis.json is malformed"), "{stderr}");
}
