import Foundation
import MirageKernels

/// How to load a model folder.
public struct LoadOptions: Sendable {
    /// `.q8` quantizes every projection and the LM head to group-wise int8 at load
    /// (embeddings stay as stored). nil keeps the checkpoint's f32/f16/bf16 weights.
    public var quantize: WeightFormat?
    /// Worker threads for the model's pool (default: all cores).
    public var threads: Int
    /// How the weights are multiplied (docs/engine.md, "Precision"). `.exact` (the default): every weight
    /// widened to f32, f32 accumulation, for f32, f16 and bf16 checkpoints alike (the float32 forward pass
    /// of transformers to f32 rounding). `.fast`: bf16 dot products (`vdpbf16ps`, x rounded to bf16) on the
    /// mid-n and GEMM paths for bf16 checkpoints, and f16 checkpoints' projections and LM head converted to
    /// bf16 at load so they take them too, where the CPU's bf16 dot products beat its f32 FMAs
    /// (`Kernels.usesBF16DotProducts`; elsewhere f16 and bf16 compute as in `.exact`); q8 (`quantize`) weights take int8 dot products (`vpdpbusd`, x
    /// quantized to int8 per 32-input group) on every path; f32 weights compute as in `.exact`.
    public var precision: Precision
    /// The vision tower folder of a model that keeps its tower outside its own folder (the original LLaVA
    /// layout names it in `mm_vision_tower`); nil: the family looks for it (`--vision-tower`, docs/vision.md).
    public var visionTower: URL?

    public init(quantize: WeightFormat? = nil, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                precision: Precision = .exact) {
        self.quantize = quantize
        self.threads = threads
        self.precision = precision
    }
}

/// One prompt row: a token id (looked up in the embedding table) or a raw embedding row of
/// `hiddenSize` floats (image features, or any vector the caller builds).
public enum PromptItem: Sendable, Hashable {
    case token(Int)
    case embedding([Float])
}

/// A loaded Llama-family causal language model (`LlamaForCausalLM`, `Qwen2ForCausalLM`).
///
/// Immutable after loading and shared by any number of `Session`s. Weights are memory-mapped from the
/// safetensors files (no copy) unless quantized. All sessions of one model share its `WorkerPool`, so
/// drive them from one thread at a time (see docs/engine.md).
public final class LanguageModel: @unchecked Sendable {
    public let config: ModelConfig
    public let generationConfig: GenerationConfig?
    public let folder: URL?
    public let pool: WorkerPool
    public let rope: RotaryEmbedding
    let weights: DecoderWeights

    /// Opens `folder` (config.json, model.safetensors or the sharded index, optional
    /// generation_config.json), validating every tensor the architecture uses against the config.
    public convenience init(folder: URL, options: LoadOptions = LoadOptions()) throws {
        let config = try ModelConfig.load(from: folder.appendingPathComponent("config.json"))
        let generation = try GenerationConfig.load(from: folder.appendingPathComponent("generation_config.json"))
        try self.init(config: config, generationConfig: generation, tensors: TensorStore(folder: folder),
                      naming: config.architecture.naming, options: options)
    }

    /// A language model inside another checkpoint (e.g. LLaVA's): its config (e.g. from `text_config`),
    /// the checkpoint's tensors and where the decoder sits in them.
    public convenience init(config: ModelConfig, generationConfig: GenerationConfig?, tensors: TensorStore,
                            naming: TensorNaming, options: LoadOptions = LoadOptions()) throws {
        // Configs built in code are held to the same bounds as those read from a file, before any allocation.
        try config.validate(path: URL(fileURLWithPath: tensors.folder).appendingPathComponent("config.json").path)
        let pool = WorkerPool(threadCount: max(1, options.threads))
        var tensors = tensors
        tensors.precision = options.precision
        // A pre-quantized folder (`mirage models quantize`) computes as `--quantize q8`: its tied LM head (stored
        // once, as the f16 embedding) is quantized at load like every other projection.
        let quantize = options.quantize ?? (tensors.isPreQuantized ? .q8 : nil)
        var weights = try DecoderWeights(store: tensors, config: config, naming: naming, quantize: quantize, pool: pool)
        // f16 → bf16 only where the bf16 dot products beat f32 FMAs (`Kernels.usesBF16DotProducts`).
        if options.precision == .fast && quantize == nil && Kernels.usesBF16DotProducts { weights.convertF16ToBF16(pool: pool) }
        self.init(config: config, generationConfig: generationConfig, folder: URL(fileURLWithPath: tensors.folder),
                  weights: weights, pool: pool, precision: options.precision)
    }

    init(config: ModelConfig, generationConfig: GenerationConfig?, folder: URL?, weights: DecoderWeights, pool: WorkerPool,
         precision: Precision = .exact) {
        self.config = config
        self.generationConfig = generationConfig
        self.folder = folder
        self.weights = weights
        self.pool = pool
        self.rope = RotaryEmbedding(config: config)
        self.precision = precision
    }

