import Foundation
import MirageKernels

/// The BLIP-2 Querying Transformer's configuration (`qformer_config`; transformers 5.24 Blip2QFormerConfig /
/// InstructBlipQFormerConfig, whose defaults are BERT-base's: 768 wide, 12 layers, 12 heads, 3072, eps 1e-12,
/// cross-attention every 2nd layer, vocabulary 30522, 512 positions).
public struct QFormerConfig: Sendable, Equatable {
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numLayers: Int
    public var numHeads: Int
    /// Layer i has cross-attention to the image rows when `i % crossAttentionFrequency == 0`.
    public var crossAttentionFrequency: Int
    /// Width of the image rows (the vision tower's hidden size).
    public var encoderHiddenSize: Int
    public var layerNormEps: Float
    public var activation: GeluKind
    public var vocabSize: Int
    public var maxPositionEmbeddings: Int

    public init(hiddenSize: Int = 768, intermediateSize: Int = 3072, numLayers: Int = 12, numHeads: Int = 12,
                crossAttentionFrequency: Int = 2, encoderHiddenSize: Int = 1408, layerNormEps: Float = 1e-12,
                activation: GeluKind = .erf, vocabSize: Int = 30522, maxPositionEmbeddings: Int = 512) {
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.crossAttentionFrequency = crossAttentionFrequency
        self.encoderHiddenSize = encoderHiddenSize
        self.layerNormEps = layerNormEps
        self.activation = activation
        self.vocabSize = vocabSize
        self.maxPositionEmbeddings = maxPositionEmbeddings
    }

    public init(json: [String: Any], path: String, prefix: String = "qformer_config.") throws {
        let fields = JSONFields(object: json, path: path, prefix: prefix)
        let d = QFormerConfig()
        let activation = try GeluKind.configured(json, path: path, prefix: prefix) ?? d.activation
        self.init(hiddenSize: try fields.optionalInt("hidden_size") ?? d.hiddenSize,
                  intermediateSize: try fields.optionalInt("intermediate_size") ?? d.intermediateSize,
                  numLayers: try fields.optionalInt("num_hidden_layers") ?? d.numLayers,
                  numHeads: try fields.optionalInt("num_attention_heads") ?? d.numHeads,
                  crossAttentionFrequency: try fields.optionalInt("cross_attention_frequency") ?? d.crossAttentionFrequency,
                  encoderHiddenSize: try fields.optionalInt("encoder_hidden_size") ?? d.encoderHiddenSize,
                  layerNormEps: try fields.optionalDouble("layer_norm_eps").map(Float.init) ?? d.layerNormEps,
                  activation: activation,
                  vocabSize: try fields.optionalInt("vocab_size") ?? d.vocabSize,
                  maxPositionEmbeddings: try fields.optionalInt("max_position_embeddings") ?? d.maxPositionEmbeddings)
        try validate(path: path, prefix: prefix)
    }

    public var headDim: Int { hiddenSize / numHeads }
    public func hasCrossAttention(_ layer: Int) -> Bool { layer % crossAttentionFrequency == 0 }
}

/// Where the Q-Former's tensors sit. transformers: `qformer.encoder.layer.N.attention.attention.{query,key,value}`,
/// the embedding LayerNorm `qformer.layernorm` (BLIP-2) or `qformer.embeddings.layernorm` (InstructBLIP, with
/// `word_embeddings` / `position_embeddings` beside it). LAVIS: `Qformer.bert.encoder.layer.N.attention.self.*`,
/// `Qformer.bert.embeddings.{LayerNorm,word_embeddings,position_embeddings}`.
public struct QFormerNames: Sendable, Equatable {
    /// Prefix of `encoder.layer.N.…`.
    public var body: String
    /// The attention module's inner name: "attention" (transformers) or "self" (LAVIS / BERT).
    public var attentionInner: String
    /// The embedding LayerNorm's prefix (`weight`/`bias` appended).
    public var embeddingNorm: String
    /// Prefix of `word_embeddings.weight` / `position_embeddings.weight`; nil when the Q-Former reads no text.
    public var textEmbeddings: String?

    public init(body: String, attentionInner: String, embeddingNorm: String, textEmbeddings: String?) {
        self.body = body
        self.attentionInner = attentionInner
        self.embeddingNorm = embeddingNorm
        self.textEmbeddings = textEmbeddings
    }

