import Foundation

/// Llama (transformers' `LlamaForCausalLM`, modeling_llama.py):
///
///     h = embed_tokens(ids)                      (or embedding rows given directly)
///     for each layer:
///         a = RMSNorm(h) ; q, k, v = a·Wqᵀ, a·Wkᵀ, a·Wvᵀ     (biases when `attention_bias`)
///         q, k = RoPE(q, k, position)            (rotate_half convention, theta and scaling from config)
///         o = softmax(q·kᵀ/√d + causal mask)·v   (GQA: num_heads/num_key_value_heads queries share a kv head)
///         h = h + o·Woᵀ
///         m = RMSNorm(h) ; h = h + (SiLU(m·Wgᵀ) ⊙ m·Wuᵀ)·Wdᵀ
///     logits = RMSNorm(h)·lm_headᵀ               (lm_head = embed_tokens when tie_word_embeddings)
///
/// The computation itself is shared with Qwen2 in `DecoderModel.swift`; this file fixes Llama's
/// tensor names and options.
enum LlamaForCausalLM: DecoderArchitecture {
    static func embedName() -> String { "model.embed_tokens.weight" }
    static func layerPrefix(_ layer: Int) -> String { "model.layers.\(layer)." }
    static func finalNormName() -> String { "model.norm.weight" }
    static func lmHeadName() -> String { "lm_head.weight" }
}
