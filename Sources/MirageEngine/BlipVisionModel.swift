import Foundation
import MirageKernels
import MirageImaging

/// The vision side of a BLIP-2 / InstructBLIP checkpoint: what transformers calls `Blip2VisionModel` /
/// `InstructBlipVisionModel` (modeling_blip_2.py, modeling_instructblip.py, transformers 5.24) and LAVIS calls
/// EVA ViT-g/14 followed by `ln_vision` (salesforce/LAVIS, lavis/models/eva_vit.py and blip2.py).
public struct BlipVisionConfig: Sendable, Equatable {
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var imageSize: Int
    public var patchSize: Int
    public var layerNormEps: Float
    public var activation: GeluKind
    /// `qkv_bias`: q and v biases (k has none, as in EVA); false = no bias on the fused qkv projection.
    public var qkvBias: Bool
    /// Eps of the final LayerNorm: `layer_norm_eps` for transformers' `post_layernorm`; LAVIS' `ln_vision` is a
    /// default `nn.LayerNorm` (1e-5; salesforce/LAVIS lavis/models/blip2_models/blip2.py `init_vision_encoder`).
    public var finalLayerNormEps: Float

    /// EVA ViT-g/14 as BLIP-2 and InstructBLIP use it: 1408 wide, 39 blocks, 16 heads, MLP 6144
    /// (mlp_ratio 4.3637), 224-pixel images in 14-pixel patches, LayerNorm eps 1e-6, exact (erf) GELU
    /// (transformers' Blip2VisionConfig / InstructBlipVisionConfig defaults; LAVIS eva_vit.py `create_eva_vit_g`,
    /// whose `partial(nn.LayerNorm, eps=1e-6)` and `nn.GELU` are the same numerics).
    public static let evaViTg = BlipVisionConfig(hiddenSize: 1408, intermediateSize: 6144, numLayers: 39, numHeads: 16,
                                                 imageSize: 224, patchSize: 14, layerNormEps: 1e-6, activation: .erf,
                                                 qkvBias: true)

    public init(hiddenSize: Int, intermediateSize: Int, numLayers: Int, numHeads: Int, imageSize: Int, patchSize: Int,
                layerNormEps: Float = 1e-6, activation: GeluKind = .erf, qkvBias: Bool = true,
                finalLayerNormEps: Float? = nil) {
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.layerNormEps = layerNormEps
        self.activation = activation
        self.qkvBias = qkvBias
        self.finalLayerNormEps = finalLayerNormEps ?? layerNormEps
    }

    /// Reads a `vision_config` object; absent fields take Blip2VisionConfig's defaults (EVA ViT-g/14).
    public init(json: [String: Any], path: String, prefix: String = "vision_config.") throws {
        let fields = JSONFields(object: json, path: path, prefix: prefix)
        let d = Self.evaViTg
        let activation = try GeluKind.configured(json, path: path, prefix: prefix) ?? d.activation
        self.init(hiddenSize: try fields.optionalInt("hidden_size") ?? d.hiddenSize,
                  intermediateSize: try fields.optionalInt("intermediate_size") ?? d.intermediateSize,
                  numLayers: try fields.optionalInt("num_hidden_layers") ?? d.numLayers,
                  numHeads: try fields.optionalInt("num_attention_heads") ?? d.numHeads,
                  imageSize: try fields.optionalInt("image_size") ?? d.imageSize,
                  patchSize: try fields.optionalInt("patch_size") ?? d.patchSize,
                  layerNormEps: try fields.optionalDouble("layer_norm_eps").map(Float.init) ?? d.layerNormEps,
                  activation: activation,
                  qkvBias: (json["qkv_bias"] as? Bool) ?? true)
        try validate(path: path, prefix: prefix)
    }

    /// Rows of the output: the class token and one per patch.
    public var sequenceLength: Int { encoderConfig.sequenceLength }

    /// The same numbers as the shared pre-norm encoder's configuration (`VisionEncoder` runs the blocks: their
    /// math is CLIP's with a class token, so the `.clip` kind; eps and activation are this tower's own).
    public var encoderConfig: VisionConfig {
        VisionConfig(kind: .clip, hiddenSize: hiddenSize, intermediateSize: intermediateSize, numLayers: numLayers,
                     numHeads: numHeads, imageSize: imageSize, patchSize: patchSize, layerNormEps: layerNormEps,
                     activation: activation)
    }

