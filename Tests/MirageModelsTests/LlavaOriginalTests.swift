import Foundation
import MirageEngine
import MirageTokenizers
@testable import MirageModels
import MirageTestSupport
import Testing

/// The original LLaVA-1.5 layout (`llava-original`): recognised and loaded through the registry, its tower
/// found outside the model folder, its prompt built as LLaVA's `tokenizer_image_token` builds it.
@Suite struct LlavaOriginalTests {
    /// A tiny synthetic original-layout folder and its tower (written beside it), in a scratch folder.
    static func synthesize(seed: UInt64 = 2) throws -> (root: URL, model: URL, tower: URL) {
        let root = TestTemporary.url("mirage-llava-original")
        let model = root.appendingPathComponent("llava-v1.5-tiny")
        let spec = try SyntheticLlavaOriginalSpec(request: SynthesisRequest(architecture: "llava-original", size: "tiny",
                                                                            seed: seed, dtype: .f32))
        let tower = try spec.write(to: model)
        return (root, model, tower)
    }

    @Test func synthesizedFolderLoadsThroughTheRegistry() throws {
        let (root, model, tower) = try Self.synthesize()
        defer { try? FileManager.default.removeItem(at: root) }
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: model.appendingPathComponent("config.json"))) as! [String: Any]
        #expect(config["architectures"] as? [String] == ["LlavaLlamaForCausalLM"] && config["text_config"] == nil)
        #expect(config["mm_projector_type"] as? String == "mlp2x_gelu" && config["mm_vision_select_layer"] as? Int == -2)
        let (family, _) = try ModelFamilies.family(of: model)
        #expect(family.name == "llava-original")
        let shape = try ModelFamilies.shape(of: model)
        #expect(shape.imageTokenCount == 16)
        #expect(shape.otherWeightFolders.map(\.standardizedFileURL.path) == [tower.standardizedFileURL.path])
        let vlm = try ModelFamilies.load(model, options: LoadOptions(threads: 1))
        #expect(vlm.architectureName == "llava-original-llama" && vlm.imageTokenCount == 16)
        #expect(vlm.defaultTemplate.name == "llava15-system" && !vlm.templateNames.contains("chatml"))
        #expect(vlm.templateNames.contains("processor"))

        // The projector reads hidden_states[-2] without CLS: recompute it from the tower and the tensors.
        let original = try #require(vlm as? LlavaOriginalForCausalLM)
        let pixels = try vlm.pixels(ofImageAt: SharedData.repositoryRoot
            .appendingPathComponent("Tests/MirageEngineTests/Fixtures/llava/pipeline.png").path, padToSquare: false)
        #expect(pixels.height == 32 && pixels.width == 32)
        let rows = try vlm.embedImage(pixels, instruction: nil)
        let state = try original.vision.hiddenStates(pixels, layers: [1])[0]   // 2 layers: -2 is state 1
        let store = try TensorStore(folder: model)
        func floats(_ name: String, _ shape: [Int]) throws -> [Float] {
            let (_, pointer, _) = try store.require(name, shape: shape)   // synthesized in f32
            return (0..<shape.reduce(1, *)).map { pointer.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
        }
        let width = 32, hidden = 64
        let w0 = try floats("model.mm_projector.0.weight", [hidden, width]), b0 = try floats("model.mm_projector.0.bias", [hidden])
        let w2 = try floats("model.mm_projector.2.weight", [hidden, hidden]), b2 = try floats("model.mm_projector.2.bias", [hidden])
        var expected: [Float] = []
        for r in 1...16 {
            let x = Array(state[(r * width)..<((r + 1) * width)])
            let middle = (0..<hidden).map { o -> Float in
                let v = zip(x, w0[(o * width)..<((o + 1) * width)]).reduce(b0[o]) { $0 + $1.0 * $1.1 }
                return 0.5 * v * (1 + Float(erf(Double(v) / 2.0.squareRoot())))
            }
            expected += (0..<hidden).map { o in zip(middle, w2[(o * hidden)..<((o + 1) * hidden)]).reduce(b2[o]) { $0 + $1.0 * $1.1 } }
        }
        #expect(Numerics.relativeError(rows.values, expected) < 1e-5)

        // tokenizer_image_token: BOS as the tokenizer adds it, the image as one -200 in input_ids.
        let tokenizer = try Tokenizer(folder: model)
        let prompt = try vlm.prompt("Describe it.", template: vlm.defaultTemplate, tokenizer: tokenizer, image: rows)
        let rendered = vlm.defaultTemplate.render("Describe it.").components(separatedBy: "<image>")
        let head = tokenizer.encode(rendered[0]), tail = tokenizer.encode(rendered[1], addSpecialTokens: false)
        #expect(prompt.inputIDs == head + [-200] + tail)
        #expect(prompt.imageSpan == head.count..<(head.count + 16) && prompt.items.count == head.count + 16 + tail.count)
        #expect(throws: ModelError.self) { try vlm.prompt("no marker", tokenizer: tokenizer, image: rows) }
    }

    @Test func towerIsFoundWhereTheDocsSay() throws {
        let (root, model, tower) = try Self.synthesize(seed: 4)
        defer { try? FileManager.default.removeItem(at: root) }
        let name = "openai/clip-vit-large-patch14-336"
        let empty: [String: String] = ["HF_HOME": root.appendingPathComponent("no-hf").path]
        // Nowhere: the error lists where Mirage looked and how to get the tower.
        do {
            _ = try VisionTowerLocator.locate(name, model: model, given: nil, environment: empty)
            Issue.record("a missing tower was found")
        } catch {
            let message = "\(error)"
            for part in ["--vision-tower DIR", "MIRAGE_VISION_TOWERS", "huggingface-cli download \(name)",
                         root.appendingPathComponent("clip-vit-large-patch14-336").path,
                         root.appendingPathComponent("no-hf/hub/models--openai--clip-vit-large-patch14-336/snapshots").path] {
                #expect(message.contains(part), "\(part) not in: \(message)")
            }
        }
        // Given: used as is (and refused without config.json).
        #expect(try VisionTowerLocator.locate(name, model: model, given: tower, environment: empty) == tower)
        #expect(throws: ModelError.self) { try VisionTowerLocator.locate(name, model: model, given: root, environment: empty) }
        // MIRAGE_VISION_TOWERS: a folder holding the tower by its last name component or its full name.
        let shelf = root.appendingPathComponent("towers")
        try FileManager.default.createDirectory(at: shelf.appendingPathComponent("openai"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: tower, to: shelf.appendingPathComponent("openai/clip-vit-large-patch14-336"))
        let viaVariable = try VisionTowerLocator.locate(name, model: model, given: nil,
                                                        environment: empty.merging([VisionTowerLocator.environmentVariable: "/nonexistent:" + shelf.path]) { $1 })
        #expect(viaVariable == shelf.appendingPathComponent("openai/clip-vit-large-patch14-336"))
        // The Hugging Face cache: the snapshot refs/main names.
        let repo = root.appendingPathComponent("hf/hub/models--openai--clip-vit-large-patch14-336")
        try FileManager.default.createDirectory(at: repo.appendingPathComponent("snapshots/aaa"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: repo.appendingPathComponent("refs"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: tower, to: repo.appendingPathComponent("snapshots/bbb"))
        try Data("bbb\n".utf8).write(to: repo.appendingPathComponent("refs/main"))
        let viaCache = try VisionTowerLocator.locate(name, model: model, given: nil,
                                                     environment: ["HF_HOME": root.appendingPathComponent("hf").path])
        #expect(viaCache == repo.appendingPathComponent("snapshots/bbb"))
    }
}
