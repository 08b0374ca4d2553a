//! Fuzz target `signed_tx`: the check is `ipledger_node::fuzz_checks::signed_tx`, shared with the corpus
//! replay test (node/tests/fuzz_corpus_replay.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ipledger_node::fuzz_checks::signed_tx(data);
});
