#!/usr/bin/env bash
# The fault harness's long run: one four-node network under steady load for MINUTES (default 60)
# with every fault kind drawn from a random seed (printed; rerun it with scripts/faults.sh SEED
# SECONDS KINDS), then the same checks as the short runs. Prints the runs, faults injected,
# transactions committed, anomalies, and each node's peak memory in the first and last ten
# minutes, which must be within 10 % of each other.
#
#   scripts/soak.sh [MINUTES] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=${1:-60}
seed=${2:-$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}
# A store cache small enough to be full within the first ten minutes, so that the memory rule
# below sees any other growth (the cache is a config setting, default 64 MiB).
store_cache_mib=${SOAK_STORE_CACHE_MIB:-16}
# Transactions committed before the faults and the memory windows start, then every node is
# restarted: the soak measures a ledger already larger than the cache (about 95 MB of store),
# since from an empty ledger memory rises by design until the store outgrows the cache.
prefill=${SOAK_PREFILL:-20000}
kinds=crash,crash-during-start,isolate,split,slow-link,lossy-link,crash-two

cargo build --release -q -p ipledger-node -p ipledger-genesis -p ipledger-tests -p ipledger-client
dir=$(mktemp -d "${TMPDIR:-/tmp}/ipledger-soak.XXXXXX")
log="$dir/run.log"
echo "soak: seed $seed, $minutes minutes, network and logs in $dir"
status=0
target/release/ipledger-faults --seed "$seed" --duration-s $((minutes * 60)) --faults "$kinds" \
  --dir "$dir/net" --store-cache-mib "$store_cache_mib" --prefill "$prefill" | tee "$log" || status=$?

echo "== soak summary"
echo "runs: 1 (seed $seed, $minutes minutes)"
grep -E '^  (faults|kill|link faults|datagrams|prefilled|acknowledged|unanswered|blocks|longest|anomalies)' "$log" || true
memory_ok=1
while read -r name first last; do
  echo "peak memory $name: ${first} MiB in the first 10 minutes, ${last} MiB in the last 10 ($(grep -E "^  peak memory +$name:" "$log" | sed 's/.*; //'))"
  if [ "$minutes" -ge 20 ] && [ "$first" -gt 0 ] && [ $((last * 100)) -gt $((first * 110)) ]; then
    echo "  grew by more than 10 %" >&2
    memory_ok=0
  fi
done < <(sed -n 's/^  peak memory *\([^:]*\): \([0-9]*\) MiB (first 10 min), \([0-9]*\) MiB.*/\1 \2 \3/p' "$log")
if [ "$status" -ne 0 ] || [ "$memory_ok" -ne 1 ]; then
  echo "soak FAILED (seed $seed); logs in $dir" >&2
  exit 1
fi
echo "soak passed"
rm -rf "$dir"