    /// How the weights are multiplied (`LoadOptions.precision`).
    public let precision: Precision

    /// The format of the checkpoint's decoder weights as stored (f32, f16 or bf16), before any conversion
    /// at load (`--quantize q8`, or f16 → bf16 under `--precision fast`).
    public var storedWeightFormat: WeightFormat { weights.storedFormat }

    /// The weight format of the projections (f32, f16, bf16, or q8 when quantized).
    public var weightFormat: WeightFormat { weights.layers.first?.q.weight.format ?? weights.lmHead.format }

    /// Bytes of weights one decode step reads (projections and LM head).
    public var weightBytesPerToken: Int { weights.bytesPerToken }

    /// End-of-sequence ids: generation_config.json's, else config.json's.
    public var eosTokenIDs: [Int] {
        if let g = generationConfig, !g.eosTokenIDs.isEmpty { return g.eosTokenIDs }
        return config.eosTokenIDs
    }

    public var bosTokenID: Int? { generationConfig?.bosTokenID ?? config.bosTokenID }

    /// A new session with one empty sequence.
    public func makeSession(blockSize: Int = 16) -> Session {
        Session(model: self, blockSize: blockSize)
    }

    /// The embedding row of `token` (f32).
    public func embedding(of token: Int) throws -> [Float] {
        try checkToken(token)
        return [Float](unsafeUninitializedCapacity: config.hiddenSize) { buffer, n in
            weights.embed.copyRow(token, into: buffer.baseAddress!)
            n = config.hiddenSize
        }
    }

    func checkToken(_ token: Int) throws {
        guard token >= 0, token < config.vocabSize else {
            throw ModelError.invalidInput("token id \(token) is outside the vocabulary (0..<\(config.vocabSize))")
        }
    }

    /// Logits from hidden states of any layer (DoLa-style early exit): `rows × hiddenSize` in,
    /// `rows × vocabSize` out. `applyFinalNorm` runs the model's final RMSNorm first (an option: DoLa's
    /// official code and transformers' `_dola_decoding` apply the LM head to the raw hidden state).
    public func earlyExitLogits(_ hidden: [Float], rows: Int, applyFinalNorm: Bool) -> [Float] {
        let h = config.hiddenSize
        precondition(hidden.count == rows * h, "earlyExitLogits: expected \(rows) × \(h) floats")
        var input = hidden
        if applyFinalNorm {
            input.withUnsafeMutableBufferPointer { buf in
                hidden.withUnsafeBufferPointer { src in
                    for r in 0..<rows {
                        Kernels.rmsNorm(src.baseAddress! + r * h, weight: weights.finalNorm, count: h,
                                        eps: config.rmsNormEps, into: buf.baseAddress! + r * h)
                    }
                }
            }
        }
        var logits = [Float](repeating: 0, count: rows * config.vocabSize)
        input.withUnsafeBufferPointer { x in
            logits.withUnsafeMutableBufferPointer { y in
                linearRows(x.baseAddress!, rows: rows, weight: weights.lmHead, bias: nil, into: y.baseAddress!)
            }
        }
        return logits
    }

    /// Several projections of the same input (q/k/v; gate/up): on the mid-n and GEMM paths (n > 8) the
    /// input is packed once for all of them.
    public func linearRows(_ x: UnsafePointer<Float>, rows: Int, projections: [(Projection, UnsafeMutablePointer<Float>)]) {
        guard rows > Kernels.decodeMaxRows, let first = projections.first?.0.weight,
              projections.allSatisfy({ $0.0.weight.format == first.format && $0.0.weight.precision == first.precision
                                       && $0.0.weight.cols == first.cols }) else {
            for (p, y) in projections { linearRows(x, rows: rows, weight: p.weight, bias: p.bias, into: y) }
            return
        }
        let packed = Kernels.packInput(x, n: rows, cols: first.cols, for: first, pool: pool)
        for (p, y) in projections {
            if let bias = p.bias {
                bias.withUnsafeBufferPointer { Kernels.linear(packed, weight: p.weight, bias: $0.baseAddress, into: y, pool: pool) }
            } else {
                Kernels.linear(packed, weight: p.weight, bias: nil, into: y, pool: pool)
            }
        }
    }

    /// `Kernels.linear` over any number of rows (the kernel takes them all in one call).
    public func linearRows(_ x: UnsafePointer<Float>, rows: Int, weight: WeightMatrix, bias: [Float]?,
                           into y: UnsafeMutablePointer<Float>) {
        guard rows > 0 else { return }
        if let bias {
            bias.withUnsafeBufferPointer { b in
                Kernels.linear(x, n: rows, weight: weight, bias: b.baseAddress, into: y, pool: pool)
            }
        } else {
            Kernels.linear(x, n: rows, weight: weight, bias: nil, into: y, pool: pool)
        }
    }
}
