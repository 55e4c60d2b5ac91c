import Foundation
import MirageKernels

/// Where a Llama-family decoder's tensors are in a checkpoint (Llama, Qwen2 and their relatives share
/// transformers' `LlamaForCausalLM` layout: pre-norm blocks, GQA self-attention with RoPE, SiLU-gated MLP).
/// Multimodal checkpoints nest the language model under a prefix: use `prefixed`.
public struct TensorNaming: Sendable, Equatable {
    /// Prefix of the decoder body: "model." in a causal-LM checkpoint.
    public var body: String
    /// Full name of the LM head weight.
    public var lmHead: String

    public init(body: String, lmHead: String) {
        self.body = body
        self.lmHead = lmHead
    }

    /// `model.embed_tokens.weight`, `model.layers.N.…`, `model.norm.weight`, `lm_head.weight`.
    public static let causalLM = TensorNaming(body: "model.", lmHead: "lm_head.weight")

    /// E.g. LLaVA in transformers 4: `prefixed("language_model.")` → `language_model.model.layers.N.…`,
    /// `language_model.lm_head.weight`. (transformers 5 writes `TensorNaming(body: "model.language_model.",
    /// lmHead: "lm_head.weight")`.)
    public static func prefixed(_ prefix: String) -> TensorNaming {
        TensorNaming(body: prefix + "model.", lmHead: prefix + "lm_head.weight")
    }

    var embed: String { body + "embed_tokens.weight" }
    func layer(_ i: Int) -> String { body + "layers.\(i)." }
    var finalNorm: String { body + "norm.weight" }
}

extension Architecture {
    /// The tensor layout of the architecture's own checkpoints (see LlamaForCausalLM.swift, Qwen2ForCausalLM.swift).
    public var naming: TensorNaming {
        switch self {
        case .llama: return LlamaForCausalLM.naming
        case .qwen2: return Qwen2ForCausalLM.naming
        }
    }
}

/// A projection: weight plus optional f32 bias.
public struct Projection: @unchecked Sendable {
    public var weight: WeightMatrix
    public var bias: [Float]?

    public init(weight: WeightMatrix, bias: [Float]?) {
        self.weight = weight
        self.bias = bias
    }
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
    /// The projections' format in the checkpoint, before `quantizeQ8` or `convertF16ToBF16`.
    let storedFormat: WeightFormat

    init(store: TensorStore, config c: ModelConfig, naming: TensorNaming, quantize: WeightFormat?, pool: WorkerPool) throws {
        let qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim
        func projection(_ name: String, rows: Int, cols: Int, bias: Bool) throws -> Projection {
            let w = try store.matrix(name + ".weight", rows: rows, cols: cols)
            let b = bias ? try store.vector(name + ".bias", count: rows) : nil
            return Projection(weight: w, bias: b)
        }
        embed = try store.matrix(naming.embed, rows: c.vocabSize, cols: c.hiddenSize)
        layers = try (0..<c.numLayers).map { i in
            let p = naming.layer(i)
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
        finalNorm = try store.vector(naming.finalNorm, count: c.hiddenSize)
        // Tied checkpoints usually omit lm_head.weight; when present (some exporters keep it) it is used.
        if !c.tieWordEmbeddings || store.hasMatrix(naming.lmHead) {
            lmHead = try store.matrix(naming.lmHead, rows: c.vocabSize, cols: c.hiddenSize)
        } else {
            lmHead = embed
        }
        storedFormat = layers.first?.q.weight.format ?? lmHead.format
        if quantize == .q8 { quantizeQ8(pool: pool) }
    }

    /// `--precision fast` on an f16 checkpoint: every projection and the LM head rounded to bf16 (new
    /// memory; the mapped f16 pages are no longer read), so that prompts take the bf16 dot products.
    /// Embeddings stay f16 (one row per token is read). Matrices in parallel.
    mutating func convertF16ToBF16(pool: WorkerPool) {
        transformProjections(pool: pool) { $0.convertedF16ToBF16() }
    }

    /// Replaces every projection and the LM head by its group-wise int8 copy: one matrix at a time with its rows
    /// across the pool, each source matrix's mapped pages handed back as soon as its copy exists
    /// (`WeightMatrix.releaseSourcePages`). Peak memory is the q8 weights plus about one source matrix, not the
    /// q8 weights plus the whole f16 checkpoint (which kept a 7B model at ~20 GB resident).
    private mutating func quantizeQ8(pool: WorkerPool) {
        func convert(_ w: WeightMatrix) -> WeightMatrix {
            let q = w.quantizedQ8(pool: pool)
            w.releaseSourcePages()
            return q
        }
        for i in layers.indices {
            layers[i].q.weight = convert(layers[i].q.weight); layers[i].k.weight = convert(layers[i].k.weight)
            layers[i].v.weight = convert(layers[i].v.weight); layers[i].o.weight = convert(layers[i].o.weight)
            layers[i].gate.weight = convert(layers[i].gate.weight); layers[i].up.weight = convert(layers[i].up.weight)
            layers[i].down.weight = convert(layers[i].down.weight)
        }
        lmHead = convert(lmHead)
    }

    /// Replaces every projection and the LM head by `transform` of it, matrices in parallel.
    private mutating func transformProjections(pool: WorkerPool, _ transform: (WeightMatrix) -> WeightMatrix) {
        var matrices = layers.flatMap { l in [l.q, l.k, l.v, l.o, l.gate, l.up, l.down].map(\.weight) }
        matrices.append(lmHead)
        // Largest first so the pool's last task is a small one.
        let order = matrices.indices.sorted { matrices[$0].rows * matrices[$0].cols > matrices[$1].rows * matrices[$1].cols }
        let results = UnsafeMutableBufferPointer<WeightMatrix?>.allocate(capacity: matrices.count)
        results.initialize(repeating: nil)
        defer { results.deallocate() }
        pool.parallelFor(order.count) { t in results[order[t]] = transform(matrices[order[t]]) }
        var next = 0
        func take() -> WeightMatrix { defer { next += 1 }; return results[next]! }
        for i in layers.indices {
            layers[i].q.weight = take(); layers[i].k.weight = take(); layers[i].v.weight = take()
            layers[i].o.weight = take(); layers[i].gate.weight = take(); layers[i].up.weight = take()
            layers[i].down.weight = take()
        }
        lmHead = take()
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
