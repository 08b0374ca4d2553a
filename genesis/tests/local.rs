//! `local`: a whole test network in one directory.

use ipledger_genesis::local::{LOCAL_ORGANISATIONS, SEEDED_GENESIS_TIME_MS};
use ipledger_genesis::{
    create_local, read_genesis, ConsortiumSpec, KeyFile, LocalError, LocalOptions, NodeConfig,
};
use ledger_core::genesis::{BLOCK_BYTES_LIMIT, BLOCK_TXS_LIMIT};
use ledger_core::types::Role;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn options(dir: &Path, seed: Option<&str>) -> LocalOptions {
    LocalOptions {
        seed: seed.map(str::to_owned),
        ..LocalOptions::new(dir)
    }
}

#[test]
fn local_network_is_valid_private_and_loadable() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("net");
    let network = create_local(&options(&dir, None)).unwrap();

    // The genesis validates, on disk too, and has the production-shaped consortium.
    let genesis = read_genesis(dir.join("genesis.json")).unwrap();
    assert_eq!(genesis, network.genesis);
    assert_eq!(genesis.hash(), network.fingerprint);
    let orgs: Vec<(&str, Role)> = genesis
        .organisations
        .iter()
        .map(|o| (o.party.0.as_str(), o.role))
        .collect();
    let expected: Vec<(&str, Role)> = LOCAL_ORGANISATIONS
        .iter()
        .map(|(id, _, role)| (*id, *role))
        .collect();
    assert_eq!(orgs, expected);
    assert_eq!(genesis.validators.len(), 4);
    let operators: BTreeSet<&str> = genesis
        .validators
        .iter()
        .map(|v| v.organisation.0.as_str())
        .collect();
    assert_eq!(
        operators,
        BTreeSet::from(["trading-center", "bank-a", "bank-b", "court"])
    );
    assert_eq!(
        genesis.params.tx_lifetime_max,
        ipledger_genesis::params::DEFAULT_TX_LIFETIME_MAX
    );
    assert_eq!(genesis.params.block_txs_max, 10_000);
    assert_eq!(genesis.params.block_bytes_max, 8 * 1024 * 1024);
    assert!(genesis.params.block_txs_max <= BLOCK_TXS_LIMIT);
    assert!(genesis.params.block_bytes_max <= BLOCK_BYTES_LIMIT);
    assert_eq!(genesis.consensus.block_interval_ms, 1_000);
    assert_eq!(genesis.consensus.propose_timeout_ms, 2_000);
    assert_eq!(genesis.consensus.vote_timeout_ms, 1_000);
    assert_eq!(genesis.consensus.clock_skew_max_ms, 5_000);

    // The spec written beside it assembles to the same genesis.
    let spec = ConsortiumSpec::load(&network.spec_path).unwrap();
    assert_eq!(spec.to_genesis().unwrap(), genesis);

    // Organisation keys: mode 0600, readable, matching the genesis.
    assert_eq!(mode(&dir.join("keys")), 0o700);
    for org in &network.organisations {
        assert_eq!(mode(&org.key_path), 0o600, "{}", org.key_path.display());
        let key = KeyFile::read(&org.key_path).unwrap();
        let in_genesis = genesis
            .organisations
            .iter()
            .find(|o| o.party == org.party)
            .unwrap();
        assert_eq!(key.public_key(), in_genesis.key);
    }

    // Node configs load, point at a 0600 node key in the validator set, and fit the genesis.
    let mut ports = BTreeSet::new();
    for node in &network.nodes {
        assert_eq!(node.config_path, node.home.join("config.toml"));
        assert_eq!(
            node.home,
            std::path::absolute(dir.join(format!("node-{}", node.organisation))).unwrap()
        );
        let config = NodeConfig::load(&node.config_path).unwrap();
        assert!(config.validator);
        assert_eq!(config.home, node.home);
        assert_eq!(config.organisation.as_ref(), Some(&node.organisation));
        assert_eq!(mode(&config.node_key_path()), 0o600);
        let key = config.load_node_key().unwrap();
        assert_eq!(key.public_key(), node.public_key);
        let node_genesis = config.load_genesis().unwrap();
        assert_eq!(node_genesis.hash(), network.fingerprint);
        config
            .check_genesis(&node_genesis, &key.public_key())
            .unwrap();
        assert_eq!(config.data_dir(), node.home.join("data"));

        // Peers: every other validator, with its address and key.
        assert_eq!(config.p2p.peers.len(), 3);
        for peer in &config.p2p.peers {
            let other = network
                .nodes
                .iter()
                .find(|n| n.public_key == peer.public_key)
                .expect("a peer is another validator");
            assert_ne!(other.public_key, node.public_key);
            assert_eq!(peer.address, other.p2p);
        }

        assert_eq!(config.p2p.listen, node.p2p);
        assert!(config
            .p2p
            .listen
            .as_str()
            .starts_with("/ip4/127.0.0.1/tcp/"));
        assert!(config.http.listen.ip().is_loopback());
        assert!(ports.insert(config.p2p.listen.port()));
        assert!(ports.insert(config.http.listen.port()));
    }
    assert_eq!(ports.len(), 8, "every port is distinct");
}

