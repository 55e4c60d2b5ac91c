#!/usr/bin/env bash
# Items/s of `mirage run` with 1, 2 and 4 workers (processes) sharing one experiment in one database through
# item claims: a 1,000-item POPE experiment (greedy, 6 new tokens) on the tiny synthesized LLaVA over a folder
# of COCO images. Prints one line per worker count; nothing is timed by a test.
#
#   Benchmarks/workers/workers.sh [IMAGES_DIR] [MIRAGE]
#     IMAGES_DIR  COCO images named %012d.jpg or COCO_val2014_%012d.jpg (default ../shared/data/coco/images)
#     MIRAGE      the mirage binary (default .build/release/mirage, else .build/debug/mirage)
#   WORKERS="1 2 4" ITEMS=1000 DB=postgres://... to change the defaults (DB: a server instead of a fresh file;
#   its experiment must be empty).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
images=${1:-$root/../shared/data/coco/images}
mirage=${2:-}
if [[ -z $mirage ]]; then
    mirage=$root/.build/release/mirage
    [[ -x $mirage ]] || mirage=$root/.build/debug/mirage
fi
[[ -x $mirage ]] || { echo "no mirage binary at $mirage: build it (swift build -c release) or pass its path" >&2; exit 1; }
# (the help is read whole first: `grep -q` closing the pipe early would fail the check under pipefail)
run_help=$("$mirage" run --help)
grep -q -- '--claim-batch' <<<"$run_help" \
    || { echo "$mirage predates item claiming (no --claim-batch): rebuild it, or pass a newer binary" >&2; exit 1; }
[[ -d $images ]] || { echo "no image folder $images: pass a folder of COCO images" >&2; exit 1; }
items=${ITEMS:-1000}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

"$mirage" models synth --arch llava-llama --size tiny --seed 3 --out "$scratch/tiny" >/dev/null
# Image ids from the file names; questions go round the images until there are $items of them.
ids=($(ls "$images" | sed -nE 's/^(COCO_[a-z]+2014_)?0*([0-9]+)\.jpg$/\2/p' | sort -n))
[[ ${#ids[@]} -gt 0 ]] || { echo "no COCO-named JPEGs in $images" >&2; exit 1; }
for ((q = 0; q < items; q++)); do
    id=${ids[q % ${#ids[@]}]}
    label=$([[ $((q % 2)) -eq 0 ]] && echo yes || echo no)
    printf '{"question_id": %d, "image": "COCO_val2014_%012d.jpg", "text": "Is there a dog number %d in the image?", "label": "%s"}\n' \
        $((q + 1)) "$id" "$q" "$label"
done > "$scratch/questions.jsonl"
cat > "$scratch/pope.yaml" <<YAML
task: pope
questions: {path: questions.jsonl}
prompt: "{question}"
template: llava15
max_new_tokens: 6
answer_parser: opera
YAML

echo "$(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg); $items items; $mirage"
for workers in ${WORKERS:-1 2 4}; do
    db=${DB:-$scratch/w$workers.sqlite}
    args=(run --model "$scratch/tiny" --protocol "$scratch/pope.yaml" --images "$images" --decoder greedy
          --threads 1 --db "$db")
    # The model load and planning happen before the first claim: time from the start of all workers to
    # the end of the last, and separately each worker's share.
    start=$(date +%s.%N)
    pids=()
    for ((w = 0; w < workers; w++)); do
        "$mirage" "${args[@]}" --json-progress >/dev/null 2>"$scratch/w$workers-$w.err" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    end=$(date +%s.%N)
    shares=$(for ((w = 0; w < workers; w++)); do grep -c '"item"' "$scratch/w$workers-$w.err" || true; done | paste -sd/)
    awk -v s="$start" -v e="$end" -v n="$items" -v w="$workers" -v shares="$shares" \
        'BEGIN { printf "%d worker%s: %.1f s wall, %.1f items/s (items per worker %s)\n", w, w == 1 ? "" : "s", e - s, n / (e - s), shares }'
done
