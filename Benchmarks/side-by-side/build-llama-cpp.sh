#!/usr/bin/env bash
# Builds llama.cpp's llama-bench from the llama.cpp tree vendored in the llama-cpp-python 0.3.36
# source distribution (vendor/llama.cpp), tuned for this CPU (-DGGML_NATIVE=ON), into a cache folder outside
# the repository. Also prepares a Python venv with that tree's gguf-py and converter requirements, which
# convert.sh uses. Running it again reuses whatever is already built.
#
# Needs: pip (PyPI), cmake, ninja (Debian: cmake ninja-build), a C/C++ compiler.
# Cache folder: $MIRAGE_SIDE_BY_SIDE_CACHE, default ~/.cache/mirage-side-by-side.
set -euo pipefail

version=0.3.36
cache="${MIRAGE_SIDE_BY_SIDE_CACHE:-$HOME/.cache/mirage-side-by-side}"
jobs="${JOBS:-$(nproc)}"
mkdir -p "$cache"

need() {
    command -v "$1" >/dev/null 2>&1 || {
        echo "error: '$1' is not installed; install it (Debian: apt-get install $2) and run this script again." >&2
        exit 1
    }
}
need cmake cmake
need ninja ninja-build
need python3 python3
need c++ g++

sdist="$cache/sdist/llama_cpp_python-$version.tar.gz"
if [ ! -f "$sdist" ]; then
    echo "== downloading the llama-cpp-python $version source distribution"
    python3 -m pip download --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$cache/sdist"
fi
tree="$cache/llama_cpp_python-$version/vendor/llama.cpp"
if [ ! -f "$tree/CMakeLists.txt" ]; then
    echo "== unpacking $sdist"
    tar -xzf "$sdist" -C "$cache"
fi
[ -f "$tree/CMakeLists.txt" ] || { echo "error: $tree has no CMakeLists.txt; delete $cache/llama_cpp_python-$version and run again." >&2; exit 1; }

build="$cache/build"
# Only llama-bench is needed: it measures prefill (-p) and decode (-n) as side-by-side.sh uses them. (In this
# tree llama-cli is a client of llama-server and would add the whole server to the build.)
if [ ! -x "$build/bin/llama-bench" ]; then
    echo "== configuring llama.cpp (GGML_NATIVE=ON, Release) in $build"
    cmake -S "$tree" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
        -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF
    echo "== building llama-bench with $jobs jobs (many minutes on 2 cores)"
    cmake --build "$build" -j "$jobs" --target llama-bench
fi
echo "llama-bench: $build/bin/llama-bench"

venv="$cache/venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import gguf, transformers, torch' 2>/dev/null; then
    echo "== preparing the converter venv in $venv (its gguf-py and requirements/requirements-convert_hf_to_gguf.txt)"
    python3 -m venv "$venv"
    # The converter's requirements pin a CUDA-free torch from PyTorch's own index; any CPU torch works for
    # converting, so torch is installed on its own from TORCH_SPEC (default: a +cpu wheel if pip's find-links
    # has one, else PyPI's torch, which also pulls several GB of CUDA libraries) and the rest from the file.
    "$venv/bin/pip" install -q --upgrade pip
    torch_spec="${TORCH_SPEC:-}"
    if [ -z "$torch_spec" ]; then
        torch_spec=torch
        for dir in $(python3 -m pip config list 2>/dev/null | sed -n "s/.*find-links='\(.*\)'/\1/p"); do
            wheel=$(ls "$dir"/torch-*+cpu-*.whl 2>/dev/null | sort -V | tail -n 1 || true)
            [ -n "$wheel" ] && torch_spec="$wheel"
        done
    fi
    echo "   torch from: $torch_spec"
    "$venv/bin/pip" install -q "$torch_spec"
    grep -v -E '^(torch|--extra-index-url)' "$tree/requirements/requirements-convert_hf_to_gguf.txt" \
        | sed "s#^-r \./#-r $tree/requirements/#" > "$cache/requirements-convert.txt"
    "$venv/bin/pip" install -q -r "$cache/requirements-convert.txt"
    "$venv/bin/pip" install -q -e "$tree/gguf-py"
fi
echo "converter: $venv/bin/python $tree/convert_hf_to_gguf.py"
