import Foundation
import MirageKernels

/// Tensor names and optional parts of one Llama-family decoder (Llama, Qwen2 and their relatives share
/// the layout of transformers' `LlamaForCausalLM`: pre-norm blocks, GQA self-attention with RoPE,
/// SiLU-gated MLP). The architecture files say which parts each model has.
protocol DecoderArchitecture {
    static func embedName() -> String
    static func layerPrefix(_ layer: Int) -> String
    static func finalNormName() -> String
    static func lmHeadName() -> String
}

extension Architecture {
    var implementation: DecoderArchitecture.Type {
        switch self {
        case .llama: return LlamaForCausalLM.self
        case .qwen2: return Qwen2ForCausalLM.self
        }
    }
}

/// A projection: weight plus optional f32 bias.
struct Projection: @unchecked Sendable {
    var weight: WeightMatrix
    var bias: [Float]?
}

/// One decoder block's weights.
struct DecoderLayerWeights: @unchecked Sendable {
    var inputNorm: [Float]
    var q: Projection, k: Projection, v: Projection, o: Projection
    var postAttentionNorm: [Float]
    var gate: Projection, up: Projection, down: Projection
}

/// The weights of a whole model. Matrices point into the memory-mapped safetensors (or own their
/// int8 copy after `--quantize q8`); norms and biases are small f32 copies.
struct DecoderWeights: @unchecked Sendable {
    var embed: WeightMatrix
    var layers: [DecoderLayerWeights]
    var finalNorm: [Float]
    var lmHead: WeightMatrix
    var lmHeadBias: [Float]?

    init(store: TensorStore, config c: ModelConfig, quantize: WeightFormat?) throws {
        let arch = c.architecture.implementation
        let qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim
        func projection(_ name: String, rows: Int, cols: Int, bias: Bool) throws -> Projection {
            var w = try store.matrix(name + ".weight", rows: rows, cols: cols)
            if quantize == .q8 { w = w.quantizedQ8() }
            let b = bias ? try store.vector(name + ".bias", count: rows) : nil
            return Projection(weight: w, bias: b)
        }
        embed = try store.matrix(arch.embedName(), rows: c.vocabSize, cols: c.hiddenSize)
        layers = try (0..<c.numLayers).map { i in
            let p = arch.layerPrefix(i)
            return DecoderLayerWeights(
                inputNorm: try store.vector(p + "input_layernorm.weight", count: c.hiddenSize),
                q: try projection(p + "self_attn.q_proj", rows: qDim, cols: c.hiddenSize, bias: c.qkvBias),
                k: try projection(p + "self_attn.k_proj", rows: kvDim, cols: c.hiddenSize, bias: c.qkvBias),
                v: try projection(p + "self_attn.v_proj", rows: kvDim, cols: c.hiddenSize, bias: c.qkvBias),
                o: try projection(p + "self_attn.o_proj", rows: c.hiddenSize, cols: qDim, bias: c.outputBias),
                postAttentionNorm: try store.vector(p + "post_attention_layernorm.weight", count: c.hiddenSize),
                gate: try projection(p + "mlp.gate_proj", rows: c.intermediateSize, cols: c.hiddenSize, bias: c.mlpBias),
                up: try projection(p + "mlp.up_proj", rows: c.intermediateSize, cols: c.hiddenSize, bias: c.mlpBias),
                down: try projection(p + "mlp.down_proj", rows: c.hiddenSize, cols: c.intermediateSize, bias: c.mlpBias))
        }
        finalNorm = try store.vector(arch.finalNormName(), count: c.hiddenSize)
        // Tied checkpoints usually omit lm_head.weight; when present (some exporters keep it) it is used.
        if !c.tieWordEmbeddings || store.entry(arch.lmHeadName()) != nil {
            lmHead = try store.matrix(arch.lmHeadName(), rows: c.vocabSize, cols: c.hiddenSize)
        } else {
            lmHead = embed
        }
        if quantize == .q8 { lmHead = lmHead.quantizedQ8() }
        lmHeadBias = nil
    }

    /// Bytes of weights one decode step streams (all projections and the LM head; embeddings are
    /// read one row per token).
    var bytesPerToken: Int {
        func bytes(_ w: WeightMatrix) -> Int { w.byteCount }
        var total = bytes(lmHead)
        for l in layers {
            for p in [l.q, l.k, l.v, l.o, l.gate, l.up, l.down] { total += bytes(p.weight) }
        }
        return total
    }
}