    /// transformers' Blip2QFormerModel (no text input).
    public static let blip2 = QFormerNames(body: "qformer.", attentionInner: "attention",
                                           embeddingNorm: "qformer.layernorm.", textEmbeddings: nil)
    /// transformers' InstructBlipQFormerModel.
    public static let instructBlip = QFormerNames(body: "qformer.", attentionInner: "attention",
                                                  embeddingNorm: "qformer.embeddings.layernorm.",
                                                  textEmbeddings: "qformer.embeddings.")
    /// LAVIS' `Qformer.bert` (BertModel with query tokens); `text` when the instruction is read (InstructBLIP).
    public static func lavis(prefix: String = "Qformer.bert.", text: Bool) -> QFormerNames {
        QFormerNames(body: prefix, attentionInner: "self", embeddingNorm: prefix + "embeddings.LayerNorm.",
                     textEmbeddings: text ? prefix + "embeddings." : nil)
    }
}

/// One BERT attention block: q/k/v, the output dense and the post-LN.
struct QFormerAttentionWeights: @unchecked Sendable {
    var query: Projection, key: Projection, value: Projection, dense: Projection
    var normWeight: [Float], normBias: [Float]
}

/// A feed-forward block: intermediate dense → GELU → output dense → post-LN with the residual.
struct QFormerFeedForwardWeights: @unchecked Sendable {
    var intermediate: Projection, output: Projection
    var normWeight: [Float], normBias: [Float]
}

struct QFormerLayerWeights: @unchecked Sendable {
    var selfAttention: QFormerAttentionWeights
    var crossAttention: QFormerAttentionWeights?
    var queryFeedForward: QFormerFeedForwardWeights
    /// The text rows' feed-forward (InstructBLIP); nil when the Q-Former reads no text.
    var textFeedForward: QFormerFeedForwardWeights?
}

/// The BLIP-2 Q-Former (transformers' Blip2QFormerModel / InstructBlipQFormerModel, LAVIS' Qformer): post-LN BERT
/// layers over [learned queries; instruction tokens]. Each layer: self-attention over all rows; every
/// `crossAttentionFrequency`-th layer, cross-attention from the query rows only to the image rows; then the query rows
/// take `intermediate_query`/`output_query` and the instruction rows `intermediate`/`output`. Full attention (one
/// unpadded sequence), scores = (q·kᵀ)·d^-½, softmax in f32, as transformers' eager path computes them.
public struct QFormer: @unchecked Sendable {
    public let config: QFormerConfig
    let names: QFormerNames
    let layers: [QFormerLayerWeights]
    let embeddingNormWeight: [Float], embeddingNormBias: [Float]
    /// `vocab × hidden` and `positions × hidden` (f32) for the instruction; nil without text input.
    let wordEmbeddings: [Float]?, positionEmbeddings: [Float]?
    /// Every cross-attention layer's key and value weights as one matrix (`fuseImageKeysValues`).
    let fusedImageKeysValues: Projection?
    let pool: WorkerPool

    public init(config: QFormerConfig, store: TensorStore, names: QFormerNames, pool: WorkerPool) throws {
        self.config = config
        self.names = names
        self.pool = pool
        let h = config.hiddenSize, f = config.intermediateSize
        func projection(_ name: String, rows: Int, cols: Int) throws -> Projection {
            Projection(weight: try store.matrix(name + ".weight", rows: rows, cols: cols),
                       bias: try store.vector(name + ".bias", count: rows))
        }
        func attention(_ p: String, keyWidth: Int) throws -> QFormerAttentionWeights {
            let inner = p + names.attentionInner + "."
            return QFormerAttentionWeights(
                query: try projection(inner + "query", rows: h, cols: h),
                key: try projection(inner + "key", rows: h, cols: keyWidth),
                value: try projection(inner + "value", rows: h, cols: keyWidth),
                dense: try projection(p + "output.dense", rows: h, cols: h),
                normWeight: try store.vector(p + "output.LayerNorm.weight", count: h),
                normBias: try store.vector(p + "output.LayerNorm.bias", count: h))
        }
        func feedForward(_ intermediate: String, _ output: String) throws -> QFormerFeedForwardWeights {
            QFormerFeedForwardWeights(intermediate: try projection(intermediate + ".dense", rows: f, cols: h),
                                      output: try projection(output + ".dense", rows: h, cols: f),
                                      normWeight: try store.vector(output + ".LayerNorm.weight", count: h),
                                      normBias: try store.vector(output + ".LayerNorm.bias", count: h))
        }
        layers = try (0..<config.numLayers).map { i in
            let p = names.body + "encoder.layer.\(i)."
            return QFormerLayerWeights(
                selfAttention: try attention(p + "attention.", keyWidth: h),
                crossAttention: config.hasCrossAttention(i)
                    ? try attention(p + "crossattention.", keyWidth: config.encoderHiddenSize) : nil,
                queryFeedForward: try feedForward(p + "intermediate_query", p + "output_query"),
                textFeedForward: names.textEmbeddings == nil ? nil : try feedForward(p + "intermediate", p + "output"))
        }
        fusedImageKeysValues = Self.fuseImageKeysValues(layers)
        embeddingNormWeight = try store.vector(names.embeddingNorm + "weight", count: h)
        embeddingNormBias = try store.vector(names.embeddingNorm + "bias", count: h)
        if let text = names.textEmbeddings {
            func table(_ name: String, rows: Int) throws -> [Float] {
                let (entry, pointer, _) = try store.require(name, shape: [rows, h])
                return convertToF32(pointer, count: rows * h, dtype: entry.dtype)
            }
            wordEmbeddings = try table(text + "word_embeddings.weight", rows: config.vocabSize)
            positionEmbeddings = try table(text + "position_embeddings.weight", rows: config.maxPositionEmbeddings)
        } else {
            wordEmbeddings = nil
            positionEmbeddings = nil
        }
    }

