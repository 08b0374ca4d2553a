#!/usr/bin/env bash
# The fault harness's short runs (CI): every seed in tests/faults/ci-seeds.txt, each a four-node
# network of release node processes under load, faults through the harness's own link proxies
# (no privileges needed). Stops at the first run with an anomaly; its output names the seed.
#
#   scripts/faults.sh            run the listed seeds
#   scripts/faults.sh SEED S K   run one seed for S seconds of fault kinds K (comma-separated)
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p ipledger-node -p ipledger-genesis -p ipledger-tests -p ipledger-client
runs_dir=$(mktemp -d "${TMPDIR:-/tmp}/ipledger-faults.XXXXXX")
trap 'rm -rf "$runs_dir"' EXIT

run() { # seed seconds kinds
  echo "== fault run: seed $1, $2 s of $3"
  if ! target/release/ipledger-faults --seed "$1" --duration-s "$2" --faults "$3" \
      --dir "$runs_dir/seed-$1"; then
    echo "fault run with seed $1 found an anomaly; node logs: $runs_dir/seed-$1/node-*/node.log" >&2
    trap - EXIT
    exit 1
  fi
  rm -rf "$runs_dir/seed-$1"
}

if [ $# -gt 0 ]; then
  run "${1:?seed}" "${2:?seconds}" "${3:?kinds}"
  exit 0
fi
grep -v '^\s*\(#\|$\)' tests/faults/ci-seeds.txt | while read -r seed seconds kinds; do
  run "$seed" "$seconds" "$kinds"
done
