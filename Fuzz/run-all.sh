#!/usr/bin/env bash
# Fuzzes every target in turn (one at a time): Fuzz/run-all.sh [RUNS] [libFuzzer flags...]
# RUNS defaults to 1000000 per target. Prints one summary line per target (see Fuzz/run.sh) and
# exits 1 when any target reported a finding.
set -uo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
runs="${1:-1000000}"
shift $(( $# >= 1 ? 1 : 0 ))
targets="$("$fuzz/run.sh" list | cut -f1)" || exit 2
failed=0
for t in $targets; do
    "$fuzz/run.sh" "$t" "$runs" "$@" || failed=1
done
exit "$failed"
