#!/usr/bin/env bash
# The README's main command: the users' flows on a real four-validator network of processes.
#
# Builds (release), creates a fresh consortium in a temporary directory, starts its four nodes
# (scripts/local-net.sh), runs the users' flows with the real `ipledger` CLI (each command sent to
# the next node in turn, once that node holds every block committed so far; each refusal checked
# by its rule code; the evidence receipt verified offline, and a tampered file and receipt shown
# to fail), then kills bank-b's node with SIGKILL, lets the other three commit blocks, restarts
# it and waits until all four agree on the same block hash at the same height. The network is
# always stopped on exit. Exits non-zero if any step misbehaves.
#
# Environment: DEMO_DIR=DIR to use (and keep) DIR instead of a temporary directory;
# CONVERGE_DEADLINE_S (default 180) bounds the wait for the restarted node.
set -euo pipefail
cd "$(dirname "$0")/.."

CONVERGE_DEADLINE_S=${CONVERGE_DEADLINE_S:-180}
bin=target/release
started=$SECONDS

echo "== build (release)"
# One package set for every script, so cargo resolves features once and builds each binary once.
cargo build --release -q -p ipledger-node -p ipledger-genesis -p ipledger-tests -p ipledger-client
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

echo "== the users' flows with the ipledger CLI, each command sent to the next node in turn"
flows_started=$SECONDS
work="$dir/users"
mkdir -p "$work"
keys="$dir/keys"
mapfile -t node_urls < <(for node_dir in "$dir"/node-*; do
  echo "http://$(awk '/^\[http\]/ {h=1; next} /^\[/ {h=0} h && /^listen/ {gsub(/"/, "", $3); print $3}' "$node_dir/config.toml")"
done)
next_node=0
seen_height=0

node_status_height() { # $1 = url; the node's height, or empty
  curl -fsS --max-time 2 "$1/v1/status" 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["height"])' 2>/dev/null || true
}

