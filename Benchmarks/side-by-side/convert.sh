#!/usr/bin/env bash
# Converts a `mirage models synth` folder to GGUF with the converter of the llama.cpp tree that
# build-llama-cpp.sh unpacked (its convert_hf_to_gguf.py, in its venv). The synthesized tokenizer's BPE
# pre-tokenizer is unknown to the converter's hash check; Scripts/side-by-side/convert_synthesized_to_gguf.py
# answers "qwen2" (its split pattern) for unknown hashes only, without changing the converter.
#
# Usage: convert.sh MODEL_DIR OUT.gguf [f16|bf16|f32|q8_0]
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: $0 MODEL_DIR OUT.gguf [f16|bf16|f32|q8_0]" >&2; exit 2; }
model="$1"
out="$2"
outtype="${3:-f16}"
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${MIRAGE_SIDE_BY_SIDE_CACHE:-$HOME/.cache/mirage-side-by-side}"
tree="$cache/llama_cpp_python-0.3.36/vendor/llama.cpp"
venv="$cache/venv"

[ -f "$model/config.json" ] || { echo "error: $model has no config.json; make one with \`mirage models synth ... --out $model\`." >&2; exit 1; }
[ -x "$venv/bin/python" ] || { echo "error: no converter venv in $venv; run $here/build-llama-cpp.sh first." >&2; exit 1; }
if [ -f "$out" ] && [ "$out" -nt "$model/model.safetensors" ]; then
    echo "reusing $out"
    exit 0
fi
mkdir -p "$(dirname "$out")"
"$venv/bin/python" "$repo/Scripts/side-by-side/convert_synthesized_to_gguf.py" "$tree" \
    "$model" --outfile "$out.partial" --outtype "$outtype"
mv "$out.partial" "$out"
echo "wrote $out"
