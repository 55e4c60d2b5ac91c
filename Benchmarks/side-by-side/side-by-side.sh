#!/usr/bin/env bash
# Mirage and llama.cpp side by side on the same synthesized model: both engines alternate, round after
# round (a load change on the shared machine hits both alike), with the same threads, prompt length and
# generated tokens, and the script prints Mirage ÷ llama.cpp for decode and prefill, per round and the
# median over rounds. Only ratios measured this way mean anything: the same machine measured 2× apart
# between memory states on one day.
#
#   Benchmarks/side-by-side/side-by-side.sh                       # Qwen2-0.5B shape, f16 and q8, 2 threads
#   Benchmarks/side-by-side/side-by-side.sh --shape 7b --formats f16 --rounds 2
#
# Options: --shape 0.5b|7b (Qwen2-0.5B or LLaMA-7B shapes), --formats f16,q8, --threads N (default 2),
# --prompt N (prefill tokens, default 576), --gen N (decode tokens, default 64), --rounds N (default 3),
# --precision exact|fast (Mirage's --precision, default exact; fast: q8 with int8 activations as llama.cpp's
# Q8_0, f16 rounded to bf16 with bf16 dot products in prompts).
# Mirage's q8 is its 8-bit format quantized at load from the f16 folder; llama.cpp's is Q8_0 converted
# from the same folder.
#
# First run: builds llama.cpp (build-llama-cpp.sh; many minutes on 2 cores), `mirage-bench` in release mode
# (and `mirage`, when the model must be synthesized), synthesizes the model (seed 0) and converts it
# (convert.sh). All of it goes to $MIRAGE_SIDE_BY_SIDE_CACHE (default ~/.cache/mirage-side-by-side),
# outside the repository; the 7B shape needs ~14 GB there in f16 (+7 GB for Q8_0).
set -euo pipefail

shape=0.5b formats=f16,q8 threads=2 prompt=576 gen=64 rounds=3 precision=exact
while [ $# -gt 0 ]; do
    case "$1" in
        --shape) shape="$2"; shift 2 ;;
        --formats) formats="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --prompt) prompt="$2"; shift 2 ;;
        --gen) gen="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --precision) precision="$2"; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown option '$1'; see $0 --help" >&2; exit 2 ;;
    esac
done
case "$shape" in
    0.5b) arch=qwen2 ;;
    7b) arch=llama ;;
    *) echo "error: --shape takes 0.5b (Qwen2-0.5B) or 7b (LLaMA-7B), not '$shape'" >&2; exit 2 ;;
esac
case "$precision" in exact|fast) ;; *) echo "error: --precision takes exact or fast, not '$precision'" >&2; exit 2 ;; esac
for f in ${formats//,/ }; do
    case "$f" in f16|q8) ;; *) echo "error: --formats takes f16 and/or q8, not '$f'" >&2; exit 2 ;; esac
done

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${MIRAGE_SIDE_BY_SIDE_CACHE:-$HOME/.cache/mirage-side-by-side}"
export MIRAGE_SIDE_BY_SIDE_CACHE="$cache"

"$here/build-llama-cpp.sh"
llama_bench="$cache/build/bin/llama-bench"

echo "== building mirage-bench (release)"
(cd "$repo" && swift build -c release --product mirage-bench >/dev/null)
bin="$(cd "$repo" && swift build -c release --show-bin-path)"

model="$cache/models/$arch-$shape-f16-seed0"
if [ ! -f "$model/model.safetensors" ]; then
    echo "== building mirage (release) and synthesizing $model"
    (cd "$repo" && swift build -c release --product mirage >/dev/null)
    "$bin/mirage" models synth --arch "$arch" --size "$shape" --seed 0 --dtype f16 --out "$model" --force
fi
gguf_f16="$cache/gguf/$arch-$shape-f16-seed0.f16.gguf"
gguf_q8="$cache/gguf/$arch-$shape-f16-seed0.q8_0.gguf"
"$here/convert.sh" "$model" "$gguf_f16" f16
case ",$formats," in *,q8,*) "$here/convert.sh" "$model" "$gguf_q8" q8_0 ;; esac

results="$(mktemp)"
trap 'rm -f "$results"' EXIT
echo "== $rounds rounds, $threads threads, prompt $prompt tokens, $gen generated tokens, Mirage --precision $precision; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$rounds"); do
    for f in ${formats//,/ }; do
        # Mirage: decode = median single-sequence step over $gen steps; prefill = best of 2 passes of $prompt tokens.
        line=$("$bin/mirage-bench" engine --model "$model" --formats "$f" --threads "$threads" \
               --decode-tokens "$gen" --prefill-tokens "$prompt" --precision "$precision" --tsv | tail -n 1)
        m_decode=$(echo "$line" | cut -f2)
        m_prefill=$(echo "$line" | cut -f3)
        # llama.cpp: llama-bench's pp$prompt and tg$gen tests, 2 repetitions each (its mean).
        gguf="$gguf_f16"; [ "$f" = q8 ] && gguf="$gguf_q8"
        json=$("$llama_bench" -m "$gguf" -t "$threads" -p "$prompt" -n "$gen" -r 2 -o jsonl 2>/dev/null)
        l_prefill=$(echo "$json" | grep "\"n_prompt\": $prompt, \"n_gen\": 0," | sed 's/.*"avg_ts": \([0-9.e+-]*\).*/\1/')
        l_decode=$(echo "$json" | grep "\"n_prompt\": 0, \"n_gen\": $gen," | sed 's/.*"avg_ts": \([0-9.e+-]*\).*/\1/')
        if [ -z "$m_decode" ] || [ -z "$l_decode" ] || [ -z "$m_prefill" ] || [ -z "$l_prefill" ]; then
            echo "error: a measurement printed nothing usable (mirage: '$line'; llama-bench: '$json')" >&2
            exit 1
        fi
        echo "$round $f $m_decode $l_decode $m_prefill $l_prefill" >> "$results"
        awk -v r="$round" -v f="$f" -v md="$m_decode" -v ld="$l_decode" -v mp="$m_prefill" -v lp="$l_prefill" \
            -v load="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
            printf "round %d %-3s decode  Mirage %7.2f  llama.cpp %7.2f tok/s  ratio %.2f | prefill  Mirage %7.1f  llama.cpp %7.1f tok/s  ratio %.2f  (load %s)\n",
                   r, f, md, ld, md / ld, mp, lp, mp / lp, load }'
    done
done

echo "== Mirage ÷ llama.cpp, median over $rounds rounds ($arch $shape, $threads threads, prefill $prompt, decode $gen, Mirage --precision $precision)"
for f in ${formats//,/ }; do
    # n + 0: an unset n would index the first round as "" and leave it out of the median.
    awk -v f="$f" '$2 == f { d[n + 0] = $3 / $4; p[n + 0] = $5 / $6; n++ }
        function median(a, n,   i, j, t) {
            for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return n % 2 ? a[int(n / 2)] : (a[n / 2 - 1] + a[n / 2]) / 2
        }
        END { printf "%-3s decode %.2f×  prefill %.2f×\n", f, median(d, n), median(p, n) }' "$results"
done
