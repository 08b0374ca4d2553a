//! What the store reports of its tables (`Store::sizes`), and `ipledger-node store-stats`
//! printing it for an operator, or naming a missing store.

mod store_common;
use ipledger_node::store::{table_names, StoreSizes, TableSize};
use std::collections::BTreeMap;
use std::process::Command;
use store_common::process::local_network;
use store_common::*;

/// A closed store holding all of [`busy_chain`], with what it reported of itself and what the
/// chain says it holds.
struct BusyStore {
    /// Keeps the store's directory while the test runs.
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    sizes: StoreSizes,
    head: u64,
    committed: u64,
}

fn busy_store() -> BusyStore {
    let (chain, _) = busy_chain();
    let (dir, path, store) = new_store(&chain);
    commit_all(&store, &chain);
    BusyStore {
        _dir: dir,
        path,
        sizes: store.sizes().expect("the sizes read"),
        head: chain.height(),
        committed: chain
            .blocks
            .iter()
            .map(|block| block.txs.len() as u64)
            .sum(),
    }
}

#[test]
fn every_table_is_sized_and_counts_what_the_chain_committed() {
    let BusyStore {
        sizes,
        head,
        committed,
        ..
    } = busy_store();
    assert_eq!((sizes.head, sizes.committed), (head, committed));
    let by_name: BTreeMap<&str, &TableSize> = sizes
        .tables
        .iter()
        .map(|table| (table.name.as_str(), table))
        .collect();
    let expected = [
        table_names::META,
        table_names::BLOCKS,
        table_names::HEADERS,
        table_names::CERTIFICATES,
        table_names::VALIDATOR_CHANGES,
        table_names::STATE_NODES,
        table_names::STATE_VALUES,
        table_names::STATE_STALE,
        table_names::LEDGER_NODES,
        table_names::TX_INDEX,
        table_names::ASSETS_BY_OWNER,
        table_names::STAGED_VALUES,
        table_names::STAGED_TX_INDEX,
    ];
    assert_eq!(
        sizes
            .tables
            .iter()
            .map(|table| table.name.as_str())
            .collect::<Vec<_>>(),
        {
            let mut names = expected.to_vec();
            names.sort_unstable();
            names
        },
        "one size per table, in name order"
    );
    assert!(committed > 0 && head > 0);
    // One row per committed block in the per-height tables (genesis is not a block).
    for name in [
        table_names::BLOCKS,
        table_names::HEADERS,
        table_names::CERTIFICATES,
    ] {
        assert_eq!(by_name[name].rows, head, "{name}");
    }
    // Every transaction is indexed once: staged by height, or merged (nothing is merged
    // until a batch of heights is due).
    assert_eq!(
        by_name[table_names::TX_INDEX].rows + by_name[table_names::STAGED_TX_INDEX].rows,
        committed
    );
    // The chain's validator-set change is announced by one header.
    assert_eq!(by_name[table_names::VALIDATOR_CHANGES].rows, 1);
    for table in &sizes.tables {
        assert_eq!(
            table.total_bytes(),
            table.stored_bytes + table.metadata_bytes + table.fragmented_bytes
        );
        if table.rows > 0 {
            assert!(
                table.leaf_pages >= 1 && table.stored_bytes > 0,
                "{table:?} has rows but no pages or bytes"
            );
        }
    }
}

#[test]
fn store_stats_prints_each_table_for_a_stopped_node_and_names_a_missing_store() {
    let BusyStore {
        _dir: _store_dir,
        path,
        sizes,
        head,
        committed,
    } = busy_store();
    let dir = tempfile::tempdir().expect("temporary directory");
    let (local, configs) = local_network(dir.path(), 1);
    let config_path = &local.nodes[0].config_path;
    let data_dir = configs[0].data_dir();
    let run = || {
        let output = Command::new(env!("CARGO_BIN_EXE_ipledger-node"))
            .args(["store-stats", "--config"])
            .arg(config_path)
            .output()
            .expect("ipledger-node runs");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };

    let (code, stdout, stderr) = run();
    assert_eq!(code, Some(1), "stdout: {stdout}");
    assert!(
        stderr.contains("no store at") && stderr.contains("ledger.redb"),
        "stderr: {stderr}"
    );
    assert!(
        !data_dir.join("ledger.redb").exists(),
        "asking for the sizes created a store"
    );

    std::fs::create_dir_all(&data_dir).expect("the data directory is made");
    std::fs::copy(&path, data_dir.join("ledger.redb")).expect("the store is copied");
    let (code, stdout, stderr) = run();
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert!(
        stdout.contains(&format!("head {head}, {committed} transactions committed")),
        "stdout: {stdout}"
    );
    for table in &sizes.tables {
        let line = stdout
            .lines()
            .find(|line| line.split_whitespace().next() == Some(table.name.as_str()))
            .unwrap_or_else(|| panic!("no line for {}: {stdout}", table.name));
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            fields[1..7],
            [
                table.rows.to_string(),
                table.leaf_pages.to_string(),
                table.branch_pages.to_string(),
                table.stored_bytes.to_string(),
                table.metadata_bytes.to_string(),
                table.fragmented_bytes.to_string(),
            ],
            "{line}"
        );
        assert_eq!(
            fields[7],
            format!("{:.0}", table.total_bytes() as f64 / committed as f64),
            "{line}"
        );
    }
    assert!(stdout.contains("tables: "), "stdout: {stdout}");
}
