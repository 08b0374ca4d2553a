#!/usr/bin/env bash
# The README's main command: the users' flows on a real four-validator network of processes.
#
# Builds (release), creates a fresh consortium in a temporary directory, starts its four nodes
# (scripts/local-net.sh), runs ipledger-demo (every step a signed transaction submitted over HTTP
# to a different node, each refusal checked by its rule code, the evidence receipt verified
# offline), then kills bank-b's node with SIGKILL, lets the other three commit blocks, restarts
# it and waits until all four agree on the same block hash at the same height. The network is
# always stopped on exit. Exits non-zero if any step misbehaves.
#
# Environment: DEMO_DIR=DIR to use (and keep) DIR instead of a temporary directory;
# CONVERGE_DEADLINE_S (default 180) bounds the wait for the restarted node.
set -euo pipefail
cd "$(dirname "$0")/.."

CONVERGE_DEADLINE_S=${CONVERGE_DEADLINE_S:-180}
started=$SECONDS

echo "== build (release)"
# One package set for every script, so cargo resolves features once and builds each binary once.
cargo build --release -q -p ipledger-node -p ipledger-genesis -p ipledger-tests
build_s=$((SECONDS - started))

if [ -n "${DEMO_DIR:-}" ]; then
  dir=$DEMO_DIR
  mkdir -p "$dir"
  keep_dir=1
else
  dir=$(mktemp -d "${TMPDIR:-/tmp}/ipledger-demo.XXXXXX")
  keep_dir=0
fi
cleanup() {
  local rc=$?
  scripts/local-net.sh stop "$dir" >/dev/null 2>&1 || true
  if [ "$rc" -ne 0 ]; then
    echo "demo FAILED (exit $rc); node logs:" >&2
    for log in "$dir"/node-*/node.log; do
      [ -f "$log" ] && { echo "--- $log (last 20 lines)" >&2; tail -n 20 "$log" >&2; }
    done
  fi
  [ "$keep_dir" = 1 ] || rm -rf "$dir"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

demo_started=$SECONDS
echo "== a fresh four-validator network in $dir"
scripts/local-net.sh start "$dir"

echo "== the users' flows, over HTTP, rotating between the nodes"
target/release/ipledger-demo "$dir"

# Prints one line per node: "name http-address height head-hash" ("name address - -" if it does
# not answer). With a height argument, prints that block's hash instead of the head's.
node_heads() {
  python3 - "$dir" "${1:-}" <<'PY'
import json, pathlib, re, sys, urllib.request
root, at = pathlib.Path(sys.argv[1]), sys.argv[2]
for node in sorted(root.glob("node-*")):
    text = (node / "config.toml").read_text()
    http = text.split("[http]", 1)[1]
    addr = re.search(r'^listen\s*=\s*"([^"]+)"', http, re.M).group(1)
    name = node.name[len("node-"):]
    try:
        if at:
            with urllib.request.urlopen(f"http://{addr}/v1/blocks/{at}", timeout=3) as r:
                b = json.load(r)
            print(name, addr, b["height"], b["hash"])
        else:
            with urllib.request.urlopen(f"http://{addr}/v1/status", timeout=3) as r:
                s = json.load(r)
            print(name, addr, s["height"], s["head_hash"])
    except Exception:
        print(name, addr, "-", "-")
PY
}

height_of() { # height of node $1 per node_heads, or empty
  node_heads | awk -v n="$1" '$1 == n && $3 != "-" {print $3}'
}

echo "== kill -9 bank-b's node; the other three keep committing"
scripts/local-net.sh kill bank-b "$dir"
at_kill=$(height_of trading-center)
[ -n "$at_kill" ] || { echo "trading-center's node does not answer" >&2; exit 1; }
want=$((at_kill + 3))
deadline=$((SECONDS + CONVERGE_DEADLINE_S))
while :; do
  h=$(height_of trading-center)
  [ -n "$h" ] && [ "$h" -ge "$want" ] && break
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "three validators did not commit 3 blocks past height $at_kill within ${CONVERGE_DEADLINE_S}s" >&2
    exit 1
  fi
  sleep 0.5
done
echo "bank-b down since height $at_kill; the others reached height $h without it"

echo "== restart bank-b's node; wait until all four agree on the same block at the same height"
scripts/local-net.sh run bank-b "$dir"
deadline=$((SECONDS + CONVERGE_DEADLINE_S))
while :; do
  heads=$(node_heads)
  if ! grep -q ' - -$' <<<"$heads"; then
    min=$(awk 'NR == 1 || $3 < m {m = $3} END {print m}' <<<"$heads")
    if [ "$min" -ge "$h" ]; then
      # Blocks keep coming, so compare the hash of one height every node has.
      at_min=$(node_heads "$min")
      if ! grep -q ' - -$' <<<"$at_min" && [ "$(awk '{print $4}' <<<"$at_min" | sort -u | wc -l)" -eq 1 ]; then
        break
      fi
      if [ "$(awk '{print $4}' <<<"$at_min" | sort -u | wc -l)" -gt 1 ] && ! grep -q ' - -$' <<<"$at_min"; then
        echo "the nodes disagree on block $min:" >&2
        echo "$at_min" >&2
        exit 1
      fi
    fi
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "the nodes did not converge within ${CONVERGE_DEADLINE_S}s:" >&2
    echo "$heads" >&2
    exit 1
  fi
  sleep 0.5
done
echo "all four nodes hold the same block at height $min:"
awk '{printf "  %-16s height %6s  hash %s\n", $1, $3, $4}' <<<"$at_min"
echo "status:"
scripts/local-net.sh status "$dir"
echo "== demo passed: build ${build_s}s, network and flows $((SECONDS - demo_started))s"
