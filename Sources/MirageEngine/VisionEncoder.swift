import Foundation
import MirageImaging
import MirageKernels

extension PixelTensor {
    /// A pixel tensor from values already laid out `[channels][height][width]`, checked for size
    /// (`init(channels:height:width:values:)` does not check).
    public init(validating values: [Float], channels: Int = 3, height: Int, width: Int) throws {
        guard values.count == channels * height * width else {
            throw ModelError.invalidInput("pixel tensor [\(channels), \(height), \(width)] needs \(channels * height * width) values, got \(values.count)")
        }
        self.init(channels: channels, height: height, width: width, values: values)
    }
}

/// The CLIP / SigLIP vision towers (`CLIPVisionModel`, `SiglipVisionModel`): same encoder, different embeddings.
public protocol VisionTower: Sendable {
    var config: VisionConfig { get }
    /// transformers' `hidden_states[i]` (`sequenceLength × hiddenSize`, row-major) for each requested
    /// `i` in `0...numLayers`, in the order given: 0 is the embeddings output (after CLIP's pre-layernorm),
    /// i the output of encoder layer i (before any post-layernorm, as LLaVA reads them). Layers past the
    /// largest requested index are not computed.
    func hiddenStates(_ pixels: PixelTensor, layers: [Int]) throws -> [[Float]]
}

/// One encoder layer's weights (identical in CLIP and SigLIP).
struct VisionLayerWeights: @unchecked Sendable {
    var norm1Weight: [Float], norm1Bias: [Float]
    var q: Projection, k: Projection, v: Projection, out: Projection
    var norm2Weight: [Float], norm2Bias: [Float]
    var fc1: Projection, fc2: Projection
}

/// The pre-norm transformer encoder shared by CLIP and SigLIP: x += out_proj(MHA(LN1(x))); x += fc2(act(fc1(LN2(x)))).
/// Full (non-causal) attention over all tokens, softmax in f32, scale 1/√headDim.
struct VisionEncoder: @unchecked Sendable {
    let config: VisionConfig
    let layers: [VisionLayerWeights]
    let pool: WorkerPool

    /// Loads `<prefix>layers.N.*` (prefix e.g. "vision_tower.vision_model.encoder.").
    init(store: TensorStore, prefix: String, config c: VisionConfig, pool: WorkerPool) throws {
        self.config = c
        self.pool = pool
        let h = c.hiddenSize
        func projection(_ name: String, rows: Int, cols: Int) throws -> Projection {
            Projection(weight: try store.matrix(name + ".weight", rows: rows, cols: cols),
                       bias: try store.vector(name + ".bias", count: rows))
        }
        layers = try (0..<c.numLayers).map { i in
            let p = prefix + "layers.\(i)."
            return VisionLayerWeights(
                norm1Weight: try store.vector(p + "layer_norm1.weight", count: h),
                norm1Bias: try store.vector(p + "layer_norm1.bias", count: h),
                q: try projection(p + "self_attn.q_proj", rows: h, cols: h),
                k: try projection(p + "self_attn.k_proj", rows: h, cols: h),
                v: try projection(p + "self_attn.v_proj", rows: h, cols: h),
                out: try projection(p + "self_attn.out_proj", rows: h, cols: h),
                norm2Weight: try store.vector(p + "layer_norm2.weight", count: h),
                norm2Bias: try store.vector(p + "layer_norm2.bias", count: h),
                fc1: try projection(p + "mlp.fc1", rows: c.intermediateSize, cols: h),
                fc2: try projection(p + "mlp.fc2", rows: h, cols: c.intermediateSize))
        }
    }

    /// Runs the encoder on `embeddings` (n × hidden, hidden_states[0]) and returns the requested hidden states.
    func run(embeddings: [Float], tokens n: Int, layers requested: [Int]) throws -> [[Float]] {
        let L = config.numLayers
        for i in requested where i < 0 || i > L {
            throw ModelError.invalidInput("vision hidden state \(i) does not exist: the tower has hidden states 0...\(L)")
        }
        let last = requested.max() ?? 0
        var states: [Int: [Float]] = [:]
        var x = embeddings
        if requested.contains(0) { states[0] = x }
        if last > 0 {
            var scratch = Scratch(tokens: n, config: config)
            for i in 0..<last {
                layer(i, &x, tokens: n, scratch: &scratch)
                if requested.contains(i + 1) { states[i + 1] = x }
            }
        }
        return requested.map { states[$0]! }
    }

