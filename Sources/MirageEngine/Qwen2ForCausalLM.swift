import Foundation

/// Qwen2 (transformers' `Qwen2ForCausalLM`, modeling_qwen2.py) is the Llama block with two differences
/// that matter for inference:
/// - q_proj, k_proj and v_proj always carry a bias (o_proj and the MLP do not);
/// - an optional sliding window (`use_sliding_window`), off in every released Qwen2 checkpoint;
///   Mirage rejects configs that turn it on (see `ModelConfig`).
/// Small Qwen2 models tie the LM head to the embeddings (`tie_word_embeddings: true`).
/// Tensor names are Llama's; the forward pass is the shared one (see LlamaForCausalLM.swift).
enum Qwen2ForCausalLM {
    static let naming = TensorNaming.causalLM
}
