import Foundation
import MirageDecoding
import MirageEngine
import Testing

/// transformers 5.24 generate() outputs on the engine's tiny fixture models
/// (Scripts/fixtures/make_decoding_fixtures.py → Fixtures/generate_cases.json).
enum GenerateCases {
    static let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let models = here.deletingLastPathComponent().appendingPathComponent("MirageEngineTests/Fixtures/models")

    struct Case: Decodable, CustomStringConvertible {
        var model: String
        var prompt: [Int]
        var num_beams: Int
        var max_new_tokens: Int
        var min_new_tokens: Int
        var eos: [Int]
        var length_penalty: Double
        var early_stopping: EarlyStoppingValue
        var repetition_penalty: Double
        var tokens: [Int]

        var description: String {
            "\(model) B=\(num_beams) max=\(max_new_tokens) min=\(min_new_tokens) eos=\(eos) lp=\(length_penalty) "
                + "es=\(early_stopping.value) rp=\(repetition_penalty)"
        }
    }

    struct EarlyStoppingValue: Decodable {
        var value: EarlyStopping
        init(from decoder: Swift.Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { value = b ? .always : .heuristic } else { value = .never }
        }
    }

    struct File: Decodable { var cases: [Case] }

    static func load() throws -> [Case] {
        try JSONDecoder().decode(File.self, from: Data(contentsOf: here.appendingPathComponent("Fixtures/generate_cases.json"))).cases
    }

    static func model(_ name: String) throws -> LanguageModel {
        try LanguageModel(folder: models.appendingPathComponent(name), options: LoadOptions(threads: 1))
    }
}

@Suite struct TransformersParityTests {
    @Test func greedyAndBeamMatchTransformers5() throws {
        let cases = try GenerateCases.load()
        #expect(cases.count >= 80)
        var models: [String: LanguageModel] = [:]
        var beamSizes = Set<Int>()
        for c in cases {
            let model = try models[c.model] ?? GenerateCases.model(c.model)
            models[c.model] = model
            let limits = GenerationLimits(maxNewTokens: c.max_new_tokens, minNewTokens: c.min_new_tokens, eosTokenIDs: Set(c.eos))
            let context = DecodingContext(model: model, prompt: PromptLayout(tokens: c.prompt), limits: limits)
            let decoder: any Decoder = c.num_beams == 1
                ? GreedyDecoder(repetitionPenalty: c.repetition_penalty)
                : BeamSearchDecoder(numBeams: c.num_beams, lengthPenalty: c.length_penalty, earlyStopping: c.early_stopping.value,
                                    semantics: .transformers5, repetitionPenalty: c.repetition_penalty)
            let result = try decoder.decode(context)
            #expect(result.tokens == c.tokens, "\(c)")
            if c.num_beams > 1 { beamSizes.insert(c.num_beams) }
        }
        #expect(beamSizes == [2, 3, 5])
    }
}