    /// Whether the Q-Former reads an instruction (InstructBLIP).
    public var readsText: Bool { names.textEmbeddings != nil }

    /// The last hidden state, `(queryCount + textIDs.count) × hiddenSize` row-major: the query rows first, then the
    /// instruction rows. `queries` holds the learned query tokens (`queryCount × hiddenSize`), `image` the vision
    /// tower's output (`imageRows × encoderHiddenSize`), `textIDs` the instruction's token ids (BERT WordPiece with
    /// [CLS]/[SEP]; must be empty when the Q-Former reads no text). `profile` (optional) collects where the time
    /// goes, per operation.
    ///
    /// Schedule: the key and value projections of the image rows for every cross-attention layer depend only on
    /// the image, so they run first as one GEMM (`imageRows × encoderHiddenSize` by all those layers' weights at
    /// once, `imageKeysValues`); per layer, the rows are packed once for q, k and v; attention keeps the former
    /// loops' summation order with 16 keys (scores) or 16 dimensions (weighted values) per SIMD lane, so every
    /// output is bit-identical to the former per-layer schedule (`runPerLayer`, kept as test code in
    /// Tests/MirageEngineTests/QFormerReference.swift).
    public func run(queries: [Float], queryCount: Int, textIDs: [Int] = [], image: [Float], imageRows: Int,
                    profile: QFormerProfile? = nil) throws -> [Float] {
        let h = config.hiddenSize, t = textIDs.count, n = queryCount + t, m = imageRows
        var x = try embed(queries: queries, queryCount: queryCount, textIDs: textIDs, image: image, imageRows: m,
                          profile: profile)
        let crossLayers = layers.filter { $0.crossAttention != nil }.count
        let kvWidth = 2 * h * crossLayers
        let imageKV: [Float] = profile.measure("image K/V projections (all cross layers)",
                                               flops: 2 * Double(m * config.encoderHiddenSize * kvWidth)) {
            imageKeysValues(image, rows: m)
        }
        var crossIndex = 0
        for layer in layers {
            let w = layer.selfAttention
            var q = [Float](repeating: 0, count: n * h), k = q, v = q
            profile.measure("self-attention q/k/v", flops: 6 * Double(n * h * h)) {
                x.withUnsafeBufferPointer { xb in
                    let xp = xb.baseAddress!
                    let packed = n > Kernels.decodeMaxRows && w.key.weight.format == w.query.weight.format
                        && w.value.weight.format == w.query.weight.format
                        ? Kernels.packInput(xp, n: n, cols: h, for: w.query.weight, pool: pool) : nil
                    linear(packed, xp, rows: n, w.query, into: &q)
                    linear(packed, xp, rows: n, w.key, into: &k)
                    linear(packed, xp, rows: n, w.value, into: &v)
                }
            }
            var context = [Float](repeating: 0, count: n * h)
            profile.measure("self-attention softmax(q·kᵀ)·v", flops: 4 * Double(n * n * h)) {
                q.withUnsafeBufferPointer { qb in k.withUnsafeBufferPointer { kb in v.withUnsafeBufferPointer { vb in
                    context.withUnsafeMutableBufferPointer { cb in
                        attend(q: qb.baseAddress!, rows: n, keys: kb.baseAddress!, values: vb.baseAddress!, keyStride: h,
                               keyRows: n, into: cb.baseAddress!)
                    }
                }}}
            }
            var attended = profile.measure("self-attention output dense + LayerNorm", flops: 2 * Double(n * h * h)) {
                outputDense(w, context, rows: n, residual: x)
            }
            if let cross = layer.crossAttention {
                let column = 2 * h * crossIndex
                crossIndex += 1
                var cq = [Float](repeating: 0, count: queryCount * h)
                profile.measure("cross-attention query projection", flops: 2 * Double(queryCount * h * h)) {
                    attended.withUnsafeBufferPointer { linear(nil, $0.baseAddress!, rows: queryCount, cross.query, into: &cq) }
                }
                var crossContext = [Float](repeating: 0, count: queryCount * h)
                profile.measure("cross-attention softmax(q·kᵀ)·v", flops: 4 * Double(queryCount * m * h)) {
                    cq.withUnsafeBufferPointer { qb in imageKV.withUnsafeBufferPointer { kvb in
                        crossContext.withUnsafeMutableBufferPointer { cb in
                            attend(q: qb.baseAddress!, rows: queryCount, keys: kvb.baseAddress! + column,
                                   values: kvb.baseAddress! + column + h, keyStride: kvWidth, keyRows: m,
                                   into: cb.baseAddress!)
                        }
                    }}
                }
                let crossed = profile.measure("cross-attention output dense + LayerNorm", flops: 2 * Double(queryCount * h * h)) {
                    outputDense(cross, crossContext, rows: queryCount, residual: Array(attended[0..<(queryCount * h)]))
                }
                attended.replaceSubrange(0..<(queryCount * h), with: crossed)
            }
            let f = config.intermediateSize
            var next = profile.measure("query feed-forward", flops: 4 * Double(queryCount * h * f)) {
                feedForward(layer.queryFeedForward, Array(attended[0..<(queryCount * h)]), rows: queryCount)
            }
            if t > 0, let text = layer.textFeedForward {
                next += profile.measure("instruction feed-forward", flops: 4 * Double(t * h * f)) {
                    feedForward(text, Array(attended[(queryCount * h)...]), rows: t)
                }
            }
            x = next
        }
        return x
    }

