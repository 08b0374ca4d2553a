#!/usr/bin/env bash
# Benchmark (run by hand, not in CI): issue 6's mix of N signed transactions (default 5000; 60 %
# evidence, 25 % works, 10 % transfers, 5 % three-signature pledges, from 10,000 parties enrolled
# first), signed beforehand and submitted concurrently to a local four-validator network in
# batches of BATCH (default 256; 1 sends each alone to the single-transaction route), spread over
# its nodes, CONCURRENCY requests in flight (default 16 batches, or 512 single submissions);
# prints committed tx/s and signatures/s, latency p50/p99/max, the CPU each node used, each
# node's peak memory and bytes stored per transaction, and raw Ed25519 single/batch
# verifications/s measured in the same run. docs/PERFORMANCE.md has the method and the figures.
#
#   scripts/load.sh [N] [CONCURRENCY] [BATCH]     a fresh network in a temporary directory, stopped after
#   LOAD_DIR=DIR scripts/load.sh [N] [C] [B]      an already running network (scripts/local-net.sh start DIR)
#   scripts/load.sh --rate R [--seconds S] [...]  open-loop: R tx/s offered for S s (default 60);
#                                                 any ipledger-load options, passed as they are
#                                                 (--prefill M: M attestations committed first)
#   BLOCK_INTERVAL_MS=500 scripts/load.sh ...     the fresh network with that target block interval
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == --* ]]; then
  options=("$@")
else
  options=(--txs "${1:-5000}")
  if [ -n "${2:-}" ]; then options+=(--concurrency "$2"); fi
  if [ -n "${3:-}" ]; then options+=(--batch "$3"); fi
fi

cargo build --release -q -p ipledger-node -p ipledger-genesis -p ipledger-tests -p ipledger-client
if [ -n "${LOAD_DIR:-}" ]; then
  dir=$LOAD_DIR
else
  dir=$(mktemp -d "${TMPDIR:-/tmp}/ipledger-load.XXXXXX")
  cleanup() {
    local rc=$?
    scripts/local-net.sh stop "$dir" >/dev/null 2>&1 || true
    rm -rf "$dir"
    exit "$rc"
  }
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  scripts/local-net.sh start "$dir" >/dev/null
fi
echo "machine: $(nproc) cores; network in $dir"
target/release/ipledger-load "$dir" "${options[@]}"
scripts/local-net.sh status "$dir"
