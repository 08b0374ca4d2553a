//! The demo's users' flows ([`ipledger_tests::flows::run`]) against a four-validator network
//! started in this process from a directory made by `ipledger-genesis local` (fresh keys, ports
//! from the OS), each node started from its `config.toml` as `ipledger-node run` starts it, with
//! its HTTP API on the configured address. `scripts/demo.sh` runs the same flows against four
//! node processes.

use ipledger_genesis::{create_local, LocalOptions, NodeConfig};
use ipledger_node::service::start_from_config;
use ipledger_tests::{flows, Net};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_users_flows_pass_on_a_four_validator_network() {
    let dir = tempfile::tempdir().expect("temp dir");
    let local = create_local(&LocalOptions::new(dir.path().join("net"))).expect("local network");
    let net_dir = dir.path().join("net");
    let mut nodes = Vec::new();
    for node in &local.nodes {
        let config = NodeConfig::load(&node.config_path).expect("config loads");
        nodes.push(start_from_config(&config).await.expect("node starts"));
    }
    let flows_dir = net_dir.clone();
    let summary = tokio::task::spawn_blocking(move || {
        let mut net = Net::open(&flows_dir)?;
        net.wait_for_height(&net.nodes[0], 1)?;
        flows::run(&mut net)
    })
    .await
    .expect("the flows do not panic");
    for running in nodes {
        running.stop().await.expect("node stops cleanly");
    }
    let summary = summary.expect("every step behaves as the rules say");
    assert_eq!((summary.committed, summary.refused), (9, 3));
}
