//! Fuzz target `certificate`: the check is `ipledger_node::fuzz_checks::certificate`, shared with the corpus
//! replay test (node/tests/fuzz_corpus_replay.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ipledger_node::fuzz_checks::certificate(data);
});
