import Foundation
import MirageEngine
import Testing
@testable import MirageDecoding

private typealias F = ContrastiveFixtures

// MARK: Formulas on hand-made logits (torch references)

@Test func vcdNoiseScheduleMatchesTorch() {
    let s = F.json["schedule"] as! [String: Any]
    let steps = F.ints(s["steps"])
    let a = F.floats(s["sqrt_alpha_bar"]), b = F.floats(s["sqrt_one_minus_alpha_bar"])
    let schedule = VCDNoiseSchedule.vcd
    #expect(schedule.sqrtAlphaBar.count == 1000)
    for (k, t) in steps.enumerated() {
        #expect(abs(schedule.sqrtAlphaBar[t] - a[k]) <= 2 * a[k].ulp, "√ᾱ at step \(t)")
        #expect(abs(schedule.sqrtOneMinusAlphaBar[t] - b[k]) <= 2 * b[k].ulp, "√(1−ᾱ) at step \(t)")
    }
}

@Test func vcdNoiseIsSeededGaussianAndScaled() throws {
    let schedule = VCDNoiseSchedule.vcd
    let n = 20_001
    let zeros = [Float](repeating: 0, count: n)
    let key = RandomKey(seed: 7, item: "COCO_val2014_000000000042")
    let a = try schedule.noised(zeros, step: 500, key: key)
    #expect(try schedule.noised(zeros, step: 500, key: key) == a)
    #expect(try schedule.noised(zeros, step: 500, key: RandomKey(seed: 7, item: "other")) != a)
    // ε ~ N(0, 1) scaled by √(1 − ᾱ_500): mean 0, standard deviation √(1 − ᾱ), a Gaussian fourth moment.
    let sigma = Double(schedule.sqrtOneMinusAlphaBar[500])
    let e = a.map { Double($0) / sigma }
    let mean = e.reduce(0, +) / Double(n)
    let variance = e.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
    let kurtosis = e.reduce(0) { $0 + pow($1 - mean, 4) } / Double(n) / (variance * variance)
    #expect(abs(mean) < 0.03)
    #expect(abs(variance - 1) < 0.04)
    #expect(abs(kurtosis - 3) < 0.2)
    // The signal is scaled by √ᾱ: at step 0 the image is almost unchanged.
    let pixels = (0..<n).map { Float($0 % 7) - 3 }
    let t0 = try schedule.noised(pixels, step: 0, key: key)
    #expect(zip(t0, pixels).allSatisfy { abs($0 - $1) < 0.05 })
    #expect(throws: ContrastiveError.noiseStep(1000)) { try schedule.noised(pixels, step: 1000, key: key) }
}

@Test func vcdScoresMatchTorch() {
    for c in F.cases("vcd") {
        let z = F.floats(c["logits"]), zc = F.floats(c["contrast"])
        let got = ContrastiveScores.vcd(z[...], contrast: zc[...], alpha: F.double(c["alpha"]), beta: F.double(c["beta"]))
        let want = F.floats(c["scores"])
        #expect(F.close(got.scores, want), "α=\(F.double(c["alpha"])) β=\(F.double(c["beta"]))")
        #expect(got.plausibleCount == want.filter(\.isFinite).count)
    }
}

@Test func plausibilityCutoffAloneMatchesTorch() {
    for c in F.cases("apc") {
        let z = F.floats(c["logits"])
        let got = ContrastiveScores.vcd(z[...], contrast: nil, alpha: 0, beta: F.double(c["beta"]))
        #expect(F.close(got.scores, F.floats(c["scores"])))
        #expect(!got.cutoffBound, "without a contrast the best token is always plausible")
    }
    // β = 0 keeps everything.
    let z: [Float] = [1, -30, 4, 0]
    #expect(ContrastiveScores.vcd(z[...], contrast: nil, alpha: 0, beta: 0).scores == z)
}

@Test func vcdCutoffBindsWhenTheContrastPrefersAnImplausibleToken() {
    // Token 1 is implausible (p1/p0 = e^-5 < 0.1) but the noised branch dislikes it far less than token 0.
    let z: [Float] = [5, 0, 4]
    let zc: [Float] = [9, -20, 8]
    let c = ContrastiveScores.vcd(z[...], contrast: zc[...], alpha: 1, beta: 0.1)
    #expect(c.scores[1] == -.infinity)
    #expect(c.plausibleCount == 2)
    #expect(c.cutoffBound)
    #expect(argmax(c.scores) == 0)   // 2·5−9 = 1 vs 2·4−8 = 0
}

