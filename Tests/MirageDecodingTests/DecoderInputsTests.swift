import Foundation
import MirageDecoding
import MirageEngine
import Testing

// Decoders declare their inputs; parameters are declared once and every effective value is what the run
// store records.

@Test func everyRegisteredDecoderRecordsEveryEffectiveParameter() throws {
    for d in DecoderRegistry.standard.descriptors {
        #expect(Set(d.parameters.map(\.name)).count == d.parameters.count, "\(d.name): a parameter is listed twice")
        let resolved = try d.resolve()
        let decoder = try d.make(resolved)
        #expect(decoder.name == d.name)
        #expect(decoder.parameters == resolved, "\(d.name): the recorded parameters differ from the effective ones")
        for preset in d.presets {
            let p = try d.resolve(preset: preset.name)
            #expect(try d.make(p).parameters == p, "\(d.name) preset \(preset.name)")
        }
    }
}

/// Runs are keyed by `parameters.canonicalJSON`: moving VCD, the cut-off control and DoLa to declared
/// parameters must leave their keys as they were (these strings are what the earlier code produced).
@Test func contrastiveDecodersKeepTheirRunKeys() throws {
    let registry = DecoderRegistry.standard
    #expect(try registry.makeDecoder("vcd").parameters.canonicalJSON
        == #"{"alpha":1.0,"beta":0.1,"noise_step":500,"repetition_penalty":1.0,"sample":true,"temperature":1.0,"top_k":0,"top_p":1.0}"#)
    #expect(try registry.makeDecoder("apc").parameters.canonicalJSON
        == #"{"beta":0.1,"repetition_penalty":1.0,"sample":true,"temperature":1.0,"top_k":0,"top_p":1.0}"#)
    #expect(try registry.makeDecoder("dola").parameters.canonicalJSON
        == #"{"candidate_layers":[],"final_norm":false,"layers":"even","mature_layer":-1,"relative_top":0.1,"repetition_penalty":1.2}"#)
    #expect(try registry.makeDecoder("vcd", overrides: [("alpha", "2")]).parameters.canonicalJSON.hasPrefix(#"{"alpha":2.0,"#))
}

@Test func typedParametersReadBackAndValidate() throws {
    let p = try VCDDecoder.descriptor.resolve(values: ["noise_step": .int(999), "alpha": .double(0.5)])
    #expect(p[VCDDecoder.noiseStep] == 999 && p[VCDDecoder.alpha] == 0.5 && p[VCDDecoder.beta] == 0.1)
    #expect(throws: DecodingError.invalidParameter(decoder: "vcd", parameter: "noise_step", value: "1000",
                                                   expected: "an integer in 0...999")) {
        try VCDDecoder.descriptor.resolve(values: ["noise_step": .int(1000)])
    }
    #expect(throws: DecodingError.self) { try VCDDecoder.descriptor.resolve(values: ["noise_step": .double(3)]) }
    #expect(throws: DecodingError.self) { try VCDDecoder.descriptor.resolve(values: ["steps": .int(3)]) }
    // A missing value reads as the declared default.
    #expect(DecoderParameters([:])[DoLaDecoder.repetitionPenalty] == 1.2)
}

@Test func decodersDeclareBranchesHooksAndSequences() throws {
    let registry = DecoderRegistry.standard
    let vcd = try registry.makeDecoder("vcd", overrides: [("noise_step", "999")]).inputs
    #expect(vcd.branches == [BranchSpec(role: "contrast", image: .transformed(.vcdNoise(step: 999)))])
    #expect(vcd.sequencesPerStep == 2 && vcd.promptPrefills == 2)
    #expect(try registry.makeDecoder("greedy").inputs == DecoderInputs())
    #expect(try registry.makeDecoder("apc").inputs.branches.isEmpty)
    let beam = try registry.makeDecoder("beam", overrides: [("num_beams", "3")]).inputs
    #expect(beam.sequencesPerStep == 3 && beam.promptPrefills == 1 && beam.stepFactor == 1)
    let opera = try registry.makeDecoder("opera").inputs
    #expect(opera.sequencesPerStep == 5 && opera.stepFactor == 1.9)
    let dola = try registry.makeDecoder("dola", overrides: [("candidate_layers", "0,2")]).inputs
    #expect(dola.hooks == [.hiddenStates(layers: .layers([0, 2]))] && dola.sequencesPerStep == 1)
}

@Test func vcdNoiseTransformIsTheScheduleKeyedByItsStream() throws {
    let pixels = (0..<48).map { Float($0) / 48 - 0.5 }
    let key = RandomKey(seed: 7, item: "image-3")
    let t = ImageTransform.vcdNoise(step: 500)
    #expect(t.id == "vcd-noise:500")
    #expect(try t.apply(pixels, 3, 4, 4, key) == VCDNoiseSchedule.vcd.noised(pixels, step: 500, key: key))
    #expect(try t.apply(pixels, 3, 4, 4, key) != pixels)
}

