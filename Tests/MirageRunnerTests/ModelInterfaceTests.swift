import Foundation
import Testing
import MirageEngine
import MirageImaging
import MirageTokenizers
import MirageModels
import MirageTestSupport
@testable import MirageRunner

/// The runner reaches models only through `VisionLanguageModel` / `ModelFamilies`: protocol templates by
/// architecture, family or decoder; image rows cached per instruction when the model reads it; PyTorch
/// checkpoints in the fingerprint.
@Suite struct ModelInterfaceTests {
    /// A tiny synthetic LLaVA (Llama decoder, CLIP tower), loaded through the registry.
    static func tinyLlava() throws -> (URL, any VisionLanguageModel) {
        let folder = TestTemporary.url("mirage-runner-interface")
        try SyntheticLlavaSpec(text: SyntheticModelSpec(architecture: .llama, size: .tiny, seed: 5, dtype: .f32),
                               vision: SyntheticVisionSpec(kind: .clip, size: .tiny, seed: 5, dtype: .f32)).write(to: folder)
        return (folder, try ModelFamilies.load(folder, options: LoadOptions(threads: 1)))
    }

    @Test func protocolTemplatesPickTheMostSpecificKey() throws {
        let (folder, model) = try Self.tinyLlava()
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(model.architectureName == "llava-llama")
        func chosen(_ templates: String) throws -> RunProtocol.Template {
            let p = try RunProtocol.parse("task: chair\nprompt: Describe it.\nimages: {ids: [1]}\nmax_new_tokens: 4\n"
                                          + "template: plain\ntemplates: \(templates)\n", file: "p.yaml", defaultName: "p")
            return p.template(for: model)
        }
        #expect(try chosen("{llama: chatml, llava: llava15, llava-llama: llava15-system}") == .named("llava15-system"))
        #expect(try chosen("{llama: chatml, llava: llava15, llava-qwen2: llava15-system}") == .named("llava15"))
        #expect(try chosen("{llama: chatml, qwen2: llava15}") == .named("chatml"))
        #expect(try chosen("{qwen2: chatml}") == .named("plain"))
        // Protocol files written for decoder keys keep working unchanged.
        let shipped = try RunProtocol.load(path: SharedData.repositoryRoot
            .appendingPathComponent("Annotations/protocols/opera-pope-random.yaml").path)
        #expect(shipped.template(for: model) == shipped.template(for: .llama))
        // ... and render the same text, so stored protocol hashes (and resume keys) do not change.
        #expect(try RunProtocol.render(shipped.template(for: model), text: shipped.prompt, model: model)
                == RunProtocol.render(shipped.template(for: .llama), text: shipped.prompt))
        #expect(try RunProtocol.render(.named("processor"), text: "<image> x", model: model) == "<image> x")
        #expect(throws: RunnerError.self) { try RunProtocol.render(.named("vicuna"), text: "x", model: model) }
    }

    @Test func imageRowsAreCachedPerInstructionOnlyWhenTheModelReadsIt() throws {
        let (folder, model) = try Self.tinyLlava()
        defer { try? FileManager.default.removeItem(at: folder) }
        let image = SharedData.repositoryRoot.appendingPathComponent("Tests/MirageEngineTests/Fixtures/llava/pipeline.png")
        for reads in [false, true] {
            let counting = CountingModel(model, readsInstruction: reads)
            var context = ImageContext(imageID: 1, url: image, model: counting, missingReason: "")
            let a = try context.embedding(padToSquare: false, instruction: "What is this?")
            _ = try context.embedding(padToSquare: false, instruction: "What is this?")
            let b = try context.embedding(padToSquare: false, instruction: "Count the dogs.")
            #expect(counting.instructions == (reads ? ["What is this?", "Count the dogs."] : ["What is this?"]))
            #expect(a == b)   // LLaVA's rows do not depend on the instruction
        }
    }

    /// The opera-* protocols render exactly the prompt OPERA's LLaVA-1.5 wrapper builds (its `<ImageHere>` is
    /// Mirage's `<image>`), per Tests/MirageModelsTests/Fixtures/paper-models/llava-original/reference.json.
    @Test func operaProtocolsRenderOperasLlavaPrompt() throws {
        let reference = SharedData.repositoryRoot
            .appendingPathComponent("Tests/MirageModelsTests/Fixtures/paper-models/llava-original/reference.json")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: reference)) as! [String: Any]
        let chair = try RunProtocol.load(path: SharedData.repositoryRoot.appendingPathComponent("Annotations/protocols/opera-chair-512.yaml").path)
        let pope = try RunProtocol.load(path: SharedData.repositoryRoot.appendingPathComponent("Annotations/protocols/opera-pope-random.yaml").path)
        for c in json["cases"] as! [[String: Any]] {
            let spec = (c["question_kind"] as! String) == "chair" ? chair : pope
            let text = spec.task == .chair ? spec.prompt : spec.userText(question: c["question"] as! String)
            let rendered = try RunProtocol.render(spec.template(for: .llama), text: text)
            #expect(rendered == (c["full_prompt"] as! String).replacingOccurrences(of: "<ImageHere>", with: "<image>"))
        }
    }
}

/// A model that records the instructions its image encoder is asked with.
final class CountingModel: VisionLanguageModel, @unchecked Sendable {
    let inner: any VisionLanguageModel
    let readsInstruction: Bool
    var instructions: [String?] = []

    init(_ inner: any VisionLanguageModel, readsInstruction: Bool) {
        self.inner = inner
        self.readsInstruction = readsInstruction
    }

    var family: ModelFamily { inner.family }
    var languageModel: LanguageModel { inner.languageModel }
    var architectureName: String { inner.architectureName }
    var imageTokenCount: Int { inner.imageTokenCount }
    var imageRowsReadInstruction: Bool { readsInstruction }
    var defaultTemplate: PromptTemplate { inner.defaultTemplate }
    var templates: [PromptTemplate] { inner.templates }
    func pixels(ofImageAt path: String, padToSquare: Bool) throws -> PixelTensor {
        try inner.pixels(ofImageAt: path, padToSquare: padToSquare)
    }
    func embedImage(_ pixels: PixelTensor, instruction: String?) throws -> ImageEmbedding {
        instructions.append(instruction)
        return try inner.embedImage(pixels, instruction: instruction)
    }
    func prompt(_ text: String, tokenizer: Tokenizer, image: ImageEmbedding) throws -> MultimodalPrompt {
        try inner.prompt(text, tokenizer: tokenizer, image: image)
    }
}
