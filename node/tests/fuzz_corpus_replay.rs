//! Replays the kept fuzz corpora (`fuzz/corpus/<target>/`) through the same checks the
//! cargo-fuzz targets run (`ipledger_node::fuzz_checks`), so every input the fuzzer found
//! interesting, and every crash kept as a regression input, is checked on each CI run without
//! libFuzzer or a nightly toolchain.

use ipledger_node::fuzz_checks;
use std::path::{Path, PathBuf};

/// The corpus files of `target`, sorted; fails if the directory is missing or empty, so a moved
/// or deleted corpus can never make the replay pass by checking nothing.
fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("corpus {} cannot be read: {error}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
}

fn replay(target: &str) {
    for path in corpus_files(target) {
        let data = std::fs::read(&path).expect("corpus file reads");
        let outcome = std::panic::catch_unwind(|| fuzz_checks::check(target, &data));
        assert!(
            outcome.is_ok(),
            "fuzz check {target} fails on {} (input hex {})",
            path.display(),
            hex::encode(&data)
        );
    }
}

#[test]
fn every_target_has_a_corpus() {
    for target in fuzz_checks::TARGETS {
        let fuzz_target = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/fuzz_targets")
            .join(format!("{target}.rs"));
        assert!(
            fuzz_target.is_file(),
            "{} is missing",
            fuzz_target.display()
        );
        corpus_files(target);
    }
}

#[test]
fn consensus_message_seeds_decode() {
    // The seeds are well-formed messages of every type; had the codec stopped reading one, the
    // fuzzer would start from nothing but noise for it.
    let seeds = fuzz_checks::consensus_message_seeds();
    let mut kinds: Vec<u8> = seeds.iter().map(|seed| seed[0]).collect();
    kinds.dedup();
    assert_eq!(
        kinds,
        (0..10).collect::<Vec<u8>>(),
        "one seed or more per message type"
    );
    for seed in seeds {
        assert!(
            fuzz_checks::engine_message_decodes(&seed),
            "seed {} does not decode",
            hex::encode(&seed)
        );
    }
}

#[test]
fn signed_tx_corpus_replays() {
    replay("signed_tx");
}

#[test]
fn block_corpus_replays() {
    replay("block");
}

#[test]
fn certificate_corpus_replays() {
    replay("certificate");
}

#[test]
fn receipt_corpus_replays() {
    replay("receipt");
}

#[test]
fn gossip_batch_corpus_replays() {
    replay("gossip_batch");
}

#[test]
fn consensus_message_corpus_replays() {
    replay("consensus_message");
}

#[test]
fn tx_json_corpus_replays() {
    replay("tx_json");
}

#[test]
fn genesis_json_corpus_replays() {
    replay("genesis_json");
}

#[test]
fn http_request_corpus_replays() {
    replay("http_request");
}

#[test]
fn http_request_seeds_succeed() {
    // The seeds of the routes that serve something are answered 2xx: had the fixture chain or
    // a route changed so that they fail, the fuzzer would start from refusals only.
    for (name, request) in fuzz_checks::http_request_seeds() {
        fuzz_checks::http_request(&request);
        let (status, _, body) = fuzz_checks::http_answer(&request).expect("a request HTTP carries");
        let refused = ["block_9_absent", "party_bad", "no_route", "delete_status"];
        let refused = refused.contains(&name.as_str())
            || name.starts_with("submit_wait")
            || name == "submit_committed"
            || name == "submit_bad_query";
        assert_eq!(
            (200..300).contains(&status),
            !refused,
            "seed {name} answers {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
}