@Test func branchesDerivedFromALaidOutPrompt() {
    let items: [PromptItem] = [.token(1), .token(2), .token(3), .token(4), .token(5), .token(6)]
    var prompt = PromptLayout(items: items, imageSpan: 2..<4, inputIDs: [1, 2, -200, 5, 6], prefixLength: 4)
    prompt.operaImageSpan = 2..<4
    let textOnly = BranchSpec(role: "unconditional", image: .none).derived(from: prompt)
    #expect(textOnly?.items == [.token(1), .token(2), .token(5), .token(6)])
    #expect(textOnly?.imageSpan == nil && textOnly?.inputIDs == nil && textOnly?.operaImageSpan == nil)
    #expect(textOnly?.prefixLength == 2)
    let again = BranchSpec(role: "same").derived(from: prompt)
    #expect(again?.items == items && again?.imageSpan == 2..<4 && again?.prefixLength == nil)
    // A changed instruction or image needs the prompt builder.
    #expect(BranchSpec(role: "c", instruction: .prefixed("x ")).derived(from: prompt) == nil)
    #expect(BranchSpec(role: "c", image: .transformed(.vcdNoise(step: 1))).derived(from: prompt) == nil)
    // No image: the text-only branch is the prompt.
    #expect(PromptLayout(tokens: [1, 2]).removingImage() == PromptLayout(tokens: [1, 2]))
    #expect(BranchInstruction.prefixed("You are a confused object detector. ").apply(to: "Is there a dog?")
        == "You are a confused object detector. Is there a dog?")
    #expect(BranchInstruction.suffixed("!").apply(to: "a") == "a!" && BranchInstruction.replaced("b").apply(to: "a") == "b")
}

// MARK: ICD and M3ID: their modes reduce to known decoders on the contrastive fixture model

private func decode(_ name: String, _ values: [String: ParameterValue], items: [PromptItem],
                    branches: [String: PromptLayout]) throws -> [Int] {
    let d = try DecoderRegistry.standard.descriptor(named: name)
    let context = DecodingContext(model: try ContrastiveFixtures.model(), prompt: PromptLayout(items: items), branches: branches,
                                  limits: GenerationLimits(maxNewTokens: 16, eosTokenIDs: []), randomKey: RandomKey(seed: 5, item: "x"))
    return try d.make(try d.resolve(values: values)).decode(context).tokens
}

@Test func icdModesAreTheContrastWithAndWithoutTheCutoff() throws {
    let e = ContrastiveFixtures.json["vcd_e2e"] as! [String: Any]
    let items = ContrastiveFixtures.items(e["items"]), contrast = ContrastiveFixtures.items(e["contrast_items"])
    let branches = ["contrast": PromptLayout(items: contrast)]
    // clean greedy: VCD's cut-off scores at α 0.5; reference greedy (SID's sample_greedy): no cut-off (β = 0).
    let clean = try decode("icd", ["mode": .string("clean"), "sample": .bool(false)], items: items, branches: branches)
    #expect(clean == (try decode("vcd", ["alpha": .double(0.5), "beta": .double(0.1), "sample": .bool(false)], items: items, branches: branches)))
    let reference = try decode("icd", [:], items: items, branches: branches)
    #expect(reference == (try decode("vcd", ["alpha": .double(0.5), "beta": .double(0), "sample": .bool(false)], items: items, branches: branches)))
    // The branch it declares: the instruction with SID's disturbance before it.
    let icd = try DecoderRegistry.standard.makeDecoder("icd", preset: "icd-sid-pope")
    #expect(icd.inputs.branches == [BranchSpec(role: "contrast", instruction: .prefixed("You are a confused object detector. "))])
}

