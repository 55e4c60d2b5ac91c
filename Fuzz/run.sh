#!/usr/bin/env bash
# Builds the libFuzzer driver and fuzzes one parser: Fuzz/run.sh TARGET [RUNS] [extra libFuzzer flags...]
#   TARGET  a name from `Fuzz/run.sh list` (the folder under Fuzz/corpus/)
#   RUNS    inputs to run (default 1000000; 0 = only replay the corpus)
# The corpus libFuzzer grows is kept in Fuzz/.build/corpus/TARGET (not committed) and used again next time;
# afterwards the inputs that add coverage beyond the committed Fuzz/corpus/TARGET are merged into it
# (libFuzzer -set_cover_merge=1 over edges), so the committed corpus stays small. Crash, timeout and out-of-memory
# reproducers go to Fuzz/.build/artifacts/TARGET/. Prints one summary line and appends it to
# Fuzz/.build/summary.tsv. Exit status: 0 when nothing was found, 1 when libFuzzer reported a finding.
# Environment: NICE (default 10), TIMEOUT seconds per input (default 10), RSS_MB (default 4096),
# MERGE=0 to leave Fuzz/corpus untouched.
set -euo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
target="${1:?usage: Fuzz/run.sh TARGET [RUNS] [libFuzzer flags...] (Fuzz/run.sh list shows the targets)}"
runs="${2:-1000000}"
shift $(( $# >= 2 ? 2 : 1 ))

nice -n "${NICE:-10}" swift build --package-path "$fuzz" --sanitize=fuzzer --product mirage-fuzz >&2
bin="$(swift build --package-path "$fuzz" --sanitize=fuzzer --show-bin-path)/mirage-fuzz"
# libFuzzer writes reproducers itself; Swift's backtracer would otherwise take the signal first.
export SWIFT_BACKTRACE=enable=no

targets="$(MIRAGE_FUZZ_TARGET=list "$bin" 2>/dev/null)"
if [ "$target" = list ]; then printf '%s\n' "$targets"; exit 0; fi
max_len="$(printf '%s\n' "$targets" | awk -F'\t' -v t="$target" '$1 == t { print $2 }')"
if [ -z "$max_len" ]; then
    echo "error: '$target' is not a fuzz target; use one of: $(printf '%s\n' "$targets" | cut -f1 | tr '\n' ' ')" >&2
    exit 2
fi

seeds="$fuzz/corpus/$target"
work="$fuzz/.build/corpus/$target"
artifacts="$fuzz/.build/artifacts/$target"
log="$fuzz/.build/logs/$target.log"
mkdir -p "$seeds" "$work" "$artifacts" "$(dirname "$log")"

status=0
MIRAGE_FUZZ_TARGET="$target" nice -n "${NICE:-10}" "$bin" "$work" "$seeds" \
    -runs="$runs" -max_len="$max_len" -timeout="${TIMEOUT:-10}" -rss_limit_mb="${RSS_MB:-4096}" \
    -artifact_prefix="$artifacts/" -print_final_stats=1 "$@" >"$log" 2>&1 || status=$?

stat() { awk -v k="stat::$1:" '$1 == k { print $2 }' "$log" | tail -1; }
executed="$(stat number_of_executed_units)"; exec_s="$(stat average_exec_per_sec)"
findings="$(find "$artifacts" -type f | wc -l | tr -d ' ')"

if [ "$status" -eq 0 ] && [ "${MERGE:-1}" != 0 ]; then
    # Keep only what adds coverage: start from the committed files, merge in the grown corpus.
    merged="$fuzz/.build/merge/$target"
    rm -rf "$merged"; mkdir -p "$merged"
    cp "$seeds"/. "$merged"/ -r
    # -set_cover_merge with edge coverage only (-use_counters=0): ~10x fewer files than -merge=1 over
    # counter buckets, every edge still covered.
    MIRAGE_FUZZ_TARGET="$target" nice -n "${NICE:-10}" "$bin" -set_cover_merge=1 -use_counters=0 -max_len="$max_len" \
        -timeout="${TIMEOUT:-10}" "$merged" "$work" >>"$log" 2>&1
    for f in "$merged"/*; do [ -e "$seeds/$(basename "$f")" ] || cp "$f" "$seeds/"; done
fi

line="$(printf '%s\tinputs=%s\texec/s=%s\tcorpus(grown)=%s\tcorpus(committed)=%s\tfindings=%s\tstatus=%s' \
    "$target" "${executed:-?}" "${exec_s:-?}" "$(ls "$work" | wc -l | tr -d ' ')" \
    "$(ls "$seeds" | wc -l | tr -d ' ')" "$findings" "$status")"
echo "$line"
echo -e "$(date -u +%FT%TZ)\t$line" >>"$fuzz/.build/summary.tsv"
if [ "$status" -ne 0 ]; then
    echo "libFuzzer stopped with a finding (exit $status): see $log and $artifacts/" >&2
    grep -E '^(==|SUMMARY|artifact_prefix|Test unit written|.*Fatal error)' "$log" | head -10 >&2 || true
    exit 1
fi
