import Foundation
import Testing
import MirageTestSupport
@testable import MirageEngine

/// The greedy baselines of ../shared/data/opera-golden (transformers 4.29.2, fp32, CPU): generation from
/// `inputs_embeds` reproduces `output.generated_token_ids` token for token (EOS included when emitted).
@Suite struct OperaGoldenGreedyTests {
    static let root = "opera-golden"
    static var available: Bool { SharedData.has("\(root)/README.md", "\(root)/models/tiny_llama_L2/model.safetensors") }

    static var greedyCases: [String] {
        let dir = SharedData.url("\(root)/cases")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.contains("_greedy_") && $0.hasSuffix(".json") }.sorted()
    }

    @Test(.enabled(if: available, "skipped: ../shared/data/opera-golden not found (set MIRAGE_SHARED_DATA)"))
    func greedyCasesReproduce() throws {
        let cases = Self.greedyCases
        #expect(cases.count >= 11)
        var models: [String: LanguageModel] = [:]
        for name in cases {
            let data = try Data(contentsOf: SharedData.url("\(Self.root)/cases/\(name)"))
            let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
            let modelDir = json["model_dir"] as! String
            let model = try models[modelDir] ?? LanguageModel(folder: SharedData.url("\(Self.root)/\(modelDir)"),
                                                               options: LoadOptions(threads: 2))
            models[modelDir] = model
            let input = json["input"] as! [String: Any]
            let rows = (input["inputs_embeds"] as! [[Any]]).map { row in
                row.map { Float(($0 as! NSNumber).doubleValue) }
            }
            let kwargs = json["generate_kwargs"] as! [String: Any]
            let output = json["output"] as! [String: Any]
            let expected = (output["generated_token_ids"] as! [Any]).map { ($0 as! NSNumber).intValue }
            #expect(model.eosTokenIDs == [2])
            let tokens = try greedyDecode(model: model, prompt: rows.map { .embedding($0) },
                                          maxNewTokens: (kwargs["max_new_tokens"] as! NSNumber).intValue,
                                          stopTokens: Set(model.eosTokenIDs))
            #expect(tokens == expected, "\(name)")
        }
        #expect(models.count == 2)
    }
}