# Picks the next node, once it holds every block committed so far (read-your-writes).
pick_node() {
  url=${node_urls[$((next_node % ${#node_urls[@]}))]}
  next_node=$((next_node + 1))
  local deadline=$((SECONDS + 60)) h
  while :; do
    h=$(node_status_height "$url")
    [ -n "$h" ] && [ "$h" -ge "$seen_height" ] && break
    [ "$SECONDS" -lt "$deadline" ] || { echo "node $url did not reach height $seen_height within 60s" >&2; exit 1; }
    sleep 0.2
  done
}

note_height() { # after a commit on $url: later commands wait for this height
  local h
  h=$(node_status_height "$url")
  [ -n "$h" ] && [ "$h" -gt "$seen_height" ] && seen_height=$h
  return 0
}

ipl() { "$bin/ipledger" --genesis "$dir/genesis.json" "$@"; }

step() { echo; echo "-- $*"; }

ok() { # ok CMD...: runs `ipledger CMD` on the next node; any failure stops the demo
  pick_node
  echo "\$ ipledger $* (node $url)"
  ipl --node "$url" "$@" | sed 's/^/   /'
  note_height
}

refused() { # refused CODE CMD...: `ipledger CMD` must be refused by the ledger with rule CODE
  local code=$1 out rc got
  shift
  pick_node
  echo "\$ ipledger $* (node $url)"
  set +e
  out=$(ipl --node "$url" --json "$@" 2>/dev/null)
  rc=$?
  set -e
  got=$(python3 -c 'import json,sys; e=json.loads(sys.argv[1]).get("error") or {}; print(e.get("code") or "")' "$out" 2>/dev/null || true)
  if [ "$rc" -ne 1 ] || [ "$got" != "$code" ]; then
    echo "expected a refusal by rule $code (exit 1), got exit $rc: $out" >&2
    exit 1
  fi
  echo "   refused as expected by rule $code: $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["error"]["message"].split(": ", 1)[-1])' "$out")"
}

fails_verification() { # fails_verification CMD...: offline `ipledger CMD` must exit 4
  local out rc
  echo "\$ ipledger $*"
  set +e
  out=$(ipl "$@" 2>&1)
  rc=$?
  set -e
  if [ "$rc" -ne 4 ]; then
    echo "expected verification to fail (exit 4), got exit $rc: $out" >&2
    exit 1
  fi
  echo "   fails as it must: ${out#error: }"
}

json_field() { # json_field FILE KEY: a top-level member of a JSON file
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

holder=holder-li
step "the rights holder creates a key on their own machine; the trading center enrols them"
ipl keys create "$work/li.key" | sed 's/^/   /'
echo "ID card scan of Li Wei" >"$work/id-card.jpg"
ok party enroll --party "$holder" --name "Li Wei" --id-document "$work/id-card.jpg" \
  --public-key "$(ipl keys show "$work/li.key")" --key "$keys/trading-center.key" --key "$work/li.key"

step "the holder registers a work: hashed locally (the file never leaves the machine), receipt saved"
head -c $((8 * 1024 * 1024)) /dev/urandom >"$work/jinli-street.flac"
ok work register "$work/jinli-street.flac" --title "Jinli Street" --kind music --author "Li Wei" --key "$work/li.key"
song=$("$bin/ipledger" --json work show --file "$work/jinli-street.flac" --node "$url" --genesis "$dir/genesis.json" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["asset"])')
patent=patent:CNIPA:ZL202110000001.X

step "the trading center records the holder's patent"
ok asset record --kind patent --office CNIPA --number ZL202110000001.X --title "Lossless audio watermark" \
  --owner "$holder" --key "$keys/trading-center.key" --key "$work/li.key"

step "bank-a's first-rank pledge over both: draft, valued by the appraiser, signed by holder, bank-a and trading center"
ok pledge draft --pledgor "$holder" --bank bank-a --asset "$song" --asset "$patent" --amount 3000000 \
  --maturity 2027-06-30 --first-rank --out "$work/pledge-a.json"
echo "valuation report" >"$work/valuation-report.pdf"
ok pledge value "$work/pledge-a.json" --amount 5000000 --report "$work/valuation-report.pdf" --key "$keys/appraiser.key"
for signer in "$work/li.key" "$keys/bank-a.key" "$keys/trading-center.key"; do
  ok pledge sign "$work/pledge-a.json" --key "$signer" --yes
done
ok pledge submit "$work/pledge-a.json" --receipt "$work/pledge-a.receipt.json"
pledge_a=$(json_field "$work/pledge-a.json" tx_id)

step "a transfer of the pledged work without bank-a's consent is refused"
refused missing_signature work transfer "$song" --to bank-b --key "$work/li.key"

step "bank-b's junior pledge over the work ranks 2"
ok pledge draft --pledgor "$holder" --bank bank-b --asset "$song" --amount 1000000 --maturity 2027-06-30 --out "$work/pledge-b.json"
for signer in "$work/li.key" "$keys/bank-b.key" "$keys/trading-center.key"; do
  ok pledge sign "$work/pledge-b.json" --key "$signer" --yes
done
ok pledge submit "$work/pledge-b.json"
pledge_b=$(json_field "$work/pledge-b.json" tx_id)
pick_node
ranks=$(ipl --node "$url" --json pledge show "$pledge_b" | python3 -c 'import json,sys; print(json.load(sys.stdin)["record"]["ranks_at_registration"])')
[ "$ranks" = "[2]" ] || { echo "bank-b's pledge ranks $ranks, expected [2]" >&2; exit 1; }
ok pledge show "$pledge_b"

step "a first-rank demand on the encumbered work is refused"
ok pledge draft --pledgor "$holder" --bank bank-b --asset "$song" --amount 1000000 --maturity 2027-06-30 \
  --first-rank --out "$work/pledge-demand.json"
for signer in "$work/li.key" "$keys/bank-b.key" "$keys/trading-center.key"; do
  ok pledge sign "$work/pledge-demand.json" --key "$signer" --yes >/dev/null
done
refused first_rank_unavailable pledge submit "$work/pledge-demand.json"

step "the holder attests evidence of an infringement"
echo "<html>a page copying Jinli Street, captured $(date -u)</html>" >"$work/infringing-page.html"
ok evidence attest "$work/infringing-page.html" --kind web-page --case-ref "(2026)川01知民初100号" --key "$work/li.key"

step "the court verifies the evidence offline, from the file, the receipt and the genesis alone (no node)"
echo "\$ ipledger evidence verify infringing-page.html --receipt infringing-page.html.receipt.json --genesis genesis.json"
ipl --node http://127.0.0.1:9 evidence verify "$work/infringing-page.html" \
  --receipt "$work/infringing-page.html.receipt.json" | sed 's/^/   /'
cp "$work/infringing-page.html" "$work/tampered-page.html"
printf 'X' | dd of="$work/tampered-page.html" bs=1 seek=10 conv=notrunc status=none
fails_verification evidence verify "$work/tampered-page.html" --receipt "$work/infringing-page.html.receipt.json"
python3 - "$work/infringing-page.html.receipt.json" "$work/tampered.receipt.json" <<'PY'
import json, sys
receipt = json.load(open(sys.argv[1]))
receipt["leaf"]["time_ms"] -= 1  # backdate the attestation by one millisecond
json.dump(receipt, open(sys.argv[2], "w"))
PY
fails_verification evidence verify "$work/infringing-page.html" --receipt "$work/tampered.receipt.json"

step "the court freezes the work; bank-a's enforcement is refused as frozen"
case_ref="(2026)川01知民初100号"
ok court freeze "$song" --case-ref "$case_ref" --key "$keys/court.key"
refused asset_frozen pledge enforce "$pledge_a" --key "$keys/bank-a.key"

step "the court unfreezes the work; bank-a releases its pledge"
ok court unfreeze "$song" --case-ref "$case_ref" --key "$keys/court.key"
ok pledge release "$pledge_a" --key "$keys/bank-a.key"

step "the work's history and bank-a's pledges, each list proven complete"
ok work history "$song"
ok pledge list --bank bank-a
ok work show "$song"
echo
echo "users' flows passed in $((SECONDS - flows_started))s"

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
echo "the restarted node, as the client sees it (its head proven against the genesis):"
"$bin/ipledger" --node "http://$(awk '$1 == "bank-b" {print $2}' <<<"$at_min")" --genesis "$dir/genesis.json" status \
  | sed 's/^/  /'

echo "== demo passed: build ${build_s}s, network and flows $((SECONDS - demo_started))s"
