import Foundation
import MirageImaging
import MirageKernels

/// transformers' `SiglipVisionModel`: patch embedding (conv with bias) + position embeddings (no class token,
/// no pre-layernorm) → encoder. `hidden_states[0]` is the embeddings output. The post-layernorm and the
/// attention-pooling head (`vision_use_head`) only feed SigLIP's pooled output, which LLaVA does not use;
/// they are not loaded.
public struct SiglipVisionModel: VisionTower, @unchecked Sendable {
    public let config: VisionConfig
    let patchEmbedding: PatchEmbedding
    let encoder: VisionEncoder
    let pool: WorkerPool

    /// `prefix` e.g. "vision_tower.vision_model." (tensors `<prefix>embeddings.*`, `<prefix>encoder.layers.N.*`).
    public init(config: VisionConfig, store: TensorStore, prefix: String, pool: WorkerPool) throws {
        precondition(config.kind == .siglip, "SiglipVisionModel needs a siglip_vision_model config")
        self.config = config
        self.pool = pool
        patchEmbedding = try PatchEmbedding(store: store, prefix: prefix + "embeddings.", config: config, hasBias: true)
        encoder = try VisionEncoder(store: store, prefix: prefix + "encoder.", config: config, pool: pool)
    }

    public func hiddenStates(_ pixels: PixelTensor, layers: [Int]) throws -> [[Float]] {
        let embeddings = try patchEmbedding.embed(pixels, classToken: nil, pool: pool)
        return try encoder.run(embeddings: embeddings, tokens: config.sequenceLength, layers: layers)
    }
}
