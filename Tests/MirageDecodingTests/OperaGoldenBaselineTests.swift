import Foundation
import MirageDecoding
import MirageEngine
import MirageTestSupport
import Testing

/// The plain beam-search and greedy baselines of ../shared/data/opera-golden, made by transformers 4.29.2
/// (OPERA's vendored tree) from `inputs_embeds` with the dummy `input_ids = [[bos]]`.
@Suite struct OperaGoldenBaselineTests {
    static let available = SharedData.has("opera-golden/cases", "opera-golden/models")

    struct GoldenCase {
        var name: String
        var modelDir: String
        var beams: Int
        var maxNewTokens: Int
        var embeddings: [[Float]]
        var imageSpan: ClosedRange<Int>
        var generated: [Int]
    }

    static func baselines() throws -> [GoldenCase] {
        let folder = SharedData.url("opera-golden/cases")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.contains("_beam_") || $0.contains("_greedy_") }.sorted()
        return try names.map { name in
            let data = try Data(contentsOf: folder.appendingPathComponent(name))
            let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
            let kwargs = json["generate_kwargs"] as! [String: Any]
            let input = json["input"] as! [String: Any]
            let output = json["output"] as! [String: Any]
            let rows = (input["inputs_embeds"] as! [[NSNumber]]).map { $0.map(\.floatValue) }
            let span = (input["image_positions_inclusive"] as! [Int])
            return GoldenCase(name: name, modelDir: json["model_dir"] as! String, beams: kwargs["num_beams"] as! Int,
                              maxNewTokens: kwargs["max_new_tokens"] as! Int, embeddings: rows,
                              imageSpan: span[0]...span[1], generated: output["generated_token_ids"] as! [Int])
        }
    }

    @Test(.enabled(if: available, SharedData.missingMessage))
    func beamAndGreedyMatchTransformers429() throws {
        let cases = try Self.baselines()
        #expect(cases.filter { $0.beams > 1 }.count == 16)  // 17 generated, one of them held out
        #expect(cases.filter { $0.beams == 1 }.count == 11)
        var models: [String: LanguageModel] = [:]
        for c in cases {
            let model = try models[c.modelDir]
                ?? LanguageModel(folder: SharedData.url("opera-golden/" + c.modelDir), options: LoadOptions(threads: 1))
            models[c.modelDir] = model
            let prompt = PromptLayout(items: c.embeddings.map { .embedding($0) },
                                      imageSpan: c.imageSpan.lowerBound..<(c.imageSpan.upperBound + 1), inputIDs: [1])
            let context = DecodingContext(model: model, prompt: prompt,
                                          limits: GenerationLimits(maxNewTokens: c.maxNewTokens, eosTokenIDs: [2]))
            let decoder: any Decoder = c.beams == 1
                ? GreedyDecoder() : BeamSearchDecoder(numBeams: c.beams, semantics: .transformers4)
            let result = try decoder.decode(context)
            #expect(result.tokens == c.generated, "\(c.name)")
        }
    }
}
