//! Fuzz target `http_request`: the check is `ipledger_node::fuzz_checks::http_request`, shared
//! with the corpus replay test (node/tests/fuzz_corpus_replay.rs). The input is a request to the
//! node's HTTP API (`METHOD path?query`, a `Content-Type` line, the body), sent in-process to
//! the real router over a store with a three-block chain, built once per process.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ipledger_node::fuzz_checks::http_request(data);
});
