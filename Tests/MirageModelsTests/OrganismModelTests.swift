import Foundation
@testable import MirageModels
import MirageData
import MirageEngine
import MirageTestSupport
import MirageTokenizers
import Testing

/// The model organism shipped in Models/organism (docs/organism.md) against the Python libraries it was
/// trained with: its weights are the recorded ones, Mirage's tokenizer gives the `tokenizers` library's ids,
/// and its logits and greedy tokens equal transformers' (Scripts/organism/reference.py wrote the reference).
@Suite struct OrganismModelTests {
    static let model = SharedData.repositoryRoot.appendingPathComponent("Models/organism")
    static let heldOut = SharedData.repositoryRoot.appendingPathComponent("Annotations/organism")
    static let referenceURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/organism/reference.json")
    /// SHA-256 of Models/organism/model.safetensors, as docs/organism.md records it.
    static let weightsSHA256 = "acf592e532406a261ddd1318f8a8e924a2e6bea67115d10c98d1fd91269f9ef7"

    static func reference() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: referenceURL)) as! [String: Any]
    }

    static func ints(_ v: Any?) -> [Int] { (v as! [Any]).map { ($0 as! NSNumber).intValue } }

    @Test func weightsAreTheRecordedOnesAndSmall() throws {
        let weights = Self.model.appendingPathComponent("model.safetensors")
        #expect(try SHA256.hex(ofFile: weights) == Self.weightsSHA256,
                "Models/organism/model.safetensors changed: retrain with Scripts/organism and record the new SHA-256 here and in docs/organism.md")
        let size = try FileManager.default.attributesOfItem(atPath: weights.path)[.size] as! NSNumber
        #expect(size.intValue <= 20_000_000)
    }

    @Test func tokenizerIdsEqualTheTokenizersLibrary() throws {
        let tokenizer = try Tokenizer(folder: Self.model)
        let encodings = try Self.reference()["encodings"] as! [[String: Any]]
        #expect(encodings.count > 200)
        var mismatches: [String] = []
        for e in encodings {
            let text = e["text"] as! String
            if tokenizer.encode(text) != Self.ints(e["ids"]) { mismatches.append(text) }
        }
        #expect(mismatches.isEmpty, "Mirage's ids differ from tokenizers' for: \(mismatches.prefix(5))")
    }

    @Test func logitsAndGreedyTokensEqualTransformers() throws {
        let model = try LlavaForConditionalGeneration(folder: Self.model, options: LoadOptions(threads: 2))
        let tokenizer = try Tokenizer(folder: Self.model)
        let cases = try Self.reference()["cases"] as! [[String: Any]]
        #expect(cases.count == 2)
        for c in cases {
            let name = c["image"] as! String
            let pixels = try model.pixels(ofImageAt: Self.heldOut.appendingPathComponent("images/\(name)").path)
            let image = try model.embedImage(pixels)
            let ids = Self.ints(c["input_ids"])
            // The prompt as the demo builds it (llava15 template, <image> expanded) tokenizes to the same ids.
            let built = try model.prompt(c["prompt"] as! String, template: .llava15(systemMessage: false),
                                         tokenizer: tokenizer, image: image)
            #expect(built.items.count == ids.count)
            let prompt = try model.prompt(tokenIDs: ids, image: image)
            let output = try model.languageModel.makeSession().append(prompt.items, options: ForwardOptions(logits: .all))
            let rows = Self.ints(c["rows"])
            let logits = (c["logits"] as! [[Any]]).map { $0.map { Float(($0 as! NSNumber).doubleValue) } }
            for (row, expected) in zip(rows, logits) {
                let error = Numerics.relativeError(output.logits(row), expected)
                #expect(error <= 1e-4, "\(name) logits row \(row): relative error \(error)")
            }
            let eos = try #require(tokenizer.id(for: "</s>"))
            let greedy = try greedyDecode(model: model.languageModel, prompt: prompt.items, maxNewTokens: 40, stopTokens: [eos])
            #expect(greedy == Self.ints(c["greedy"]), "\(name): Mirage wrote \(tokenizer.decode(greedy).debugDescription)")
        }
    }
}