@Test func m3idWeighsTheTextOnlyContrastMoreOverTime() throws {
    let z: [Float] = [3, 2.5, 0, -5], u: [Float] = [3.5, 1, 0, 0]
    // t = 0: γ = 1, the scores are z on the plausible tokens (β = 0.1: z ≥ 3 + log 0.1 ≈ 0.70).
    #expect(M3IDDecoder.scores(z[...], unconditional: u[...], step: 0, lambda: 0.02, beta: 0.1) == [3, 2.5, -.infinity, -.infinity])
    // t = 50: γ = e^−1, weight (1 − γ)/γ ≈ 1.718: token 1 (image-supported) overtakes token 0.
    let later = M3IDDecoder.scores(z[...], unconditional: u[...], step: 50, lambda: 0.02, beta: 0.1)
    let g = Foundation.exp(Float(-1.0))
    #expect(later[0] == 3 + ((3 - 3.5) * (1 - g)) / g && later[1] == 2.5 + ((2.5 - 1) * (1 - g)) / g)
    #expect(later[1] > later[0])
    // λ = 0 keeps γ = 1: M3ID's argmax is greedy's; the branch is the text-only prompt.
    let e = ContrastiveFixtures.json["vcd_e2e"] as! [String: Any]
    let items = ContrastiveFixtures.items(e["items"])
    let branches = ["unconditional": PromptLayout(items: Array(items[..<2]) + Array(items[8...]))]
    #expect(try decode("m3id", ["lambda": .double(0), "sample": .bool(false)], items: items, branches: branches)
        == (try decode("greedy", [:], items: items, branches: [:])))
    #expect(try DecoderRegistry.standard.makeDecoder("m3id").inputs.branches == [BranchSpec(role: "unconditional", image: .none)])
}

/// ONLY contrasts raw logits; M3ID read as pointwise mutual information, log p(y | image) − log p(y), is
/// the same rule on log-probabilities. On one row the two differ by a constant, −(1 + k)·lse(z) + k·lse(u) with k = (1 − γ)/γ, and the β cut-off keeps the same tokens
/// (p ≥ β·max p either way), so the distribution handed to sampling is the same; transformers' repetition
/// penalty (not shift-invariant) is where they part.
@Test func m3idOnLogitsAndOnLogProbabilitiesDiffersByAConstantPerStep() throws {
    let z: [Float] = [4, 3.2, 1.5, 0.9, -2, 6.1], u: [Float] = [5, 1, 1.4, 2.2, 0, 3]
    let lz = logSoftmax(z[...]), lu = logSoftmax(u[...])
    func lse(_ x: [Float]) -> Double { let m = Double(x.max()!); return m + log(x.reduce(0) { $0 + exp(Double($1) - m) }) }
    for t in [0, 7, 50] {
        let onLogits = M3IDDecoder.scores(z[...], unconditional: u[...], step: t, lambda: 0.02, beta: 0.1)
        let onLogProbs = M3IDDecoder.scores(lz[...], unconditional: lu[...], step: t, lambda: 0.02, beta: 0.1)
        #expect(onLogits.map(\.isFinite) == onLogProbs.map(\.isFinite), "t = \(t): the cut-off keeps other tokens")
        let g = exp(-0.02 * Double(t)), k = (1 - g) / g
        let shift = -(1 + k) * lse(z) + k * lse(u)
        for i in z.indices where onLogits[i].isFinite {
            #expect(abs(Double(onLogProbs[i] - onLogits[i]) - shift) < 1e-4 * max(1, abs(shift)), "t = \(t), token \(i)")
        }
        for (a, b) in zip(softmax(onLogits), softmax(onLogProbs)) { #expect(abs(a - b) < 1e-5, "t = \(t)") }
        // The repetition penalty divides positive and multiplies negative scores: token 0 is positive as a
        // logit score and negative as a log-probability score, so the two distributions differ.
        var (a, b) = (onLogits, onLogProbs)
        let context = LogitsContext(tokens: [0], generated: 1)
        RepetitionPenalty(2).process(&a, context: context)
        RepetitionPenalty(2).process(&b, context: context)
        #expect(onLogits[0] > 0 && onLogProbs[0] < 0, "t = \(t): the example no longer separates the two")
        #expect(abs((a[5] - a[0]) - (b[5] - b[0])) > 0.1, "t = \(t): the log-odds of tokens 5 and 0 stay equal")
    }
}

/// `mode=clean` (the paper's eq. 4 / Algorithm 1) by hand: log-probabilities, the contrast only while the
/// image-conditioned top probability is below α, γ = exp(−λ(t + t₀)), no cut-off; and where it parts from
/// ONLY's rule: a confident step keeps l_c, and a token under the β cut-off can win.
@Test func m3idCleanModeIsThePapersRuleByHand() throws {
    func lse(_ x: [Float]) -> Double { let m = Double(x.max()!); return m + log(x.reduce(0) { $0 + exp(Double($1) - m) }) }
    func argmax(_ x: [Float]) -> Int { x.indices.max { x[$0] < x[$1] }! }
    // Uncertain (max p ≈ 0.28 < 0.3): l_c + ((1 − γ)/γ)(l_c − l_u), γ = e^−1 at t = 50.
    let z: [Float] = [1, 0.9, 0.8, 0.7, -1.5], u: [Float] = [1, 0.9, 0.8, 0.7, -8]
    let uncertain = M3IDDecoder.cleanScores(z[...], unconditional: u[...], step: 50, lambda: 0.02, offset: 0, alpha: 0.3)
    #expect(uncertain.amplified)
    let w = (1 - exp(-1.0)) / exp(-1.0)
    for i in z.indices {
        let c = Double(z[i]) - lse(z), n = Double(u[i]) - lse(u)
        #expect(abs(Double(uncertain.scores[i]) - (c + w * (c - n))) < 1e-5, "token \(i)")
    }
    // t₀ shifts the schedule: step 40 with t₀ = 10 is step 50; t = 0 is l_c (γ = 1).
    #expect(M3IDDecoder.cleanScores(z[...], unconditional: u[...], step: 40, lambda: 0.02, offset: 10, alpha: 0.3).scores
        == uncertain.scores)
    #expect(M3IDDecoder.cleanScores(z[...], unconditional: u[...], step: 0, lambda: 0.02, offset: 0, alpha: 0.3).scores
        == logSoftmax(z[...]))
    // No cut-off: token 4 (z below log 0.1 + max z, so −∞ in ONLY's rule) is the paper's choice; ONLY's is token 0.
    let reference = M3IDDecoder.scores(z[...], unconditional: u[...], step: 50, lambda: 0.02, beta: 0.1)
    #expect(reference[4] == -.infinity && argmax(reference) == 0 && argmax(uncertain.scores) == 4)
    // Confident (max p ≈ 0.79 ≥ 0.3): the paper keeps l_c (argmax 0); ONLY's contrast picks token 1.
    let zc: [Float] = [3, 0.8, 0, 0, 0], uc: [Float] = [6, 0, 0, 0, 0]
    let confident = M3IDDecoder.cleanScores(zc[...], unconditional: uc[...], step: 50, lambda: 0.02, offset: 0, alpha: 0.3)
    #expect(!confident.amplified && confident.scores == logSoftmax(zc[...]))
    #expect(argmax(confident.scores) == 0
        && argmax(M3IDDecoder.scores(zc[...], unconditional: uc[...], step: 50, lambda: 0.02, beta: 0.1)) == 1)
    // α = 1 always contrasts (the confident row too); α = 0 never does, so the decoder is greedy.
    #expect(M3IDDecoder.cleanScores(zc[...], unconditional: uc[...], step: 50, lambda: 0.02, offset: 0, alpha: 1).amplified)
    let e = ContrastiveFixtures.json["vcd_e2e"] as! [String: Any]
    let items = ContrastiveFixtures.items(e["items"])
    let branches = ["unconditional": PromptLayout(items: Array(items[..<2]) + Array(items[8...]))]
    #expect(try decode("m3id", ["mode": .string("clean"), "alpha": .double(0), "sample": .bool(false)], items: items, branches: branches)
        == (try decode("greedy", [:], items: items, branches: [:])))
    let preset = try DecoderRegistry.standard.descriptor(named: "m3id").resolve(preset: "m3id-clean-pope")
    #expect(preset[M3IDDecoder.mode] == "clean" && preset[M3IDDecoder.offset] == 10 && !preset[M3IDDecoder.sample])
}

