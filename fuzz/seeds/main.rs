//! Writes the starting corpora in `fuzz/corpus/<target>/` from real bytes: the golden vectors
//! of `docs/vectors/` (transactions, headers, a certificate, a receipt, the genesis), values
//! assembled from them (a transaction per action, blocks, gossip batches, JSON bodies), one
//! engine message of each type the node's codec reads, and a real request to every route of the
//! HTTP API (with the ids of the chain the `http_request` target serves). Every file written is
//! named `seed_*`, so rerunning this replaces the seeds and leaves the fuzzer's own finds alone.
//!
//! Run from anywhere: `cargo run --manifest-path fuzz/Cargo.toml --bin seeds`.

use ipledger_node::fuzz_checks;
use ledger_core::block::{Block, BlockHeader, CommitCertificate};
use ledger_core::encoding;
use ledger_core::tx::{Action, SignedTx};
use std::fs;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz/ lies in the repository")
        .to_path_buf()
}

fn vector(name: &str) -> Vec<u8> {
    let path = repo().join("docs/vectors").join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if name.ends_with(".hex") {
        hex::decode(text.trim()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    } else {
        text.into_bytes()
    }
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = repo().join("fuzz/corpus").join(target);
    fs::create_dir_all(&dir).expect("corpus directory");
    fs::write(dir.join(format!("seed_{name}")), bytes).expect("seed written");
}

/// One transaction per action vector: the register-work transaction with its action replaced
/// (its signature no longer verifies, which the decoders do not care about).
fn txs_of_every_action(base: &SignedTx) -> Vec<(String, SignedTx)> {
    let mut names: Vec<String> = fs::read_dir(repo().join("docs/vectors"))
        .expect("vectors")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.starts_with("action_") && name.ends_with(".hex"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let action: Action = encoding::decode(&vector(&name), "action").expect("action");
            let mut tx = base.clone();
            tx.body.action = action;
            (name.trim_end_matches(".hex").to_owned(), tx)
        })
        .collect()
}

fn main() {
    let work = SignedTx::decode(&vector("signed_tx_register_work.hex")).expect("tx vector");
    let pledge = SignedTx::decode(&vector("signed_tx_register_pledge.hex")).expect("tx vector");
    let header_1: BlockHeader =
        encoding::decode(&vector("block_header_1.hex"), "header").expect("header vector");
    let header_4: BlockHeader =
        encoding::decode(&vector("block_header_4.hex"), "header").expect("header vector");
    let certificate_4: CommitCertificate =
        encoding::decode(&vector("commit_certificate_4.hex"), "certificate").expect("vector");

    write("signed_tx", "register_work", &work.encode());
    write("signed_tx", "register_pledge", &pledge.encode());
    write(
        "tx_json",
        "register_work",
        &serde_json::to_vec(&work).expect("json"),
    );
    write(
        "tx_json",
        "register_pledge",
        &serde_json::to_vec_pretty(&pledge).expect("json"),
    );
    for (name, tx) in txs_of_every_action(&work) {
        let json = serde_json::to_vec(&tx).expect("json");
        write("signed_tx", &name, &tx.encode());
        write("tx_json", &name, &json);
        // Refused by the API's rules (its signature no longer verifies), after full decoding.
        let request =
            fuzz_checks::http_request_bytes("POST", "/v1/transactions", "application/json", &json);
        write("http_request", &format!("submit_{name}"), &request);
    }

    let blocks = [
        (
            "empty_1",
            Block {
                header: header_1.clone(),
                last_commit: None,
                txs: vec![],
            },
        ),
        (
            "one_tx_1",
            Block {
                header: header_1,
                last_commit: None,
                txs: vec![work.clone()],
            },
        ),
        (
            "two_txs_4",
            Block {
                header: header_4,
                last_commit: Some(certificate_4.clone()),
                txs: vec![pledge.clone(), work.clone()],
            },
        ),
    ];
    for (name, block) in &blocks {
        write("block", name, &block.encode());
    }

    write("certificate", "4", &encoding::encode(&certificate_4));
    let mut certificate_0 = certificate_4;
    certificate_0.signatures.clear();
    write(
        "certificate",
        "no_signatures",
        &encoding::encode(&certificate_0),
    );

    write("receipt", "binary", &vector("receipt.hex"));
    write("receipt", "json", &vector("receipt.json"));

    write(
        "gossip_batch",
        "empty",
        &encoding::encode(&Vec::<SignedTx>::new()),
    );
    write(
        "gossip_batch",
        "one",
        &encoding::encode(&vec![work.clone()]),
    );
    write(
        "gossip_batch",
        "two",
        &encoding::encode(&vec![work, pledge]),
    );

    write("genesis_json", "4", &vector("genesis_4.json"));

    for (index, seed) in fuzz_checks::consensus_message_seeds().iter().enumerate() {
        write(
            "consensus_message",
            &format!("{index:02}_kind_{}", seed[0]),
            seed,
        );
    }
    for (name, request) in fuzz_checks::http_request_seeds() {
        write("http_request", &name, &request);
    }
    println!(
        "seeds written under {}",
        repo().join("fuzz/corpus").display()
    );
}
