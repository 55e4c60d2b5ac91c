import Foundation
import MirageDecoding
import MirageEngine
import MirageTokenizers
import Testing

@Suite struct RegistryTests {
    @Test func presetsAndOverridesResolveOverDefaults() throws {
        let beam = try DecoderRegistry.standard.descriptor(named: "beam")
        let defaults = try beam.resolve()
        #expect(defaults.int("num_beams") == 5)
        #expect(defaults.string("semantics") == "transformers-4")
        let halc = try beam.resolve(preset: "halc-baseline", overrides: [("length_penalty", "0.5")])
        #expect(halc.int("num_beams") == 3)
        #expect(halc.double("length_penalty") == 0.5)
        let decoder = try beam.make(halc)
        #expect(decoder.parameters == halc)
        #expect(decoder.name == "beam")
        #expect(halc.canonicalJSON == #"{"early_stopping":"false","length_penalty":0.5,"num_beams":3,"repetition_penalty":1.0,"semantics":"transformers-4"}"#)
    }

    @Test func everyDecoderRoundTripsItsParameters() throws {
        for d in DecoderRegistry.standard.descriptors {
            for preset in [nil] + d.presets.map(\.name) {
                let p = try d.resolve(preset: preset)
                #expect(Set(p.values.keys) == Set(d.parameters.map(\.name)), "\(d.name) \(preset ?? "")")
                #expect(try d.make(p).parameters == p, "\(d.name) \(preset ?? "")")
            }
        }
    }

    @Test func errorsSayWhatToDo() throws {
        let r = DecoderRegistry.standard
        #expect(throws: DecodingError.unknownDecoder("nope", available: r.names)) { try r.makeDecoder("nope") }
        let sample = try r.descriptor(named: "sample")
        #expect(throws: DecodingError.invalidParameter(decoder: "sample", parameter: "top_p", value: "1.5",
                                                       expected: "a number in 0.0...1.0")) {
            try sample.resolve(overrides: [("top_p", "1.5")])
        }
        do {
            _ = try sample.resolve(overrides: [("topp", "0.5")])
            Issue.record("expected an error")
        } catch let e as DecodingError {
            #expect(e.description.contains("top_p"))
        }
        #expect(throws: DecodingError.self) { try sample.resolve(preset: "opera-paper") }
    }

    /// SID has no beam search in its published code: num_beams > 1 is refused at construction with the reason
    /// and the fix; num_beams 1 builds the decoder.
    @Test func sidRefusesBeamSearchAndSaysWhy() throws {
        let sid = try DecoderRegistry.standard.descriptor(named: "sid")
        #expect(try sid.make(sid.resolve()).parameters.int("num_beams") == 1)
        do {
            _ = try sid.make(sid.resolve(overrides: [("num_beams", "5")]))
            Issue.record("sid accepted num_beams 5")
        } catch let e as PostOperaError {
            #expect(e.description.contains("num_beams 5"), "\(e)")
            #expect(e.description.contains("evolve_vcd_sampling"), "\(e)")
            #expect(e.description.contains("set --param num_beams=1"), "\(e)")
        }
    }
}

@Suite struct StoppingTests {
    @Test func stopStringsEOSAndCounts() throws {
        let folder = GenerateCases.models.appendingPathComponent("qwen2-tied-f32")
        let model = try LanguageModel(folder: folder, options: LoadOptions(threads: 1))
        let tokenizer = try Tokenizer(folder: folder)
        let prompt = PromptLayout(tokens: tokenizer.encode("hello world, the cat sat on the mat"))
        let free = try GreedyDecoder().decode(DecodingContext(model: model, prompt: prompt,
                                                              limits: GenerationLimits(maxNewTokens: 12), tokenizer: tokenizer))
        #expect(free.tokens.count == 12 && free.stopReason == .maxNewTokens)
        #expect(free.text == tokenizer.decode(free.tokens, skipSpecialTokens: true))
        #expect(free.forwardPasses == 12)  // prefill + 11 steps
        #expect(free.forwardRows == prompt.items.count + 11)
        #expect(free.decodeRows == 11)
        // Stop at a string made of the 5th token's text: the result ends with the token completing it.
        let stop = tokenizer.decode(Array(free.tokens[4...5]))
        let stopped = try GreedyDecoder().decode(DecodingContext(
            model: model, prompt: prompt, limits: GenerationLimits(maxNewTokens: 12, stopStrings: [stop]), tokenizer: tokenizer))
        #expect(stopped.stopReason == .stopString)
        #expect(tokenizer.decode(stopped.tokens).contains(stop))
        #expect(!tokenizer.decode(Array(stopped.tokens.dropLast())).contains(stop))
        #expect(stopped.tokens == Array(free.tokens.prefix(stopped.tokens.count)))
        // EOS: the EOS token ends generation and is kept.
        let eos = free.tokens[3]
        let ended = try GreedyDecoder().decode(DecodingContext(
            model: model, prompt: prompt, limits: GenerationLimits(maxNewTokens: 12, eosTokenIDs: [eos])))
        #expect(ended.stopReason == .eos)
        #expect(ended.tokens == Array(free.tokens.prefix(4)))
        // Stop strings without a tokenizer are an error that says so.
        #expect(throws: DecodingError.needsTokenizer("stopping on stop strings")) {
            try GreedyDecoder().decode(DecodingContext(model: model, prompt: prompt,
                                                       limits: GenerationLimits(maxNewTokens: 4, stopStrings: ["x"])))
        }
    }
}
