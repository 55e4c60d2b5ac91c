import Foundation
@testable import MirageModels
import MirageEngine
import MirageImaging
import MirageKernels
import MirageTestSupport
import Testing

/// CLIP and SigLIP towers against transformers 5.24's `vision_tower(pixel_values, output_hidden_states=True)`.
@Suite struct VisionTowerTests {
    static let pool = WorkerPool(threadCount: 2)

    @Test(arguments: LlavaFixtures.modelNames)
    func hiddenStatesMatchTransformers(_ name: String) throws {
        let folder = LlavaFixtures.folder(name)
        let config = try LlavaConfig.load(from: folder.appendingPathComponent("config.json"))
        let tower = try loadVisionTower(config: config.vision, store: TensorStore(folder: folder), pool: Self.pool)
        let reference = try LlavaFixtures.reference(name)
        let layers = Array(0...config.vision.numLayers)
        #expect(reference.visionHiddenStates.count == layers.count)
        let states = try tower.hiddenStates(try LlavaFixtures.pixels(), layers: layers)
        for layer in layers {
            let expected = reference.visionHiddenStates[layer].flatMap { $0 }
            #expect(states[layer].count == expected.count)
            let error = Numerics.relativeError(states[layer], expected)
            #expect(error < 1e-5, "\(name) hidden state \(layer): relative error \(error)")
        }
    }

    @Test func unrequestedLayersAreSkippedAndOrderKept() throws {
        let folder = LlavaFixtures.folder("llava-llama-clip-multi-v4")
        let config = try LlavaConfig.load(from: folder.appendingPathComponent("config.json"))
        let tower = try loadVisionTower(config: config.vision, store: TensorStore(folder: folder), pool: Self.pool)
        let reference = try LlavaFixtures.reference("llava-llama-clip-multi-v4")
        let states = try tower.hiddenStates(try LlavaFixtures.pixels(), layers: [2, 0])
        #expect(Numerics.relativeError(states[0], reference.visionHiddenStates[2].flatMap { $0 }) < 1e-5)
        #expect(Numerics.relativeError(states[1], reference.visionHiddenStates[0].flatMap { $0 }) < 1e-5)
        #expect(throws: ModelError.self) { try tower.hiddenStates(try LlavaFixtures.pixels(), layers: [4]) }
    }

    @Test func wrongImageSizeIsRejectedWithTheExpectedShape() throws {
        let folder = LlavaFixtures.folder("llava-qwen2-siglip")
        let config = try LlavaConfig.load(from: folder.appendingPathComponent("config.json"))
        let tower = try loadVisionTower(config: config.vision, store: TensorStore(folder: folder), pool: Self.pool)
        let pixels = try PixelTensor(validating: [Float](repeating: 0, count: 3 * 16 * 16), height: 16, width: 16)
        do {
            _ = try tower.hiddenStates(pixels, layers: [1])
            Issue.record("expected an error")
        } catch let error as ModelError {
            #expect(error.description.contains("[3, 32, 32]"))
        }
    }

    @Test func configDefaultsFollowTransformers() throws {
        // llava-1.5-7b-hf's vision_config lists neither hidden_act nor layer_norm_eps.
        let clip = try VisionConfig(json: ["model_type": "clip_vision_model", "hidden_size": 1024, "image_size": 336,
                                           "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24,
                                           "patch_size": 14])
        #expect(clip.activation == .quick && clip.layerNormEps == 1e-5 && clip.sequenceLength == 577)
        let siglip = try VisionConfig(json: ["model_type": "siglip_vision_model"])
        #expect(siglip.activation == .tanh && siglip.layerNormEps == 1e-6 && siglip.patchSize == 16 && siglip.sequenceLength == 196)
        #expect(throws: ModelError.self) { try VisionConfig(json: ["model_type": "dinov2"]) }
        #expect(throws: ModelError.self) { try VisionConfig(json: ["hidden_act": "relu"]) }
    }
}
