#!/usr/bin/env bash
# The fault harness's short runs (CI): every seed in tests/faults/ci-seeds.txt, each a four-node
# network of release node processes under load, faults through the harness's own link proxies
# (no privileges needed). Stops at the first run with an anomaly; its output names the seed.
#
#   scripts/faults.sh            run the listed seeds
#   scripts/faults.sh SEED S K [OPTIONS...]
#                                run one seed for S seconds of fault kinds K (comma-separated),
#                                with more ipledger-faults options (for instance --prefill 512)
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p ipledger-node -p ipledger-genesis -p ipledger-tests -p ipledger-client
runs_dir=$(mktemp -d "${TMPDIR:-/tmp}/ipledger-faults.XXXXXX")
trap 'rm -rf "$runs_dir"' EXIT

run() { # seed seconds kinds [options...]
  echo "== fault run: seed $1, $2 s of $3${4:+, options: ${*:4}}"
  if ! target/release/ipledger-faults --seed "$1" --duration-s "$2" --faults "$3" \
      --dir "$runs_dir/seed-$1" "${@:4}"; then
    echo "fault run with seed $1 found an anomaly; node logs: $runs_dir/seed-$1/node-*/node.log" >&2
    trap - EXIT
    exit 1
  fi
  rm -rf "$runs_dir/seed-$1"
}

if [ $# -gt 0 ]; then
  run "${1:?seed}" "${2:?seconds}" "${3:?kinds}" "${@:4}"
  exit 0
fi
grep -v '^\s*\(#\|$\)' tests/faults/ci-seeds.txt | while read -r seed seconds kinds options; do
  # shellcheck disable=SC2086 # the options are words, split on purpose
  run "$seed" "$seconds" "$kinds" $options
done
