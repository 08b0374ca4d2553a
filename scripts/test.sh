#!/usr/bin/env bash
# The tests: the README's test command, and what CI runs.
#
# Three steps, none of which may be skipped: any failure fails the script. Two cargo
# invocations, because one cannot do both: the lying-validator test needs the node's `byzantine`
# feature, and feature unification would build that feature into every binary of a single
# `cargo test --workspace`. So the workspace is tested without it (as it ships), then the one
# test that needs it runs with it. Then the fault harness's short runs, against release node
# processes (scripts/faults.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test --workspace"
cargo test --workspace "$@"

echo "== a lying validator: cargo test -p ipledger-node --features byzantine --test network_byzantine"
cargo test -p ipledger-node --features byzantine --test network_byzantine "$@"

echo "== the fault harness's short runs: scripts/faults.sh (seeds in tests/faults/ci-seeds.txt)"
bash scripts/faults.sh
