// MirageEngine: Hugging Face model folders (config, safetensors, tokenizer), Llama/Qwen2 language models,
// the KV cache and sessions with the hooks decoding research needs.