    /// Checks the inputs and returns LayerNorm(cat(queries, word + position embeddings of `textIDs`)).
    func embed(queries: [Float], queryCount: Int, textIDs: [Int], image: [Float], imageRows: Int,
               profile: QFormerProfile?) throws -> [Float] {
        let h = config.hiddenSize, t = textIDs.count, n = queryCount + t
        precondition(queries.count == queryCount * h, "QFormer.run: \(queryCount) query rows of \(h) expected")
        guard image.count == imageRows * config.encoderHiddenSize else {
            throw ModelError.invalidInput("the Q-Former reads image rows of \(config.encoderHiddenSize) values, got "
                                          + "\(image.count) values for \(imageRows) rows: the vision tower does not match qformer_config.encoder_hidden_size")
        }
        var x = [Float](repeating: 0, count: n * h)
        x.replaceSubrange(0..<(queryCount * h), with: queries)
        if t > 0 {
            guard let words = wordEmbeddings, let positions = positionEmbeddings else {
                throw ModelError.invalidInput("this Q-Former reads no instruction (BLIP-2); pass no instruction token ids")
            }
            guard t <= config.maxPositionEmbeddings else {
                throw ModelError.invalidInput("the instruction has \(t) Q-Former tokens but qformer_config.max_position_embeddings "
                                              + "is \(config.maxPositionEmbeddings): shorten the prompt")
            }
            for (i, id) in textIDs.enumerated() {
                guard id >= 0 && id < config.vocabSize else {
                    throw ModelError.invalidInput("Q-Former token id \(id) is outside its vocabulary of \(config.vocabSize): "
                                                  + "use the qformer_tokenizer saved with the model")
                }
                let row = (queryCount + i) * h
                for j in 0..<h { x[row + j] = words[id * h + j] + positions[i * h + j] }
            }
        }
        let embedded = x
        profile.measure("embeddings + LayerNorm", flops: 0) {
            layerNormRows(embedded, weight: embeddingNormWeight, bias: embeddingNormBias, rows: n, width: h,
                          eps: config.layerNormEps, into: &x)
        }
        return x
    }

