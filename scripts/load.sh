#!/usr/bin/env bash
# Benchmark (run by hand, not in CI): issue 6's mix of N signed transactions (default 5000; 60 %
# evidence, 25 % works, 10 % transfers, 5 % three-signature pledges, from 10,000 parties enrolled
# first) submitted concurrently to a local four-validator network, spread over its nodes; prints
# committed tx/s and signatures/s, latency p50/p99/max, each node's peak memory and bytes stored
# per transaction, and raw Ed25519 single/batch verifications/s measured in the same run.
#
#   scripts/load.sh [N] [CONCURRENCY]     a fresh network in a temporary directory, stopped after
#   LOAD_DIR=DIR scripts/load.sh [N] [C]  an already running network (scripts/local-net.sh start DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
txs=${1:-5000}
concurrency=${2:-512}

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
target/release/ipledger-load "$dir" --txs "$txs" --concurrency "$concurrency"
scripts/local-net.sh status "$dir"