    /// Multiply-adds of one image through the tower, ×2 (for GFLOP/s figures).
    public var flopsPerImage: Double {
        let n = Double(sequenceLength), h = Double(hiddenSize), f = Double(intermediateSize)
        let perLayer = 2 * n * (4 * h * h + 2 * h * f) + 4 * n * n * h
        let patches = 2 * Double(encoderConfig.numPatches) * h * Double(3 * patchSize * patchSize)
        return Double(numLayers) * perLayer + patches
    }
}

/// Where the tower's tensors are: transformers' names (`vision_model.embeddings.*`, `...encoder.layers.N.*` with a
/// fused `self_attn.qkv` and `self_attn.projection`, `post_layernorm`) or LAVIS' (`visual_encoder.*` with
/// `cls_token`, `pos_embed`, `patch_embed.proj`, `blocks.N.{norm1,attn.qkv,attn.q_bias,attn.v_bias,attn.proj,
/// norm2,mlp.fc1,mlp.fc2}`, then `ln_vision`).
public enum BlipVisionLayout: Sendable, Equatable {
    case transformers(prefix: String)
    case lavis(prefix: String, lnVision: String)
}

/// EVA ViT-g as BLIP-2 runs it: patch conv (with bias) → [class token; patches] + learned position embeddings →
/// pre-norm blocks (fused qkv with q/v biases, erf GELU MLP) → final LayerNorm (`post_layernorm` / `ln_vision`).
/// The blocks are the shared `VisionEncoder` (batched `Kernels.linear` over all rows on the worker pool, heads in
/// parallel); the fused qkv weight is viewed as three matrices in place.
public struct BlipVisionModel: @unchecked Sendable {
    public let config: BlipVisionConfig
    let patchEmbedding: PatchEmbedding
    let classEmbedding: [Float]
    let encoder: VisionEncoder
    let postNormWeight: [Float], postNormBias: [Float]
    let pool: WorkerPool

    public init(config: BlipVisionConfig, store: TensorStore, layout: BlipVisionLayout, pool: WorkerPool) throws {
        self.config = config
        self.pool = pool
        let c = config.encoderConfig, h = config.hiddenSize
        let names: (patch: String, patchBias: String, cls: String, pos: String, layer: (Int) -> String,
                    postW: String, postB: String)
        switch layout {
        case .transformers(let p):
            names = (p + "embeddings.patch_embedding.weight", p + "embeddings.patch_embedding.bias",
                     p + "embeddings.class_embedding", p + "embeddings.position_embedding",
                     { p + "encoder.layers.\($0)." }, p + "post_layernorm.weight", p + "post_layernorm.bias")
        case .lavis(let p, let ln):
            names = (p + "patch_embed.proj.weight", p + "patch_embed.proj.bias", p + "cls_token", p + "pos_embed",
                     { p + "blocks.\($0)." }, ln + "weight", ln + "bias")
        }
        let (patchEntry, patchPointer, patchFile) = try store.require(
            names.patch, shape: [h, 3, config.patchSize, config.patchSize])
        let positionsEntry = try store.require(names.pos, shape: [1, c.sequenceLength, h])
        patchEmbedding = PatchEmbedding(
            weight: WeightMatrix(rows: h, cols: 3 * config.patchSize * config.patchSize,
                                 format: patchEntry.dtype.weightFormat!, data: patchPointer, owner: patchFile,
                                 precision: store.precision),
            bias: try store.vector(names.patchBias, count: h),
            positions: convertToF32(positionsEntry.1, count: c.sequenceLength * h, dtype: positionsEntry.0.dtype),
            config: c)
        let cls = try store.require(names.cls, shape: [1, 1, h])
        classEmbedding = convertToF32(cls.1, count: h, dtype: cls.0.dtype)
        postNormWeight = try store.vector(names.postW, count: h)
        postNormBias = try store.vector(names.postB, count: h)
        let layers = try (0..<config.numLayers).map { i in
            try Self.layerWeights(store: store, layout: layout, prefix: names.layer(i), config: config)
        }
        encoder = VisionEncoder(config: c, layers: layers, pool: pool)
    }