    struct Scratch {
        var normed: [Float], q: [Float], k: [Float], v: [Float], attention: [Float], projected: [Float], inner: [Float]
        init(tokens n: Int, config c: VisionConfig) {
            let h = c.hiddenSize
            normed = [Float](repeating: 0, count: n * h)
            q = normed; k = normed; v = normed; attention = normed; projected = normed
            inner = [Float](repeating: 0, count: n * c.intermediateSize)
        }
    }

    private func layer(_ index: Int, _ x: inout [Float], tokens n: Int, scratch s: inout Scratch) {
        let w = layers[index], h = config.hiddenSize, eps = config.layerNormEps
        layerNormRows(x, weight: w.norm1Weight, bias: w.norm1Bias, rows: n, width: h, eps: eps, into: &s.normed)
        s.normed.withUnsafeBufferPointer { a in
            let input = Kernels.decodeMaxRows < n
                ? Kernels.packInput(a.baseAddress!, n: n, cols: h, for: w.q.weight, pool: pool) : nil
            linear(input, a.baseAddress!, n, w.q, into: &s.q)
            linear(input, a.baseAddress!, n, w.k, into: &s.k)
            linear(input, a.baseAddress!, n, w.v, into: &s.v)
        }
        attention(q: s.q, k: s.k, v: s.v, tokens: n, into: &s.attention)
        s.attention.withUnsafeBufferPointer { a in linear(nil, a.baseAddress!, n, w.out, into: &s.projected) }
        addInPlace(&x, s.projected)
        layerNormRows(x, weight: w.norm2Weight, bias: w.norm2Bias, rows: n, width: h, eps: eps, into: &s.normed)
        s.normed.withUnsafeBufferPointer { a in linear(nil, a.baseAddress!, n, w.fc1, into: &s.inner) }
        let inner = config.intermediateSize, kind = config.activation
        s.inner.withUnsafeMutableBufferPointer { buf in
            let base = buf.baseAddress!
            let chunk = max(1, n / (4 * pool.threadCount))
            pool.parallelFor((n + chunk - 1) / chunk) { t in
                let start = t * chunk, end = min(n, start + chunk)
                Kernels.gelu(base + start * inner, count: (end - start) * inner, approximation: kind)
            }
        }
        s.inner.withUnsafeBufferPointer { a in linear(nil, a.baseAddress!, n, w.fc2, into: &s.projected) }
        addInPlace(&x, s.projected)
    }

    private func linear(_ packed: PackedInput?, _ x: UnsafePointer<Float>, _ n: Int, _ p: Projection, into y: inout [Float]) {
        y.withUnsafeMutableBufferPointer { out in
            p.bias!.withUnsafeBufferPointer { b in
                if let packed, packed.cols == p.weight.cols {
                    Kernels.linear(packed, weight: p.weight, bias: b.baseAddress, into: out.baseAddress!, pool: pool)
                } else {
                    Kernels.linear(x, n: n, weight: p.weight, bias: b.baseAddress, into: out.baseAddress!, pool: pool)
                }
            }
        }
    }

