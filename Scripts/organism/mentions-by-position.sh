#!/usr/bin/env bash
# Hallucination by position in a stored CHAIR run, per sentence and per object mention (docs/organism.md,
# "Measured properties"). Each caption is cut into sentences as OrganismPropertiesTests cuts them (after every
# ".", "!" or "?"), each sentence is scored on its own with `mirage chair` against the run's own ground truth
# (taken from `mirage export`), and the table counts, by sentence position and by a mention's ordinal among the
# caption's object mentions (1st, 2nd, ...):
#   sentences     sentences at that position; "no object" of them name no COCO object
#   CHAIR_S       sentences naming an absent object / sentences (the test's "CHAIR_S by sentence position")
#   S|objects     the same among sentences that name at least one object
#   mentions      object mentions (repeats count, as in CHAIR_I); "halluc." of them name an absent object
#
#   Scripts/organism/mentions-by-position.sh RUN [DB]      # RUN: id or label; DB: default Results/mirage.sqlite
#   MIRAGE=path/to/mirage Scripts/organism/mentions-by-position.sh 1 demo.sqlite
#
# Needs jq, and CHAIR's reference resources where `mirage chair` finds them (`mirage data fetch chair-synonyms
# punkt pos-tagger wordnet`). A mention is hallucinated when its node word is not in the image's ground truth,
# which is CHAIR's rule; the sum of "halluc." over all mentions over the sum of mentions is the run's CHAIR_I
# when no sentence cut changes what the tagger reads.
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 RUN [DB]   (RUN: a CHAIR run's id or label, DB: its store)" >&2
    exit 2
fi
command -v jq >/dev/null || { echo "$0 needs jq: install it (Debian: apt-get install jq)" >&2; exit 2; }
run="$1"
db=()
if [ $# -ge 2 ]; then db=(--db "$2"); fi
if [ -z "${MIRAGE:-}" ]; then
    cd "$(dirname "$0")/../.."
    swift build --product mirage >&2
    MIRAGE="$(swift build --show-bin-path)/mirage"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$MIRAGE" export "$run" "${db[@]}" --format jsonl --output "$work/run.jsonl" >&2
jq -s 'map({key: (.image_id | tostring), value: .ground_truth}) | from_entries' "$work/run.jsonl" > "$work/gt.json"
jq -c '.image_id as $id | [.output | scan("[^.!?]*[.!?]|[^.!?]+$") | gsub("^\\s+|\\s+$"; "") | select(length > 0)]
       | to_entries[] | {image_id: $id, sentence: (.key + 1), caption: .value}' "$work/run.jsonl" > "$work/sentences.jsonl"
"$MIRAGE" chair --captions "$work/sentences.jsonl" --ground-truth "$work/gt.json" --details "$work/details.json" >&2

# details.json lists the sentences in input order; pair each with its position, then number the mentions of a caption.
jq -r --slurpfile sentences "$work/sentences.jsonl" '
  def pct(a; b): if b == 0 then "-" else ((1000 * a / b | round) / 10 | tostring) end;
  [.captions, $sentences] | transpose | map(.[0] + {position: .[1].sentence}) as $scored
  | ($scored | map({image_id, position, named: (.mentioned | length),
                    bad: ([.ground_truth as $gt | .mentioned[] | select(. as $m | $gt | index($m) | not)] | length)})) as $rows
  | ([$scored | group_by(.image_id)[]
      | [.[] | .ground_truth as $gt | .mentioned[] | {bad: (. as $m | $gt | index($m) | not)}]
      | to_entries[] | {ordinal: (.key + 1), bad: .value.bad}]) as $mentions
  | "by sentence position",
    "position\tsentences\tno object\tCHAIR_S\tS|objects\tmentions\thalluc.\tshare",
    ($rows | group_by(.position)[] | . as $g
      | ($g | map(select(.named > 0))) as $named
      | [$g[0].position, ($g | length), ($g | map(select(.named == 0)) | length),
         pct($g | map(select(.bad > 0)) | length; $g | length),
         pct($named | map(select(.bad > 0)) | length; $named | length),
         ($g | map(.named) | add), ($g | map(.bad) | add),
         pct($g | map(.bad) | add; $g | map(.named) | add)] | @tsv),
    "",
    "by mention ordinal in the caption",
    "ordinal\tmentions\thalluc.\tshare",
    ($mentions | group_by(.ordinal)[] | . as $g
      | [$g[0].ordinal, ($g | length), ($g | map(select(.bad)) | length),
         pct($g | map(select(.bad)) | length; $g | length)] | @tsv),
    "",
    "all\t\(($rows | map(.named) | add))\t\(($rows | map(.bad) | add))\t\(pct($rows | map(.bad) | add; $rows | map(.named) | add))"
' "$work/details.json"
