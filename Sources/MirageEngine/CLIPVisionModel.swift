import Foundation
import MirageImaging
import MirageKernels

/// transformers' `CLIPVisionModel`: patch embedding (conv without bias) → [class token; patches] + position
/// embeddings → pre-layernorm (`pre_layrnorm`) → encoder. `hidden_states[0]` is the pre-layernorm output.
/// The post-layernorm only pools the class token for CLIP's projection head; LLaVA never uses it, so it is
/// not loaded.
public struct CLIPVisionModel: VisionTower, @unchecked Sendable {
    public let config: VisionConfig
    let patchEmbedding: PatchEmbedding
    let classEmbedding: [Float]
    let preNormWeight: [Float], preNormBias: [Float]
    let encoder: VisionEncoder
    let pool: WorkerPool

    /// `prefix` e.g. "vision_tower.vision_model." (tensors `<prefix>embeddings.*`, `<prefix>pre_layrnorm.*`,
    /// `<prefix>encoder.layers.N.*`).
    public init(config: VisionConfig, store: TensorStore, prefix: String, pool: WorkerPool) throws {
        precondition(config.kind == .clip, "CLIPVisionModel needs a clip_vision_model config")
        self.config = config
        self.pool = pool
        let h = config.hiddenSize
        patchEmbedding = try PatchEmbedding(store: store, prefix: prefix + "embeddings.", config: config, hasBias: false)
        classEmbedding = try store.vector(prefix + "embeddings.class_embedding", count: h)
        preNormWeight = try store.vector(prefix + "pre_layrnorm.weight", count: h)
        preNormBias = try store.vector(prefix + "pre_layrnorm.bias", count: h)
        encoder = try VisionEncoder(store: store, prefix: prefix + "encoder.", config: config, pool: pool)
    }

    public func hiddenStates(_ pixels: PixelTensor, layers: [Int]) throws -> [[Float]] {
        let h = config.hiddenSize, n = config.sequenceLength
        let embeddings = try patchEmbedding.embed(pixels, classToken: classEmbedding, pool: pool)
        var normed = embeddings
        layerNormRows(embeddings, weight: preNormWeight, bias: preNormBias, rows: n, width: h,
                      eps: config.layerNormEps, into: &normed)
        return try encoder.run(embeddings: normed, tokens: n, layers: layers)
    }
}
