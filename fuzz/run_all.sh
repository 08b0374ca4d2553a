#!/bin/sh
# Runs fuzz targets one after another, each for SECONDS (default 120) at the lowest CPU
# priority, and prints one table row per target: seconds, executions, corpus files, crashes.
#
#   fuzz/run_all.sh [SECONDS] [TARGET...]
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address) to rustc; RUSTC_BOOTSTRAP=1 lets
# the stable toolchain accept them. Set CARGO_TARGET_DIR to keep fuzz builds apart from the
# workspace's target directory.
set -eu
cd "$(dirname "$0")"
seconds=${1:-120}
[ $# -gt 0 ] && shift
targets=${*:-"signed_tx block certificate receipt gossip_batch consensus_message tx_json genesis_json"}
export RUSTC_BOOTSTRAP=1
mkdir -p logs
echo "| target | seconds run | executions | corpus files | crashes |"
echo "|---|---|---|---|---|"
for target in $targets; do
    log="logs/$target.log"
    status=0
    nice -n 19 cargo fuzz run -O "$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    files=$(find "corpus/$target" -type f | wc -l)
    crashes=$(find "artifacts/$target" -type f 2>/dev/null | wc -l)
    echo "| $target | $seconds | ${runs:-?} | $files | $crashes (exit $status) |"
done
