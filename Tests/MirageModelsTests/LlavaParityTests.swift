import Foundation
@testable import MirageModels
import MirageEngine
import MirageKernels
import MirageTestSupport
import Testing

/// Tiny LLaVA models (Llama / Qwen2 decoders, CLIP / SigLIP towers, single and multiple feature layers,
/// both select strategies, both tensor layouts) against transformers 5.24 on the same pixel_values.
@Suite struct LlavaParityTests {
    static func load(_ name: String) throws -> LlavaForConditionalGeneration {
        try LlavaForConditionalGeneration(folder: LlavaFixtures.folder(name), options: LoadOptions(threads: 2))
    }

    @Test(arguments: LlavaFixtures.modelNames)
    func imageFeaturesLogitsAndGreedyMatch(_ name: String) throws {
        let model = try Self.load(name)
        let reference = try LlavaFixtures.reference(name)
        let image = try model.embedImage(try LlavaFixtures.pixels())
        #expect(image.tokenCount == reference.imageFeatures.count)
        #expect(image.tokenCount == model.imageTokenCount)
        let featureError = Numerics.relativeError(image.values, reference.imageFeatures.flatMap { $0 })
        #expect(featureError < 1e-5, "\(name) image features: relative error \(featureError)")

        let prompt = try model.prompt(tokenIDs: reference.inputIDs, image: image)
        #expect(prompt.imageSpan == 6..<(6 + image.tokenCount))
        #expect(prompt.responseStart == reference.inputIDs.count)
        let output = try model.languageModel.makeSession().append(prompt.items, options: ForwardOptions(logits: .all))
        #expect(output.logitRows.count == reference.logits.count)
        for (row, expected) in reference.logits.enumerated() {
            let error = Numerics.relativeError(output.logits(row), expected)
            #expect(error < 1e-4, "\(name) logits row \(row): relative error \(error)")
        }
        let greedy = try greedyDecode(model: model.languageModel, prompt: prompt.items, maxNewTokens: 32)
        #expect(greedy == reference.greedy)
    }

    @Test func featureLayersAndStrategiesAreReadFromConfig() throws {
        let multi = try LlavaConfig.load(from: LlavaFixtures.folder("llava-llama-clip-multi-v4").appendingPathComponent("config.json"))
        let resolved = try multi.resolvedFeatureLayers()
        #expect(multi.featureLayers == [-4, -2] && resolved == [0, 2])
        #expect(multi.featureSelect == .full && multi.imageTokenCount == 17)
        let siglip = try LlavaConfig.load(from: LlavaFixtures.folder("llava-qwen2-siglip").appendingPathComponent("config.json"))
        #expect(siglip.vision.kind == .siglip && siglip.imageTokenCount == 16 && siglip.text.architecture == .qwen2)
        let clip = try LlavaConfig.load(from: LlavaFixtures.folder("llava-llama-clip").appendingPathComponent("config.json"))
        #expect(clip.imageTokenCount == 16 && clip.imageTokenID == 259)
    }

    @Test func imageEmbeddingIsReusableAcrossPrompts() throws {
        let model = try Self.load("llava-llama-clip")
        let reference = try LlavaFixtures.reference("llava-llama-clip")
        let image = try model.embedImage(try LlavaFixtures.pixels())
        // Same image, a prompt with a different text prefix: the image rows move, the embedding is unchanged.
        var ids = reference.inputIDs
        ids.insert(contentsOf: [7, 8, 9], at: 1)
        let shifted = try model.prompt(tokenIDs: ids, image: image)
        #expect(shifted.imageSpan == 9..<25)
        for i in 0..<image.tokenCount {
            #expect(shifted.items[shifted.imageSpan.lowerBound + i] == .embedding(image.row(i)))
        }
        // A prompt whose image-token run has the wrong length is refused with the count to use.
        do {
            _ = try model.prompt(tokenIDs: Array(reference.inputIDs.dropLast(8)) + [259], image: image)
            Issue.record("expected an error")
        } catch let error as ModelError {
            #expect(error.description.contains("16 consecutive image tokens"))
        }
    }
}
