#!/usr/bin/env bash
# Regenerates the decoder golden runs that `swift test` gates on (Tests/Golden/decoders/, docs/check.md):
# `mirage demo` runs greedy, beam search (3 beams) and OPERA (3 beams) on 3 synthetic images, CHAIR captions and
# POPE answers, and each of the six runs is written with `mirage check --write-golden` as <decoder>-<task>.jsonl.
#
#   Scripts/golden/regenerate-decoder-goldens.sh              # the demo's tiny random-weight model (the default)
#   Scripts/golden/regenerate-decoder-goldens.sh MODEL_DIR    # any model folder `mirage demo --model` runs
#   MIRAGE=path/to/mirage Scripts/golden/regenerate-decoder-goldens.sh   # a mirage already built
#
# The demo arguments below must stay those of Tests/MirageCLITests/CheckCLITests.swift (`demoArguments`).
# CHAIR needs WordNet (Debian: wordnet-base); without it only the POPE goldens are written.
# Run it only when a change of decoder output is intended, and commit the new files with that change.
set -euo pipefail
cd "$(dirname "$0")/../.."

model_args=()
if [ $# -ge 1 ]; then model_args=(--model "$1"); fi
if [ -z "${MIRAGE:-}" ]; then
    swift build --product mirage
    MIRAGE="$(swift build --show-bin-path)/mirage"
fi

out=Tests/Golden/decoders
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
db="$work/golden.sqlite"
"$MIRAGE" demo --db "$db" --cache "$work/cache" --count 3 --threads 2 "${model_args[@]}"

mkdir -p "$out"
for task in chair pope; do
    for decoder in greedy beam opera; do
        # `runs list` prints a header line, then one line per run starting with its id.
        id="$("$MIRAGE" runs list --db "$db" --task "$task" --decoder "$decoder" | awk 'NR > 1 && $1 ~ /^[0-9]+$/ { print $1; exit }')"
        if [ -z "$id" ]; then
            echo "no $decoder run on $task (CHAIR needs WordNet: Debian wordnet-base); $out/$decoder-$task.jsonl left as it is" >&2
            continue
        fi
        "$MIRAGE" check --db "$db" --write-golden "$out/$decoder-$task.jsonl" "$id"
    done
done
