#!/bin/sh
# Runs fuzz targets one after another, each for SECONDS (default 120) at the lowest CPU
# priority, and prints one table row per target: seconds, executions, executions per second,
# coverage (libFuzzer's `cov`), corpus files, crashes and peak RSS.
#
#   fuzz/run_all.sh [SECONDS] [TARGET...]
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address) to rustc; RUSTC_BOOTSTRAP=1 lets
# the stable toolchain accept them. Set CARGO_TARGET_DIR to keep fuzz builds apart from the
# workspace's target directory. The build is cargo-fuzz's default: release with debug
# assertions and overflow checks; FUZZ_BUILD=-O builds without them (faster, catches less).
set -eu
cd "$(dirname "$0")"
seconds=${1:-120}
[ $# -gt 0 ] && shift
targets=${*:-"signed_tx block certificate receipt gossip_batch consensus_message tx_json genesis_json http_request"}
build=${FUZZ_BUILD:-}
export RUSTC_BOOTSTRAP=1
mkdir -p logs
echo "| target | seconds run | executions | execs/s | coverage | corpus files | crashes | peak RSS (MB) |"
echo "|---|---|---|---|---|---|---|---|"
for target in $targets; do
    log="logs/$target.log"
    status=0
    # shellcheck disable=SC2086 # $build is empty or one flag
    nice -n 19 cargo fuzz run $build "$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
    cov=$(sed -n 's/^#[0-9]*.*cov: \([0-9]*\).*/\1/p' "$log" | tail -n 1)
    files=$(find "corpus/$target/" -type f | wc -l)
    crashes=$(find "artifacts/$target" -type f -name 'crash-*' 2>/dev/null | wc -l)
    echo "| $target | $seconds | ${runs:-?} | ${rate:-?} | ${cov:-?} | $files | $crashes (exit $status) | ${rss:-?} |"
done