/// A branch's prefix shared with the prompt comes from the prompt prefix cache when there is one: the same
/// tokens as without it, and the second item reuses the prefix (the text-only branch's system-prompt rows).
@Test func contrastBranchesShareTheirPrefixThroughThePrefixCache() throws {
    let e = ContrastiveFixtures.json["vcd_e2e"] as! [String: Any]
    let items = ContrastiveFixtures.items(e["items"]), contrast = ContrastiveFixtures.items(e["contrast_items"])
    var prompt = PromptLayout(items: items, imageSpan: 2..<8)
    prompt.prefixLength = 8
    let model = try ContrastiveFixtures.model()
    for (name, values, branches) in [
        ("m3id", ["sample": ParameterValue.bool(false)], ["unconditional": prompt.removingImage()]),
        ("vcd", ["sample": .bool(false)], ["contrast": PromptLayout(items: contrast)]),
        ("icd", [:], ["contrast": PromptLayout(items: Array(items[..<8]) + [.token(9)] + Array(items[8...]))]),
    ] {
        let d = try DecoderRegistry.standard.descriptor(named: name)
        let decoder = try d.make(try d.resolve(values: values))
        var context = DecodingContext(model: model, prompt: prompt, branches: branches,
                                      limits: GenerationLimits(maxNewTokens: 12, eosTokenIDs: []))
        let plain = try decoder.decode(context)
        let cache = PromptPrefixCache(limitBytes: 1 << 22)
        context.prefixCache = cache
        let first = try decoder.decode(context), second = try decoder.decode(context)
        #expect(first.tokens == plain.tokens && second.tokens == plain.tokens, "\(name)")
        #expect(cache.reused == 1, "\(name): \(cache.summary)")
        #expect(second.forwardRows < plain.forwardRows, "\(name)")
    }
}
