#!/usr/bin/env bash
# A local four-validator ipledger network on loopback, each node a real process with its own redb
# store, for demos and manual testing.
#
#   scripts/local-net.sh start  [DIR]      build, create the consortium in DIR (once), start all nodes
#   scripts/local-net.sh status [DIR]      height and head of each node
#   scripts/local-net.sh stop   [DIR]      SIGTERM every node (SIGKILL after 20 s)
#   scripts/local-net.sh kill   NODE [DIR] kill -9 one node (e.g. bank-b)
#   scripts/local-net.sh run    NODE [DIR] start one node again
#
# DIR defaults to ./net. Ports come from the OS when the consortium is created; BLOCK_INTERVAL_MS,
# if set then, is its target block interval in milliseconds.
set -euo pipefail
cd "$(dirname "$0")/.."

command=${1:-}
case "$command" in
  kill|run) node_name=${2:?"usage: $0 $command NODE [DIR]"}; dir=${3:-net} ;;
  start|stop|status) dir=${2:-net} ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac

bin=target/release
START_DEADLINE_S=${START_DEADLINE_S:-180}

http_addr() { # the [http] listen address of a node's config.toml
  awk '/^\[http\]/ {in_http=1; next} /^\[/ {in_http=0} in_http && /^listen/ {gsub(/"/, "", $3); print $3}' "$1/config.toml"
}

node_height() { # prints the node's height, or nothing if it does not answer
  curl -fsS --max-time 2 "http://$(http_addr "$1")/v1/status" 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["height"])' 2>/dev/null || true
}

start_node() {
  local node_dir=$1
  "$bin/ipledger-node" run --config "$node_dir/config.toml" >>"$node_dir/node.log" 2>&1 &
  echo $! >"$node_dir/node.pid"
}

stop_node() { # SIGTERM, then SIGKILL after 20 s; waits until the process is gone
  local node_dir=$1 pid
  [ -f "$node_dir/node.pid" ] || return 0
  pid=$(cat "$node_dir/node.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$node_dir/node.pid"
}

wait_for_height() { # every node in "$@" reaches height >= $WANT within the deadline
  local deadline=$((SECONDS + START_DEADLINE_S)) node_dir height
  for node_dir in "$@"; do
    while :; do
      height=$(node_height "$node_dir")
      [ -n "$height" ] && [ "$height" -ge "$WANT" ] && break
      if [ "$SECONDS" -ge "$deadline" ]; then
        echo "node $(basename "$node_dir") did not reach height $WANT within ${START_DEADLINE_S}s; see $node_dir/node.log" >&2
        return 1
      fi
      sleep 0.2
    done
  done
}

case "$command" in
  start)
    # The same package set as demo.sh and load.sh, so cargo does not rebuild with other features.
    cargo build --release -q -p ipledger-node -p ipledger-genesis -p ipledger-tests -p ipledger-client
    if [ ! -f "$dir/genesis.json" ]; then
      "$bin/ipledger-genesis" local --dir "$dir" ${BLOCK_INTERVAL_MS:+--block-interval-ms "$BLOCK_INTERVAL_MS"}
    fi
    for node_dir in "$dir"/node-*; do start_node "$node_dir"; done
    WANT=1 wait_for_height "$dir"/node-*
    echo "local network running in $dir:"
    "$0" status "$dir"
    ;;
  status)
    for node_dir in "$dir"/node-*; do
      status=$(curl -fsS --max-time 2 "http://$(http_addr "$node_dir")/v1/status" 2>/dev/null || echo '{}')
      echo "$status" | python3 -c '
import json, sys
name, addr = sys.argv[1], sys.argv[2]
s = json.load(sys.stdin)
if "height" in s:
    height, head = s["height"], s["head_hash"]
    print(f"{name:24} http://{addr}  height {height:>6}  head {head}")
else:
    print(f"{name:24} http://{addr}  not answering")' "$(basename "$node_dir")" "$(http_addr "$node_dir")"
    done
    ;;
  stop)
    for node_dir in "$dir"/node-*; do stop_node "$node_dir"; done
    echo "local network in $dir stopped"
    ;;
  kill)
    node_dir="$dir/node-$node_name"
    kill -KILL "$(cat "$node_dir/node.pid")"
    rm -f "$node_dir/node.pid"
    ;;
  run)
    start_node "$dir/node-$node_name"
    ;;
esac
