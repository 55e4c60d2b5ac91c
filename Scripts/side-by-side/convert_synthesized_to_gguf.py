#!/usr/bin/env python3
"""Run llama.cpp's convert_hf_to_gguf.py on a `mirage models synth` folder.

Usage: convert_synthesized_to_gguf.py LLAMA_CPP_TREE [convert_hf_to_gguf.py arguments ...]

The converter names a BPE tokenizer's pre-tokenizer by hashing how it splits a test string and stops on
hashes it does not know. A synthesized tokenizer (random merges, Qwen2's split pattern) has no released
model behind it, so its hash is unknown. This wrapper loads the converter unchanged and, only when the
hash is not recognised, answers with the pre-tokenizer whose split pattern the synthesized tokenizer
uses: "qwen2" (override with MIRAGE_GGUF_PRE). Known tokenizers go through the converter's own check.

Used by Benchmarks/side-by-side/convert.sh, inside the venv that build-llama-cpp.sh prepares.
"""
import os
import runpy
import sys
from pathlib import Path


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: convert_synthesized_to_gguf.py LLAMA_CPP_TREE [converter arguments ...]")
    tree = Path(sys.argv[1]).resolve()
    converter = tree / "convert_hf_to_gguf.py"
    if not converter.is_file():
        sys.exit(f"error: {converter} not found; pass the llama.cpp source tree (vendor/llama.cpp of the "
                 "llama-cpp-python sdist) as the first argument")
    sys.path.insert(0, str(tree))
    sys.path.insert(1, str(tree / "gguf-py"))
    from conversion.base import TextModel  # the module the converter itself imports

    fallback = os.environ.get("MIRAGE_GGUF_PRE", "qwen2")
    recognise = TextModel.get_vocab_base_pre

    def pre_tokenizer(self, tokenizer):
        try:
            return recognise(self, tokenizer)
        except NotImplementedError:
            print(f"convert_synthesized_to_gguf: unknown BPE pre-tokenizer hash (a synthesized tokenizer); "
                  f"using '{fallback}'", file=sys.stderr)
            return fallback

    TextModel.get_vocab_base_pre = pre_tokenizer
    sys.argv = [str(converter)] + sys.argv[2:]
    runpy.run_path(str(converter), run_name="__main__")


if __name__ == "__main__":
    main()