    /// One block's weights; the fused qkv `[3h, h]` matrix becomes three row ranges of the mapping.
    static func layerWeights(store: TensorStore, layout: BlipVisionLayout, prefix p: String,
                             config: BlipVisionConfig) throws -> VisionLayerWeights {
        let h = config.hiddenSize, f = config.intermediateSize
        let lavis: Bool
        if case .lavis = layout { lavis = true } else { lavis = false }
        let qkvName = p + (lavis ? "attn.qkv.weight" : "self_attn.qkv.weight")
        let (entry, pointer, file) = try store.require(qkvName, shape: [3 * h, h])
        let rowBytes = h * entry.dtype.byteSize
        func part(_ i: Int) -> WeightMatrix {
            WeightMatrix(rows: h, cols: h, format: entry.dtype.weightFormat!, data: pointer + i * h * rowBytes,
                         owner: file, precision: store.precision)
        }
        var qBias = [Float](repeating: 0, count: h), kBias = qBias, vBias = qBias
        if config.qkvBias {
            if lavis {
                // LAVIS eva_vit.py Attention: qkv bias = cat(q_bias, zeros, v_bias).
                qBias = try store.vector(p + "attn.q_bias", count: h)
                vBias = try store.vector(p + "attn.v_bias", count: h)
            } else {
                // transformers saves the fused bias cat(q_bias, zeros, v_bias) and applies all of it as stored.
                let fused = try store.vector(p + "self_attn.qkv.bias", count: 3 * h)
                qBias = Array(fused[0..<h])
                kBias = Array(fused[h..<2 * h])
                vBias = Array(fused[2 * h..<3 * h])
            }
        }
        func projection(_ name: String, rows: Int, cols: Int) throws -> Projection {
            Projection(weight: try store.matrix(name + ".weight", rows: rows, cols: cols),
                       bias: try store.vector(name + ".bias", count: rows))
        }
        let norm1 = p + (lavis ? "norm1." : "layer_norm1."), norm2 = p + (lavis ? "norm2." : "layer_norm2.")
        return VisionLayerWeights(
            norm1Weight: try store.vector(norm1 + "weight", count: h), norm1Bias: try store.vector(norm1 + "bias", count: h),
            q: Projection(weight: part(0), bias: qBias), k: Projection(weight: part(1), bias: kBias),
            v: Projection(weight: part(2), bias: vBias),
            out: try projection(p + (lavis ? "attn.proj" : "self_attn.projection"), rows: h, cols: h),
            norm2Weight: try store.vector(norm2 + "weight", count: h), norm2Bias: try store.vector(norm2 + "bias", count: h),
            fc1: try projection(p + "mlp.fc1", rows: f, cols: h), fc2: try projection(p + "mlp.fc2", rows: h, cols: f))
    }

    /// The image rows the Q-Former reads: the final LayerNorm of the last block's output,
    /// `sequenceLength × hiddenSize`, row-major (transformers' `last_hidden_state`).
    public func imageRows(_ pixels: PixelTensor) throws -> [Float] {
        let h = config.hiddenSize, n = config.sequenceLength
        let embeddings = try patchEmbedding.embed(pixels, classToken: classEmbedding, pool: pool)
        let last = try encoder.run(embeddings: embeddings, tokens: n, layers: [config.numLayers])[0]
        var out = last
        layerNormRows(last, weight: postNormWeight, bias: postNormBias, rows: n, width: h,
                      eps: config.finalLayerNormEps, into: &out)
        return out
    }
}

extension PatchEmbedding {
    /// Weights already read (BLIP's position embedding is a `[1, n, h]` parameter, not CLIP's embedding table).
    init(weight: WeightMatrix, bias: [Float]?, positions: [Float], config: VisionConfig) {
        self.weight = weight
        self.bias = bias
        self.positions = positions
        self.config = config
    }
}

extension VisionEncoder {
    /// An encoder over layers loaded by a tower with its own tensor names.
    init(config: VisionConfig, layers: [VisionLayerWeights], pool: WorkerPool) {
        self.config = config
        self.layers = layers
        self.pool = pool
    }
}
