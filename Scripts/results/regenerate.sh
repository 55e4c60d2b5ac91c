#!/usr/bin/env bash
# Regenerates the committed tables in Results/ from the reference data: OPERA's released CHAIR captions
# (12 logs), rescored by Mirage's CHAIR next to the reference chair.py's numbers and the paper's.
#
#   Scripts/results/regenerate.sh [MIRAGE] [DATA]
#     MIRAGE  the mirage binary (default .build/release/mirage, else .build/debug/mirage)
#     DATA    the reference data folder (default ../shared/data next to the repository); without it, the
#             logs and CHAIR resources come from the data store (downloaded and checked on first use)
# The runs land in a fresh Results/tables.sqlite (untracked), so the run ids in the CSV do not depend on what
# else Results/mirage.sqlite holds.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
mirage=${1:-}
if [[ -z $mirage ]]; then
    mirage=$root/.build/release/mirage
    [[ -x $mirage ]] || mirage=$root/.build/debug/mirage
fi
[[ -x $mirage ]] || { echo "no mirage binary at $mirage: build it (swift build -c release) or pass its path" >&2; exit 1; }
data=${2:-$root/../shared/data}
db=Results/tables.sqlite
rm -f "$db" "$db-wal" "$db-shm"
args=(--db "$db" --format md)
if [[ -d $data/chair/opera-logs ]]; then
    args+=(--from "$data/chair/opera-logs" --synonyms "$data/chair/synonyms.txt" --nltk-data "$data/nltk"
           --ground-truth "$data/chair/coco2014_gt_objects.json")
fi
"$mirage" reproduce opera "${args[@]}" > Results/opera-chair.md
"$mirage" compare --db "$db" $(seq 1 12) --allow-mixed-protocols --format csv > Results/opera-chair.csv
echo "wrote Results/opera-chair.md and Results/opera-chair.csv (runs in $db)"