    /// `imageRows × (2·hidden·crossLayers)`: for the c-th cross-attention layer, its keys in columns
    /// `2·hidden·c ..< 2·hidden·c + hidden` and its values in the next `hidden`; one GEMM when the weights were
    /// concatenated at load (`fusedImageKeysValues`), else one per projection.
    func imageKeysValues(_ image: [Float], rows m: Int) -> [Float] {
        let h = config.hiddenSize
        let projections = layers.compactMap(\.crossAttention).flatMap { [$0.key, $0.value] }
        let width = h * projections.count
        if let fused = fusedImageKeysValues { return linear(image, rows: m, fused) }
        var out = [Float](repeating: 0, count: m * width)
        for (i, p) in projections.enumerated() {
            let part = linear(image, rows: m, p)
            for r in 0..<m { out.replaceSubrange((r * width + i * h)..<(r * width + (i + 1) * h), with: part[(r * h)..<((r + 1) * h)]) }
        }
        return out
    }

    /// The cross-attention layers' key and value weights stacked (layer by layer: key rows, then value rows) into
    /// one matrix of the stored format, with the biases likewise; nil when they do not share a plain format (q8).
    static func fuseImageKeysValues(_ layers: [QFormerLayerWeights]) -> Projection? {
        let parts = layers.compactMap(\.crossAttention).flatMap { [$0.key, $0.value] }
        guard let first = parts.first?.weight, first.format != .q8,
              parts.allSatisfy({ $0.weight.format == first.format && $0.weight.precision == first.precision
                                 && $0.weight.cols == first.cols && $0.bias != nil }) else { return nil }
        let rowBytes = first.cols * first.format.bytesPerElement
        let rows = parts.reduce(0) { $0 + $1.weight.rows }
        let storage = AlignedBuffer(byteCount: rows * rowBytes)
        var row = 0
        for part in parts {
            let w = part.weight
            for r in 0..<w.rows {
                (storage.pointer + (row + r) * rowBytes).copyMemory(from: w.data + r * w.rowStride, byteCount: rowBytes)
            }
            row += w.rows
        }
        let weight = WeightMatrix(rows: rows, cols: first.cols, format: first.format, data: UnsafeRawPointer(storage.pointer),
                                  owner: storage, precision: first.precision)
        return Projection(weight: weight, bias: parts.flatMap { $0.bias! })
    }

    /// y = LN(dense(context) + residual).
    func outputDense(_ w: QFormerAttentionWeights, _ context: [Float], rows n: Int, residual: [Float]) -> [Float] {
        var y = linear(context, rows: n, w.dense)
        addAndNorm(&y, residual: residual, rows: n, weight: w.normWeight, bias: w.normBias)
        return y
    }

    /// y = LN(output(act(intermediate(x))) + x).
    func feedForward(_ w: QFormerFeedForwardWeights, _ x: [Float], rows n: Int) -> [Float] {
        var inner = linear(x, rows: n, w.intermediate)
        let count = inner.count, kind = config.activation
        inner.withUnsafeMutableBufferPointer { Kernels.gelu($0.baseAddress!, count: count, approximation: kind) }
        var y = linear(inner, rows: n, w.output)
        addAndNorm(&y, residual: x, rows: n, weight: w.normWeight, bias: w.normBias)
        return y
    }

    /// y = x·Wᵀ + b into `y` (`n × rows`), from `packed` when given (x packed once for several weights).
    func linear(_ packed: PackedInput?, _ x: UnsafePointer<Float>, rows n: Int, _ p: Projection, into y: inout [Float]) {
        y.withUnsafeMutableBufferPointer { yb in
            p.bias!.withUnsafeBufferPointer { b in
                if let packed {
                    Kernels.linear(packed, weight: p.weight, bias: b.baseAddress, into: yb.baseAddress!, pool: pool)
                } else {
                    Kernels.linear(x, n: n, weight: p.weight, bias: b.baseAddress, into: yb.baseAddress!, pool: pool)
                }
            }
        }
    }

    func linear(_ x: [Float], rows n: Int, _ p: Projection) -> [Float] {
        var y = [Float](repeating: 0, count: n * p.weight.rows)
        x.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { yb in
            p.bias!.withUnsafeBufferPointer { b in
                Kernels.linear(xb.baseAddress!, n: n, weight: p.weight, bias: b.baseAddress, into: yb.baseAddress!, pool: pool)
            }
        }}
        return y
    }

    func addAndNorm(_ y: inout [Float], residual: [Float], rows n: Int, weight: [Float], bias: [Float]) {
        let count = y.count
        y.withUnsafeMutableBufferPointer { yb in residual.withUnsafeBufferPointer { rb in
            Kernels.add(yb.baseAddress!, rb.baseAddress!, count: count, into: yb.baseAddress!)
        }}
        let summed = y
        layerNormRows(summed, weight: weight, bias: bias, rows: n, width: config.hiddenSize, eps: config.layerNormEps,
                      into: &y)
    }
}