#[test]
fn block_interval_reaches_the_genesis_and_every_node_config() {
    let temp = tempfile::tempdir().unwrap();
    let default = create_local(&options(&temp.path().join("default"), None)).unwrap();
    assert_eq!(default.genesis.consensus.block_interval_ms, 1_000);
    let network = create_local(&LocalOptions {
        block_interval_ms: Some(500),
        ..options(&temp.path().join("net"), None)
    })
    .unwrap();
    assert_eq!(network.genesis.consensus.block_interval_ms, 500);
    // The other timings keep their defaults.
    assert_eq!(
        network.genesis.consensus.propose_timeout_ms,
        default.genesis.consensus.propose_timeout_ms
    );
    for node in &network.nodes {
        let config = NodeConfig::load(&node.config_path).unwrap();
        assert_eq!(config.consensus.block_interval_ms, 500);
        let key = config.load_node_key().unwrap();
        config
            .check_genesis(&config.load_genesis().unwrap(), &key.public_key())
            .expect("the node's [consensus] agrees with its genesis");
    }
    let zero = create_local(&LocalOptions {
        block_interval_ms: Some(0),
        ..options(&temp.path().join("zero"), None)
    });
    let error = zero
        .expect_err("a zero block interval is refused")
        .to_string();
    assert!(error.contains("block_interval_ms"), "{error}");
}

#[test]
fn seed_makes_the_genesis_deterministic() {
    let temp = tempfile::tempdir().unwrap();
    let a = create_local(&options(&temp.path().join("a"), Some("ci"))).unwrap();
    let b = create_local(&options(&temp.path().join("b"), Some("ci"))).unwrap();
    assert_eq!(a.fingerprint, b.fingerprint);
    assert_eq!(a.genesis, b.genesis);
    assert_eq!(a.genesis.genesis_time_ms, SEEDED_GENESIS_TIME_MS);
    // The key files hold the same keys too.
    for (x, y) in a.nodes.iter().zip(&b.nodes) {
        let kx = KeyFile::read(x.home.join("node.key")).unwrap();
        let ky = KeyFile::read(y.home.join("node.key")).unwrap();
        assert_eq!(kx.signing_key().seed(), ky.signing_key().seed());
    }
    // Another seed gives another consortium.
    let c = create_local(&options(&temp.path().join("c"), Some("other"))).unwrap();
    assert_ne!(a.fingerprint, c.fingerprint);
}

#[test]
fn without_seed_two_runs_differ() {
    let temp = tempfile::tempdir().unwrap();
    let mut a = options(&temp.path().join("a"), None);
    a.genesis_time_ms = Some(SEEDED_GENESIS_TIME_MS);
    let mut b = options(&temp.path().join("b"), None);
    b.genesis_time_ms = Some(SEEDED_GENESIS_TIME_MS);
    let a = create_local(&a).unwrap();
    let b = create_local(&b).unwrap();
    assert_ne!(a.fingerprint, b.fingerprint);
    let keys_a: BTreeSet<_> = a.organisations.iter().map(|o| o.public_key).collect();
    assert!(b
        .organisations
        .iter()
        .all(|o| !keys_a.contains(&o.public_key)));
}

#[test]
fn base_port_gives_consecutive_ports() {
    let temp = tempfile::tempdir().unwrap();
    let mut opts = options(&temp.path().join("net"), Some("ports"));
    opts.base_port = Some(40_000);
    opts.validators = 2;
    let network = create_local(&opts).unwrap();
    let ports: Vec<(u16, u16)> = network
        .nodes
        .iter()
        .map(|n| (n.p2p.port(), n.http.port()))
        .collect();
    assert_eq!(ports, [(40_000, 40_001), (40_002, 40_003)]);
    let config = NodeConfig::load(&network.nodes[1].config_path).unwrap();
    assert_eq!(config.p2p.listen.as_str(), "/ip4/127.0.0.1/tcp/40002");
    assert_eq!(config.http.listen.to_string(), "127.0.0.1:40003");
    assert_eq!(
        config.p2p.peers[0].address.as_str(),
        "/ip4/127.0.0.1/tcp/40000"
    );

    // Ports past 65535 are refused.
    let mut opts = options(&temp.path().join("high"), None);
    opts.base_port = Some(65_530);
    let message = create_local(&opts).unwrap_err().to_string();
    assert!(message.contains("65535"), "{message}");
}

#[test]
fn validator_counts() {
    let temp = tempfile::tempdir().unwrap();
    let mut one = options(&temp.path().join("one"), Some("s"));
    one.validators = 1;
    let network = create_local(&one).unwrap();
    assert_eq!(network.genesis.validators.len(), 1);
    assert_eq!(network.nodes[0].name, "trading-center");
    let config = NodeConfig::load(&network.nodes[0].config_path).unwrap();
    assert!(config.p2p.peers.is_empty());

    let mut six = options(&temp.path().join("six"), Some("s"));
    six.validators = 6;
    let network = create_local(&six).unwrap();
    let names: Vec<&str> = network.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "trading-center",
            "bank-a",
            "bank-b",
            "court",
            "trading-center-2",
            "bank-a-2"
        ]
    );
    assert!(network.nodes[4].home.ends_with("node-trading-center-2"));

    for bad in [0, 17] {
        let mut opts = options(&temp.path().join(format!("bad{bad}")), None);
        opts.validators = bad;
        assert!(matches!(create_local(&opts), Err(LocalError::Options(_))));
    }
}

#[test]
fn a_non_empty_directory_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    std::fs::write(temp.path().join("genesis.json"), "{}").unwrap();
    let error = create_local(&options(temp.path(), None)).unwrap_err();
    assert!(matches!(error, LocalError::NotEmpty(_)), "{error}");
    assert_eq!(
        std::fs::read_to_string(temp.path().join("genesis.json")).unwrap(),
        "{}"
    );
}
