#!/usr/bin/env bash
# Regenerates the decoder golden runs that `swift test` gates on (Tests/Golden/decoders/, docs/check.md):
# `mirage demo` runs greedy, beam search (3 beams) and OPERA (3 beams) on 3 images of its default model's set (the
# model organism's held-out images), CHAIR captions and POPE answers of each split, and each run is written with
# `mirage check --write-golden` as <decoder>-<protocol>.jsonl (the demo's protocol name without "demo-").
#
#   Scripts/golden/regenerate-decoder-goldens.sh              # the demo's default model (the model organism)
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
rm -f "$out"/*.jsonl
# `runs list --wide` prints a header, a rule, then one line per run: its id, an optional label, the task (chair or pope),
# the protocol's name, ... The golden file of a run is <decoder>-<protocol without "demo-">.jsonl, as
# Tests/MirageCLITests/CheckCLITests.swift expects.
protocols="$("$MIRAGE" runs list --wide --db "$db" | awk '$1 ~ /^[0-9]+$/ { for (i = 2; i < NF; i++) if ($i == "chair" || $i == "pope") { print $(i + 1); break } }' | sort -u)"
for protocol in $protocols; do
    for decoder in greedy beam opera; do
        id="$("$MIRAGE" runs list --db "$db" --protocol "$protocol" --decoder "$decoder" | awk '$1 ~ /^[0-9]+$/ { print $1; exit }')"
        if [ -z "$id" ]; then
            echo "no $decoder run on $protocol" >&2
            continue
        fi
        "$MIRAGE" check --db "$db" --write-golden "$out/$decoder-${protocol#demo-}.jsonl" "$id"
    done
done
