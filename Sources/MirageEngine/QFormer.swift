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
    /// [CLS]/[SEP]; must be empty when the Q-Former reads no text).
    public func run(queries: [Float], queryCount: Int, textIDs: [Int] = [], image: [Float], imageRows: Int) throws -> [Float] {
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
        layerNormRows(embedded, weight: embeddingNormWeight, bias: embeddingNormBias, rows: n, width: h,
                      eps: config.layerNormEps, into: &x)
        for layer in layers {
            let attended = attentionBlock(layer.selfAttention, x, rows: n, keys: x, keyRows: n, keyWidth: h)
            var queryPart = Array(attended[0..<(queryCount * h)])
            if let cross = layer.crossAttention {
                queryPart = attentionBlock(cross, queryPart, rows: queryCount, keys: image, keyRows: imageRows,
                                           keyWidth: config.encoderHiddenSize)
            }
            var next = feedForward(layer.queryFeedForward, queryPart, rows: queryCount)
            if t > 0, let text = layer.textFeedForward {
                next += feedForward(text, Array(attended[(queryCount * h)...]), rows: t)
            }
            x = next
        }
        return x
    }

    /// y = LN(dense(MHA(x, keys)) + x).
    func attentionBlock(_ w: QFormerAttentionWeights, _ x: [Float], rows n: Int, keys: [Float], keyRows m: Int,
                        keyWidth: Int) -> [Float] {
        let h = config.hiddenSize
        let q = linear(x, rows: n, w.query), k = linear(keys, rows: m, w.key), v = linear(keys, rows: m, w.value)
        var context = [Float](repeating: 0, count: n * h)
        let heads = config.numHeads, d = config.headDim, scale = 1 / Float(d).squareRoot()
        q.withUnsafeBufferPointer { qb in k.withUnsafeBufferPointer { kb in v.withUnsafeBufferPointer { vb in
            context.withUnsafeMutableBufferPointer { cb in
                let qp = qb.baseAddress!, kp = kb.baseAddress!, vp = vb.baseAddress!, cp = cb.baseAddress!
                pool.parallelFor(heads) { head in
                    let scores = UnsafeMutablePointer<Float>.allocate(capacity: m)
                    defer { scores.deallocate() }
                    let off = head * d
                    for r in 0..<n {
                        let qr = qp + r * h + off
                        for c in 0..<m {
                            let kr = kp + c * h + off
                            var dot: Float = 0
                            for j in 0..<d { dot += qr[j] * kr[j] }
                            scores[c] = dot * scale
                        }
                        Kernels.softmax(scores, count: m)
                        let out = cp + r * h + off
                        for j in 0..<d { out[j] = 0 }
                        for c in 0..<m {
                            let p = scores[c], vr = vp + c * h + off
                            for j in 0..<d { out[j] += p * vr[j] }
                        }
                    }
                }
            }
        }}}
        var y = linear(context, rows: n, w.dense)
        addAndNorm(&y, residual: x, rows: n, weight: w.normWeight, bias: w.normBias)
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
