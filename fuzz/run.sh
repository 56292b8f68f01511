#!/usr/bin/env bash
# Runs every fuzz target for a fixed budget and prints, per target, the
# executions and whether it crashed. Not part of CI (it needs the nightly
# toolchain and cargo-fuzz, and takes SECONDS x 5).
#
#   fuzz/run.sh [SECONDS]        # default 300 per target
#
# A crash leaves its input in fuzz/artifacts/<target>/ and stops that
# target; add the input as a regression test next to the code it broke.
set -uo pipefail
cd "$(dirname "$0")"
seconds="${1:-300}"
mkdir -p logs
status=0
for target in classify format_string forward_codec config_loader fluentbit_parsers; do
    mkdir -p "corpus/$target"
    # Committed seeds (the corpus itself is not committed).
    if [ -d "seeds/$target" ]; then cp -n seeds/"$target"/* "corpus/$target/"; fi
    log="logs/$target.log"
    cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1
    code=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
    if [ "$code" -eq 0 ]; then
        echo "$target: ${runs:-?} executions in ${seconds} s, no crash"
    else
        echo "$target: CRASH (exit $code) after ${runs:-?} executions; see fuzz/$log and fuzz/artifacts/$target/"
        status=1
    fi
done
exit "$status"