    /// Multi-head attention, heads in parallel: per head, scores = (scale·Q)·Kᵀ (a GEMM with K as the
    /// weight), softmax per row, then P·V (a GEMM with Vᵀ as the weight). transformers' eager path computes
    /// matmul(q, kᵀ)·scale then softmax in f32; scaling q first differs by rounding only (scale is a power of
    /// two for head_dim 64, where it is exact).
    private func attention(q: [Float], k: [Float], v: [Float], tokens n: Int, into y: inout [Float]) {
        let h = config.hiddenSize, d = config.headDim, heads = config.numHeads
        let scale = 1 / Float(d).squareRoot()
        q.withUnsafeBufferPointer { qb in k.withUnsafeBufferPointer { kb in v.withUnsafeBufferPointer { vb in
            y.withUnsafeMutableBufferPointer { yb in
                let qp = qb.baseAddress!, kp = kb.baseAddress!, vp = vb.baseAddress!, yp = yb.baseAddress!
                pool.parallelFor(heads) { head in
                    let qh = UnsafeMutablePointer<Float>.allocate(capacity: n * d)
                    let kh = AlignedBuffer(byteCount: n * d * 4)
                    let vt = AlignedBuffer(byteCount: n * d * 4)
                    let scores = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
                    let out = UnsafeMutablePointer<Float>.allocate(capacity: n * d)
                    defer { qh.deallocate(); scores.deallocate(); out.deallocate() }
                    let kf = kh.pointer.assumingMemoryBound(to: Float.self)
                    let vf = vt.pointer.assumingMemoryBound(to: Float.self)
                    for t in 0..<n {
                        let src = t * h + head * d
                        for j in 0..<d { qh[t * d + j] = qp[src + j] * scale }
                        (kf + t * d).update(from: kp + src, count: d)
                        for j in 0..<d { vf[j * n + t] = vp[src + j] }
                    }
                    let keys = WeightMatrix(rows: n, cols: d, format: .f32, data: kh.pointer, owner: kh)
                    Kernels.linearSerial(qh, n: n, weight: keys, bias: nil, into: scores)
                    for t in 0..<n {
                        Kernels.softmax(scores + t * n, count: n)
                    }
                    let values = WeightMatrix(rows: d, cols: n, format: .f32, data: vt.pointer, owner: vt)
                    Kernels.linearSerial(scores, n: n, weight: values, bias: nil, into: out)
                    for t in 0..<n { (yp + t * h + head * d).update(from: out + t * d, count: d) }
                }
            }
        }}}
    }

    private func addInPlace(_ x: inout [Float], _ delta: [Float]) {
        let count = x.count
        x.withUnsafeMutableBufferPointer { xb in delta.withUnsafeBufferPointer { db in
            Kernels.add(xb.baseAddress!, db.baseAddress!, count: count, into: xb.baseAddress!)
        }}
    }
}

/// Row-wise LayerNorm of a rows × width matrix.
func layerNormRows(_ x: [Float], weight: [Float], bias: [Float], rows: Int, width: Int, eps: Float, into y: inout [Float]) {
    x.withUnsafeBufferPointer { xb in weight.withUnsafeBufferPointer { wb in bias.withUnsafeBufferPointer { bb in
        y.withUnsafeMutableBufferPointer { yb in
            for r in 0..<rows {
                Kernels.layerNorm(xb.baseAddress! + r * width, weight: wb.baseAddress!, bias: bb.baseAddress!,
                                  count: width, eps: eps, into: yb.baseAddress! + r * width)
            }
        }
    }}}
}

/// Loading and patch-embedding helpers shared by the CLIP and SigLIP embeddings.
struct PatchEmbedding: @unchecked Sendable {
    /// The conv weight `[hidden, channels, patch, patch]` viewed as a `hidden × channels·patch²` matrix.
    let weight: WeightMatrix
    let bias: [Float]?
    /// `positions × hidden`, f32.
    let positions: [Float]
    let config: VisionConfig

    init(store: TensorStore, prefix: String, config c: VisionConfig, hasBias: Bool) throws {
        config = c
        let name = prefix + "patch_embedding.weight"
        let (entry, pointer, file) = try store.require(name, shape: [c.hiddenSize, c.numChannels, c.patchSize, c.patchSize])
        weight = WeightMatrix(rows: c.hiddenSize, cols: c.numChannels * c.patchSize * c.patchSize,
                              format: entry.dtype.weightFormat!, data: pointer, owner: file, precision: store.precision)
        bias = hasBias ? try store.vector(prefix + "patch_embedding.bias", count: c.hiddenSize) : nil
        let positionName = prefix + "position_embedding.weight"
        let (posEntry, posPointer, _) = try store.require(positionName, shape: [c.sequenceLength, c.hiddenSize])
        positions = convertToF32(posPointer, count: c.sequenceLength * c.hiddenSize, dtype: posEntry.dtype)
    }

