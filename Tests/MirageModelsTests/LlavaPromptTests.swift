import Foundation
@testable import MirageModels
import MirageEngine
import MirageTokenizers
import MirageTestSupport
import Testing

/// Chat templates, image-token expansion and the whole image-file → logits pipeline against transformers'
/// LlavaProcessor + LlavaForConditionalGeneration (Fixtures/llava/pipeline.json, from
/// Scripts/fixtures/make_llava_pipeline_reference.py on `mirage models synth` folders).
@Suite struct LlavaPromptTests {
    @Test func templatesRenderAsPublished() {
        #expect(LlavaChatTemplate.llava15(systemMessage: false).render("What is this?")
            == "USER: <image>\nWhat is this? ASSISTANT:")
        #expect(LlavaChatTemplate.llava15(systemMessage: true).render("What is this?")
            == "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
            + "detailed, and polite answers to the human's questions. USER: <image>\nWhat is this? ASSISTANT:")
        #expect(LlavaChatTemplate.chatML(system: LlavaChatTemplate.qwenSystem).render("Hi")
            == "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\nHi<|im_end|>\n<|im_start|>assistant\n")
        #expect(LlavaChatTemplate.chatML(system: nil).render("Hi") == "<|im_start|>user\n<image>\nHi<|im_end|>\n<|im_start|>assistant\n")
        #expect(LlavaChatTemplate.raw.render("<image> x") == "<image> x")
        #expect(LlavaChatTemplate.default(for: .qwen2) == .chatML(system: LlavaChatTemplate.qwenSystem))
        #expect(LlavaChatTemplate.default(for: .llama) == .llava15(systemMessage: false))
        #expect(LlavaChatTemplate(name: "llava15-system") == .llava15(systemMessage: true))
        #expect(LlavaChatTemplate(name: "vicuna") == nil)
    }

    struct Case {
        var arch: String, vision: String, seed: UInt64, template: String, prompt: String
        var inputIDs: [Int], pixelValues: [Float], lastLogits: [Float]
    }

    static func cases() throws -> [Case] {
        let data = try Data(contentsOf: LlavaFixtures.root.appendingPathComponent("pipeline.json"))
        let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        return (json["cases"] as! [[String: Any]]).map { c in
            let synth = c["synth"] as! [String: Any]
            return Case(arch: synth["arch"] as! String, vision: synth["vision"] as! String,
                        seed: UInt64((synth["seed"] as! NSNumber).intValue), template: c["template"] as! String,
                        prompt: c["prompt"] as! String, inputIDs: (c["input_ids"] as! [NSNumber]).map(\.intValue),
                        pixelValues: LlavaFixtures.floats(c["pixel_values"]), lastLogits: LlavaFixtures.floats(c["last_logits"]))
        }
    }

    static func synthesize(_ c: Case) throws -> URL {
        let folder = TestTemporary.root.appendingPathComponent("mirage-llava-\(c.arch)-\(c.vision)-\(c.seed)-\(UUID().uuidString)")
        let text = SyntheticModelSpec(architecture: c.arch == "llava-llama" ? .llama : .qwen2, size: .tiny, seed: c.seed, dtype: .f32)
        let vision = SyntheticVisionSpec(kind: c.vision == "clip" ? .clip : .siglip, size: .tiny, seed: c.seed, dtype: .f32)
        try SyntheticLlavaSpec(text: text, vision: vision).write(to: folder)
        return folder
    }

    @Test func imageFileToLogitsMatchesTransformers() throws {
        for c in try Self.cases() {
            let folder = try Self.synthesize(c)
            defer { try? FileManager.default.removeItem(at: folder) }
            let model = try LlavaForConditionalGeneration(folder: folder, options: LoadOptions(threads: 2))
            let tokenizer = try Tokenizer(folder: folder)
            let pixels = try model.pixels(ofImageAt: LlavaFixtures.root.appendingPathComponent("pipeline.png").path)
            #expect(Numerics.relativeError(pixels.values, c.pixelValues) < 1e-6, "\(c.arch) pixel values")
            let image = try model.embedImage(pixels)
            let prompt = try model.prompt(c.prompt, template: LlavaChatTemplate(name: c.template)!, tokenizer: tokenizer, image: image)
            #expect(prompt.tokenIDs == c.inputIDs, "\(c.arch): token ids differ from LlavaProcessor's")
            let first = c.inputIDs.firstIndex(of: model.config.imageTokenID)!
            #expect(prompt.imageSpan == first..<(first + model.imageTokenCount))
            #expect(prompt.responseStart == c.inputIDs.count)
            let output = try model.languageModel.makeSession().append(prompt.items)
            let error = Numerics.relativeError(output.logits(0), c.lastLogits)
            #expect(error < 1e-4, "\(c.arch) last logits: relative error \(error)")
        }
    }

    @Test func placeholderAndTokenizerMismatchesAreExplained() throws {
        let c = try Self.cases()[0]
        let folder = try Self.synthesize(c)
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = try LlavaForConditionalGeneration(folder: folder, options: LoadOptions(threads: 2))
        let tokenizer = try Tokenizer(folder: folder)
        let image = ImageEmbedding(tokenCount: model.imageTokenCount, width: model.config.text.hiddenSize,
                                   values: [Float](repeating: 0.5, count: model.imageTokenCount * model.config.text.hiddenSize))
        #expect(throws: ModelError.self) { try model.prompt("no placeholder", template: .raw, tokenizer: tokenizer, image: image) }
        #expect(throws: ModelError.self) { try model.prompt("x", template: .plain, tokenizer: tokenizer, image: image, imageToken: "<img>") }
        let plain = try model.prompt("x", template: .plain, tokenizer: tokenizer, image: image)
        #expect(plain.imageSpan == 0..<model.imageTokenCount)
    }
}
