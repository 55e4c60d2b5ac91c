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
/// The computation is shared with Qwen2: weights in DecoderWeights.swift, the forward pass in
/// `Session.run` (Session.swift). Llama's options (`attention_bias` also on o_proj, `mlp_bias`) are read
/// by `ModelConfig`; this file fixes Llama's tensor names.
enum LlamaForCausalLM {
    static let naming = TensorNaming.causalLM
}