@Test func dolaDivergenceFilterAndPenaltyMatchTorch() {
    for c in F.cases("dola") {
        let mature = F.floats(c["mature"])
        let premature = (c["premature"] as! [Any]).map { F.floats($0) }
        let js = ContrastiveScores.dolaDivergences(mature: mature[...], premature: premature.map { $0[...] })
        let want = F.doubles(c["js"])
        for (x, y) in zip(js, want) { #expect(abs(x - y) <= 1e-4 * y) }
        let chosen = js.indices.max { js[$0] < js[$1] }!
        #expect(chosen == (c["chosen"] as! Int))
        var scores = ContrastiveScores.dola(mature: mature[...], premature: premature[chosen][...],
                                            relativeTop: F.double(c["relative_top"])).scores
        #expect(F.close(scores, F.floats(c["scores"])))
        RepetitionPenalty(Float(F.double(c["penalty"]))).process(&scores, context: LogitsContext(tokens: F.ints(c["ids"]), generated: 0))
        #expect(F.close(scores, F.floats(c["penalised"])))
    }
    // relative_top = 0: the raw logit difference, no filter.
    let d = ContrastiveScores.dola(mature: [3, 1][...], premature: [1, 2][...], relativeTop: 0)
    #expect(d.scores == [2, -1] && d.kept == 2)
}

// MARK: End to end on a tiny model

private func makeVCD(_ values: [String: ParameterValue] = [:]) throws -> VCDDecoder {
    VCDDecoder(try VCDDecoder.descriptor.resolve(values: values))
}
private func makeAPC(_ values: [String: ParameterValue]) throws -> PlausibilityCutoffDecoder {
    PlausibilityCutoffDecoder(try PlausibilityCutoffDecoder.descriptor.resolve(values: values))
}
private func makeDoLa(_ values: [String: ParameterValue] = [:]) throws -> DoLaDecoder {
    DoLaDecoder(try DoLaDecoder.descriptor.resolve(values: values))
}

private func context(_ model: LanguageModel, _ items: [PromptItem], branches: [String: PromptLayout] = [:],
                     maxNewTokens: Int = 12, seed: UInt64 = 3) -> DecodingContext {
    DecodingContext(model: model, prompt: PromptLayout(items: items), branches: branches,
                    limits: GenerationLimits(maxNewTokens: maxNewTokens, eosTokenIDs: []),
                    randomKey: RandomKey(seed: seed, item: "item"))
}

@Test func vcdEndToEndMatchesTorch() throws {
    let model = try F.model()
    let e = F.json["vcd_e2e"] as! [String: Any]
    let items = F.items(e["items"]), contrast = F.items(e["contrast_items"])
    let decoder = try makeVCD(["alpha": .double(F.double(e["alpha"])), "beta": .double(F.double(e["beta"])), "sample": .bool(false)])
    let result = try decoder.decode(context(model, items, branches: ["contrast": PromptLayout(items: contrast, imageSpan: 2..<8)]))
    #expect(result.tokens == F.ints(e["tokens"]))
    // The two prompts share their first two rows: computed once, then forked.
    #expect(result.forwardRows - result.decodeRows == 2 + 2 * (items.count - 2))
    // Each decode step is one pass for both branches.
    #expect(result.decodeRows == 2 * 11)
    #expect(result.forwardPasses == 3 + 11)
    #expect(result.trace.counters["steps"] == 12)
    #expect(result.trace.events.count == Int(result.trace.counters["cutoff-bound-steps"] ?? 0))
}

@Test func dolaEndToEndMatchesTorch() throws {
    let model = try F.model()
    for c in F.cases("dola_e2e") {
        let decoder = try makeDoLa(["candidate_layers": .ints(F.ints(c["candidates"])), "relative_top": .double(F.double(c["relative_top"])),
                                  "repetition_penalty": .double(F.double(c["penalty"])), "final_norm": .bool(c["final_norm"] as! Bool)])
        let result = try decoder.decode(context(model, F.ints(c["prompt"]).map { .token($0) }))
        #expect(result.tokens == F.ints(c["tokens"]), "candidates \(F.ints(c["candidates"]))")
        #expect(result.trace.events.map { $0.position! } == F.ints(c["chosen"]))
    }
}

@Test func contrastiveControlsReduceToKnownDecoders() throws {
    let model = try F.model()
    let e = F.json["vcd_e2e"] as! [String: Any]
    let items = F.items(e["items"]), contrast = F.items(e["contrast_items"])
    let branches = ["contrast": PromptLayout(items: contrast)]
    // β = 0: the cut-off control is plain sampling at its temperature (same stream, same draws).
    let sampled = try SamplingDecoder(temperature: 0.7).decode(context(model, items, maxNewTokens: 20))
    let apc0 = try makeAPC(["beta": .double(0), "temperature": .double(0.7)]).decode(context(model, items, maxNewTokens: 20))
    #expect(apc0.tokens == sampled.tokens)
    #expect(apc0.forwardPasses == sampled.forwardPasses)
    // α = 0: VCD is the cut-off control; its branch costs rows, not passes per step.
    let apc = try makeAPC(["beta": .double(0.1)]).decode(context(model, items, maxNewTokens: 20))
    let vcd0 = try makeVCD(["alpha": .double(0), "beta": .double(0.1)]).decode(context(model, items, branches: branches, maxNewTokens: 20))
    #expect(vcd0.tokens == apc.tokens)
    // A different item key gives a different sample; the same key the same one.
    let again = try makeVCD().decode(context(model, items, branches: branches, maxNewTokens: 20))
    let same = try makeVCD().decode(context(model, items, branches: branches, maxNewTokens: 20))
    let other = try makeVCD().decode(context(model, items, branches: branches, maxNewTokens: 20, seed: 99))
    #expect(again.tokens == same.tokens)
    #expect(again.tokens != other.tokens)
}

// MARK: Parameters and errors

@Test func contrastiveDescriptorsResolvePresetsAndRejectBadInput() throws {
    let vcd = try VCDDecoder.descriptor.resolve(preset: "vcd-pope-script")
    #expect(vcd.double("beta") == 0.2 && vcd.double("alpha") == 1 && vcd.int("noise_step") == 500)
    let built = try VCDDecoder.descriptor.makeDecoder(preset: "vcd-paper", overrides: [("alpha", "0.5")])
    #expect(built.parameters.double("alpha") == 0.5)
    #expect(built.parameters.canonicalJSON.contains("\"noise_step\":500"))
    let dola = try DoLaDecoder.descriptor.makeDecoder(preset: "dola-low") as! DoLaDecoder
    #expect(try dola.layers(modelLayers: 32).candidates == [0, 2, 4, 6, 8, 10, 12, 14])
    #expect(try makeDoLa(["layers": .string("high")]).layers(modelLayers: 32).candidates == Array(stride(from: 16, to: 32, by: 2)))
    #expect(try makeDoLa().layers(modelLayers: 4) == ([0, 2], 4))
    #expect(throws: ContrastiveError.layer(9, layers: 4, role: "candidate")) { try makeDoLa(["candidate_layers": .ints([0, 9])]).layers(modelLayers: 4) }
    #expect(throws: ContrastiveError.candidateIsMature(4)) { try makeDoLa(["candidate_layers": .ints([4])]).layers(modelLayers: 4) }
    let apc = try PlausibilityCutoffDecoder.descriptor.resolve(preset: "fixed-temperature")
    #expect(apc.double("beta") == 0 && apc.double("temperature") == 0.2)

    let model = try F.model()
    #expect(throws: DecodingError.missingBranch(role: "contrast", available: [])) {
        try makeVCD().decode(context(model, [.token(1), .token(2)]))
    }
    #expect(throws: DecodingError.unknownParameter(decoder: "vcd", parameter: "cd_alpha",
                                                   available: VCDDecoder.descriptor.parameters.map(\.name))) {
        try VCDDecoder.descriptor.resolve(overrides: [("cd_alpha", "1")])
    }
}
