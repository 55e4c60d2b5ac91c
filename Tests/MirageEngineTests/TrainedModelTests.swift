import Foundation
import Testing
import MirageKernels
@testable import MirageEngine
@testable import MirageTokenizers

/// Issue 4's logit bounds on a *trained* model: Fixtures/models/llama-trained-f16, a 2-layer GQA Llama trained
/// on image captions with its own byte-level BPE tokenizer, stored in float16
/// (Scripts/fixtures/make_trained_tiny_model.py). The reference is transformers 5.24 computing the stored
/// model in float32. Unlike the random models of `ModelParityTests`, its next-token distributions are peaked,
/// which is the regime the "q8 within 2e-2 of max |logit|" bound is about.
@Suite struct TrainedModelTests {
    static let name = EngineFixtures.trainedModelName

    func load(quantize: WeightFormat? = nil) throws -> LanguageModel {
        try LanguageModel(folder: EngineFixtures.folder(Self.name), options: LoadOptions(quantize: quantize, threads: 2))
    }

    /// Logits of every reference row of every prompt, as (prompt index, row, logits).
    func promptLogits(_ model: LanguageModel, _ reference: EngineFixtures.Reference) throws -> [(Int, Int, [Float])] {
        var out: [(Int, Int, [Float])] = []
        for (p, prompt) in reference.prompts.enumerated() {
            let output = try model.makeSession().append(prompt.ids.map { .token($0) }, options: ForwardOptions(logits: .all))
            out += prompt.rows.map { (p, $0, Array(output.logits($0))) }
        }
        return out
    }

    /// The fixture really is trained: the reference's most likely next token has a median probability
    /// above 0.4 over the prompt rows (a random model of this vocabulary gives ~1/768 to a few %).
    @Test func fixtureHasPeakedDistributions() throws {
        let reference = try EngineFixtures.reference(Self.name)
        var peaks: [Float] = []
        for prompt in reference.prompts {
            for row in prompt.logits {
                let top = row.max()!
                peaks.append(1 / row.reduce(0) { $0 + exp($1 - top) })
            }
        }
        peaks.sort()
        let median = peaks[peaks.count / 2]
        print("trained model: median top-1 probability \(median) over \(peaks.count) rows")
        #expect(median > 0.4)
    }

    @Test func tokenizerMatchesAutoTokenizer() throws {
        let tokenizer = try Tokenizer(folder: EngineFixtures.folder(Self.name))
        for prompt in try EngineFixtures.reference(Self.name).prompts {
            let text = try #require(prompt.text)
            #expect(tokenizer.encode(text) == prompt.ids, "\(text)")
            #expect(tokenizer.decode(prompt.ids, skipSpecialTokens: true) == text)
        }
    }

    @Test func f16LogitsMatchTransformersF32() throws {
        let model = try load()
        #expect(model.weightFormat == .f16)
        let reference = try EngineFixtures.reference(Self.name)
        var worst: Float = 0
        for (p, row, logits) in try promptLogits(model, reference) {
            let k = reference.prompts[p].rows.firstIndex(of: row)!
            let error = EngineFixtures.relativeError(logits, reference.prompts[p].logits[k])
            worst = max(worst, error)
            #expect(error <= 1e-4, "prompt \(p) row \(row): relative error \(error)")
        }
        print("f16 \(Self.name): max relative logit error vs f32 \(worst)")
    }

    @Test func f16GreedyContinuationIsIdentical() throws {
        let reference = try EngineFixtures.reference(Self.name)
        let tokens = try greedyDecode(model: try load(), prompt: reference.greedyPrompt.map { .token($0) }, maxNewTokens: 32)
        #expect(tokens == reference.greedyTokens)
    }

    /// Issue 4: q8 logits within 2e-2 × max |logit| of the f32 reference on every prompt row.
    @Test func q8LogitsAreWithinTwoPercentOfF32() throws {
        let model = try load(quantize: .q8)
        #expect(model.weightFormat == .q8)
        let reference = try EngineFixtures.reference(Self.name)
        var worst = [Float](repeating: 0, count: reference.prompts.count)
        for (p, row, logits) in try promptLogits(model, reference) {
            let k = reference.prompts[p].rows.firstIndex(of: row)!
            let error = EngineFixtures.relativeError(logits, reference.prompts[p].logits[k])
            worst[p] = max(worst[p], error)
            #expect(error <= 2e-2, "prompt \(p) row \(row): q8 relative error \(error)")
        }
        // Measured, not bounded: how long q8's greedy continuation follows the f32 one.
        let tokens = try greedyDecode(model: model, prompt: reference.greedyPrompt.map { .token($0) }, maxNewTokens: 32)
        let agreeing = zip(tokens, reference.greedyTokens).prefix { $0 == $1 }.count
        print("q8 \(Self.name): max relative logit error vs f32 per prompt \(worst); "
              + "greedy follows f32 for \(agreeing) of 32 tokens")
    }

    @Test func q8MatchesTorchSimulation() throws {
        let model = try load(quantize: .q8)
        let reference = try EngineFixtures.reference(Self.name)
        let prompt = reference.prompts[reference.q8Prompt]
        let output = try model.makeSession().append(prompt.ids.map { .token($0) }, options: ForwardOptions(logits: .all))
        var worst: Float = 0
        for (k, row) in reference.q8Rows.enumerated() {
            let error = EngineFixtures.relativeError(output.logits(row), reference.q8Logits[k])
            worst = max(worst, error)
            #expect(error <= 1e-4, "row \(row): relative error vs the torch q8 simulation \(error)")
        }
        print("q8 \(Self.name): max relative logit error vs the torch q8 simulation \(worst)")
    }
}