    /// The embeddings output: `[classToken;] patches + position embeddings`, sequenceLength × hidden.
    func embed(_ pixels: PixelTensor, classToken: [Float]?, pool: WorkerPool) throws -> [Float] {
        let h = config.hiddenSize, n = config.sequenceLength
        var embeddings = [Float](repeating: 0, count: n * h)
        try embeddings.withUnsafeMutableBufferPointer { e in
            let base = e.baseAddress!
            if let classToken { base.update(from: classToken, count: h) }
            try patches(pixels, into: base + (classToken == nil ? 0 : h), pool: pool)
            positions.withUnsafeBufferPointer { p in Kernels.add(base, p.baseAddress!, count: n * h, into: base) }
        }
        return embeddings
    }

    /// Conv2d(kernel = stride = patch) as a GEMM: each patch is unfolded into a row ordered
    /// (channel, ky, kx) like the conv weight, patches in raster order (transformers' `flatten(2)`).
    /// Writes numPatches × hidden rows at `y`.
    func patches(_ pixels: PixelTensor, into y: UnsafeMutablePointer<Float>, pool: WorkerPool) throws {
        let c = config
        guard pixels.channels == c.numChannels, pixels.height == c.imageSize, pixels.width == c.imageSize else {
            throw ModelError.invalidInput(
                "the vision tower takes [\(c.numChannels), \(c.imageSize), \(c.imageSize)] pixels, got "
                + "[\(pixels.channels), \(pixels.height), \(pixels.width)]: preprocess the image with the model's "
                + "preprocessor_config.json (resize and crop to \(c.imageSize)×\(c.imageSize))")
        }
        let p = c.patchSize, side = c.patchesPerSide, cols = weight.cols
        var unfolded = [Float](repeating: 0, count: c.numPatches * cols)
        pixels.values.withUnsafeBufferPointer { src in
            for py in 0..<side {
                for px in 0..<side {
                    var o = (py * side + px) * cols
                    for ch in 0..<c.numChannels {
                        for ky in 0..<p {
                            let start = (ch * c.imageSize + py * p + ky) * c.imageSize + px * p
                            for kx in 0..<p { unfolded[o + kx] = src[start + kx] }
                            o += p
                        }
                    }
                }
            }
        }
        unfolded.withUnsafeBufferPointer { u in
            if let bias {
                bias.withUnsafeBufferPointer { b in
                    Kernels.linear(u.baseAddress!, n: c.numPatches, weight: weight, bias: b.baseAddress, into: y, pool: pool)
                }
            } else {
                Kernels.linear(u.baseAddress!, n: c.numPatches, weight: weight, bias: nil, into: y, pool: pool)
            }
        }
    }
}

/// Where a vision tower's tensors sit in a checkpoint: `<prefix>embeddings.*`, `<prefix>encoder.layers.N.*`.
/// Published LLaVA checkpoints use "vision_tower.vision_model."; transformers 5 writes "vision_tower."
/// (its LlavaModel holds `CLIPVisionModel` attributes directly); a standalone CLIPVisionModel "vision_model.".
public func visionTowerPrefix(in store: TensorStore) -> String? {
    let candidates = ["vision_tower.vision_model.", "vision_tower.", "model.vision_tower.vision_model.",
                      "model.vision_tower.", "vision_model.", ""]
    return candidates.first { store.entry($0 + "embeddings.patch_embedding.weight") != nil }
}

/// Loads the tower `config` describes from `store` (prefix found by `visionTowerPrefix` unless given).
public func loadVisionTower(config: VisionConfig, store: TensorStore, prefix: String? = nil,
                            pool: WorkerPool) throws -> any VisionTower {
    try config.validate(path: URL(fileURLWithPath: store.folder).appendingPathComponent("config.json").path,
                        prefix: "vision_config.")
    guard let prefix = prefix ?? visionTowerPrefix(in: store) else {
        throw ModelError.missingTensor(tensor: "vision_tower.vision_model.embeddings.patch_embedding.weight (or vision_tower.embeddings.…)",
                                       folder: store.folder)
    }
    switch config.kind {
    case .clip: return try CLIPVisionModel(config: config, store: store, prefix: prefix, pool: pool)
    case .siglip: return try SiglipVisionModel(config: config, store: store, prefix: prefix, pool: pool)
    }
}
