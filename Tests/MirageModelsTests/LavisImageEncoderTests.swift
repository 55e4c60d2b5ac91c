import Foundation
import MirageEngine
import MirageKernels
import MirageModels
import MirageTestSupport
import Testing
import MirageImaging
import MirageTokenizers

/// The image encoders of InstructBLIP and MiniGPT-4 in LAVIS' original layout (EVA `visual_encoder.*`, `ln_vision`,
/// `Qformer.bert.*`, `llm_proj` / `llama_proj`) against OPERA's own wrappers (blip2_vicuna_instruct.py,
/// mini_gpt4.py) on the tiny paper-model fixtures: the BERT ids of InstructBLIP's instruction, ln_vision and
/// Q-Former samples, and the image rows the LLM receives, for two images and two questions.
@Suite struct LavisImageEncoderTests {
    static let paperModels = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/paper-models")

    /// The fixture's pieces as released (EVA, Q-Former and projector .pth files, the Vicuna folder with .bin shards
    /// and tokenizer.model) assembled by `LavisAssembly` into a scratch folder.
    static func assembled(_ name: String, instruct: Bool) throws -> URL {
        let folder = paperModels.appendingPathComponent(name)
        let reference = try Blip2Fixtures.json(folder.appendingPathComponent("reference.json"))
        let eva = try #require((reference["sizes"] as? [String: Any])?["eva"] as? [String: Any])
        let out = TestTemporary.url("lavis-\(name)")
        try LavisAssembly(architecture: instruct ? .instructBlip : .miniGPT4,
                          vicuna: folder.appendingPathComponent(instruct ? "vicuna-7b-v1.1" : "vicuna-7b-v0"),
                          visionEncoder: folder.appendingPathComponent("eva_vit_g.pth"),
                          qformer: folder.appendingPathComponent(instruct ? "instruct_blip_vicuna7b_trimmed.pth"
                                                                          : "blip2_pretrained_flant5xxl.pth"),
                          projector: instruct ? nil : folder.appendingPathComponent("prerained_minigpt4_7b.pth"),
                          bert: folder.appendingPathComponent("bert-base-uncased"),
                          visionHeads: try #require(eva["num_heads"] as? Int)).write(to: out)
        return out
    }

    static func encoder(_ name: String, instruct: Bool) throws -> LavisImageEncoder {
        let folder = paperModels.appendingPathComponent(name)
        let assembled = try assembled(name, instruct: instruct)
        defer { try? FileManager.default.removeItem(at: assembled) }
        let store = try TensorStore(folder: assembled)
        let config = try Blip2Fixtures.json(assembled.appendingPathComponent("config.json"))
        let heads = (config["vision_config"] as? [String: Any])?["num_attention_heads"] as? Int
        #expect(heads == 4)
        let vision = try LavisImageEncoder.visionConfig(store: store, prefix: "", heads: heads)
        let bertConfig = folder.appendingPathComponent("bert-base-uncased/config.json")
        let qformer = try QFormerConfig(json: try Blip2Fixtures.json(bertConfig), path: bertConfig.path, prefix: "")
        return try LavisImageEncoder(store: store, vision: vision, qformer: qformer, readsInstruction: instruct,
                                     projection: instruct ? "llm_proj." : "llama_proj.", visionPrefix: "",
                                     pool: WorkerPool(threadCount: 2))
    }

    static func head(_ object: Any?) -> [Float] { Blip2Fixtures.floats((object as? [String: Any])?["head"]) }

    @Test(arguments: [("instructblip-original", true), ("minigpt4", false)])
    func imageRowsMatchOPERAsWrapper(_ name: String, _ instruct: Bool) throws {
        let folder = Self.paperModels.appendingPathComponent(name)
        let encoder = try Self.encoder(name, instruct: instruct)
        #expect(encoder.vision.config.numLayers == 2 && encoder.vision.config.intermediateSize == 209)
        #expect(encoder.numQueryTokens == 4 && encoder.qformer.readsText == instruct)
        let bert = try BertTokenizer(folder: folder.appendingPathComponent("bert-base-uncased"))
        let reference = try Blip2Fixtures.json(folder.appendingPathComponent("reference.json"))
        let cases = try #require(reference["cases"] as? [[String: Any]])
        #expect(cases.count == 4)
        for c in cases {
            let label = "\(name) \(c["image"] ?? "") \(c["question_kind"] ?? "")"
            var ids: [Int] = []
            if instruct {
                ids = bert.encode(try #require(c["qformer_text"] as? String))
                #expect(ids == c["qformer_ids"] as? [Int], "\(label): Q-Former ids")
            }
            let image = Self.paperModels.appendingPathComponent(try #require(c["image"] as? String))
            var config = ImagePreprocessorConfig.blip
            config.size = .fixed(height: 224, width: 224)
            let pixels = try ImagePreprocessor(config: config).process(try ImageDecoder.load(path: image.path))
            let pixelHead = Self.head(c["pixel_values"])
            #expect(Blip2Fixtures.relativeError(Array(pixels.values.prefix(pixelHead.count)), pixelHead) < 1e-6, "\(label): pixels")

            let intermediate = try #require(c["intermediate"] as? [String: Any])
            let vision = try encoder.visionRows(pixels)
            let visionHead = Self.head(intermediate["ln_vision"])
            #expect(Blip2Fixtures.relativeError(Array(vision.prefix(visionHead.count)), visionHead) < 1e-5, "\(label): ln_vision")
            let qformer = try encoder.qformerOutput(pixels, instructionIDs: ids)
            let qformerInfo = try #require(intermediate["qformer"] as? [String: Any])
            #expect(qformer.count == (qformerInfo["shape"] as? [Int]).map { $0.reduce(1, *) })
            let sampled = try #require(qformerInfo["sampled"] as? [String: Any])
            let indices = try #require(sampled["flat_indices"] as? [Int])
            let got = indices.map { qformer[$0] }
            #expect(Blip2Fixtures.relativeError(got, Blip2Fixtures.floats(sampled["values"])) < 1e-5, "\(label): Q-Former")

            let rows = try encoder.embed(pixels, instructionIDs: ids)
            let file = try #require((c["image_rows_file"] as? [String: Any])?["file"] as? String)
            let data = try Data(contentsOf: folder.appendingPathComponent(file))
            let expected = data.withUnsafeBytes { raw in (0..<(data.count / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) } }
            let error = Blip2Fixtures.relativeError(rows.values, expected)
            #expect(error < 1e-5, "\(label): LLM image rows, relative error \(error)")
        }
    }
}
