import Foundation
import MirageDecoding
import MirageEngine
import Testing

// DeCo against its published code (zjunlp/Deco deco_greedy_search on its vendored transformers 4.31 and
// LLaVA class): Fixtures/deco from Scripts/fixtures/make_deco_fixtures.py. Tokens identical, per-step scores
// within 1e-4 × max|score|, the same −∞ mask (candidate set), the same anchor layer.

private enum DeCoFixture {
    static let root = ContrastiveFixtures.root.appendingPathComponent("deco")
    static let json: [String: Any] = {
        let data = try! Data(contentsOf: root.appendingPathComponent("deco.json"))
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }()
    static let logits: [Float] = {
        let data = try! Data(contentsOf: root.appendingPathComponent("deco-logits.f32"))
        return data.withUnsafeBytes { raw in (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) } }
    }()
    static func model() throws -> LanguageModel {
        try LanguageModel(folder: root.appendingPathComponent("model"), options: LoadOptions(threads: 1))
    }
}

private typealias F = ContrastiveFixtures

@Test func decoMatchesThePublishedCode() throws {
    let model = try DeCoFixture.model()
    let json = DeCoFixture.json
    let vocab = (json["vocab"] as! NSNumber).intValue, steps = (json["new_tokens"] as! NSNumber).intValue
    let image = (json["image_rows"] as! [[NSNumber]]).map { PromptItem.embedding($0.map { Float($0.doubleValue) }) }
    let cases = json["cases"] as! [[String: Any]]
    #expect(cases.count >= 5 && steps >= 32)
    #expect(DeCoFixture.logits.count == cases.count * steps * vocab)
    var boundCutoff = 0
    for (n, c) in cases.enumerated() {
        let s = c["settings"] as! [String: Any]
        let layers = F.ints(s["early_exit_layers"])
        let (alpha, topP, topK) = (F.double(s["alpha"]), F.double(s["threshold_top_p"]), (s["threshold_top_k"] as! NSNumber).intValue)
        // Whole decodes where the anchors are a range (start_layer..<end_layer); the variants' scattered anchors
        // are checked step by step below.
        var values: [String: ParameterValue] = ["alpha": .double(alpha), "threshold_top_p": .double(topP),
                                                "threshold_top_k": .int(topK)]
        let items = F.ints(c["system"]).map { PromptItem.token($0) } + image + F.ints(c["question"]).map { PromptItem.token($0) }
        let expected = F.ints(c["tokens"])
        let reference = (0..<steps).map { t in Array(DeCoFixture.logits[((n * steps + t) * vocab)..<((n * steps + t + 1) * vocab)]) }
        if layers == Array(layers[0]...layers.last!) {
            values["start_layer"] = .int(layers[0])
            values["end_layer"] = .int(layers.last! + 1)
            let decoder = DeCoDecoder(try DeCoDecoder.descriptor.resolve(values: values))
            let result = try decoder.decode(DecodingContext(model: model, prompt: PromptLayout(items: items),
                                                            limits: GenerationLimits(maxNewTokens: steps, eosTokenIDs: [])))
            #expect(result.tokens == expected, "case \(n)")
            #expect(result.trace.events.map { $0.position! } == F.ints(c["premature_layers"]), "case \(n)")
            #expect(result.forwardPasses == steps, "one pass per token")
        }
        // Per-step scores (every case, the variants' scattered anchors included): feed the reference tokens,
        // score each step with DeCoDecoder.scores on the engine's logits and early exits.
        try teacherForced(model, items, tokens: expected, layers: layers) { t, final, anchors in
            let step = DeCoDecoder.scores(final: final, anchors: anchors, alpha: alpha, topP: topP, topK: topK)
            #expect(F.close(step.scores, reference[t], tolerance: 1e-4), "case \(n) step \(t)")
            #expect(layers[step.anchor] == F.ints(c["premature_layers"])[t], "case \(n) step \(t)")
            #expect(step.candidates == F.ints(c["candidates"])[t])
            if step.candidates < topK { boundCutoff += 1 }
        }
    }
    // The top-p cut-off of the candidates is exercised, not only the top-k.
    #expect(boundCutoff > 0)
}

/// Feeds `tokens` after the prompt and calls `body(step, final logits, anchor early exits)` before each.
private func teacherForced(_ model: LanguageModel, _ items: [PromptItem], tokens: [Int], layers: [Int],
                           _ body: (Int, ArraySlice<Float>, [ArraySlice<Float>]) throws -> Void) throws {
    let session = MeteredSession(model.makeSession(blockSize: 16))
    let options = ForwardOptions(hiddenStateLayers: layers)
    let (H, V) = (model.config.hiddenSize, model.config.vocabSize)
    var out = try session.prefill(items, options: options)
    for (t, token) in tokens.enumerated() {
        let last = out.rows.count - 1
        var hidden: [Float] = []
        for l in layers { hidden += out.hiddenStates[l]![(last * H)..<((last + 1) * H)] }
        let exits = model.earlyExitLogits(hidden, rows: layers.count, applyFinalNorm: true)
        try body(t, out.logits(0), layers.indices.map { exits[($0 * V)..<(($0 + 1) * V)] })
        out = try session.step([token], options: options)
    }
}

/// The sampling variant (DeCo's `deco_sample_search`: processors, then the temperature warper, softmax, one
/// draw): each token is the item stream's draw from softmax(DeCo scores / T).
@Test func decoSamplesFromItsScoresWithTheItemStream() throws {
    let model = try DeCoFixture.model()
    let json = DeCoFixture.json
    let image = (json["image_rows"] as! [[NSNumber]]).map { PromptItem.embedding($0.map { Float($0.doubleValue) }) }
    let c = (json["cases"] as! [[String: Any]])[0]
    let items = F.ints(c["system"]).map { PromptItem.token($0) } + image + F.ints(c["question"]).map { PromptItem.token($0) }
    let key = RandomKey(seed: 11, item: "deco")
    let decoder = try DeCoDecoder.descriptor.makeDecoder(preset: "deco-sampling", overrides: [("temperature", "0.7")])
    let result = try decoder.decode(DecodingContext(model: model, prompt: PromptLayout(items: items),
                                                    limits: GenerationLimits(maxNewTokens: 32, eosTokenIDs: []), randomKey: key))
    #expect(result.tokens.count == 32)
    let greedy = F.ints(c["tokens"])
    #expect(result.tokens != Array(greedy.prefix(32)), "T = 0.7 sampling should leave the greedy path somewhere")
    try teacherForced(model, items, tokens: result.tokens, layers: Array(20..<29)) { t, final, anchors in
        let s = DeCoDecoder.scores(final: final, anchors: anchors, alpha: 0.6, topP: 0.9, topK: 20).scores.map { $0 / 0.7 }
        #expect(sampleIndex(weights: softmax(s), u: key.uniform(step: t)) == result.tokens[t], "step \(t)")
    }
}

@Test func decoDeclaresItsAnchorsAndRejectsLayersTheModelLacks() throws {
    let d = try DeCoDecoder.descriptor.makeDecoder(preset: "deco-paper") as! DeCoDecoder
    #expect(d.inputs.hooks == [.hiddenStates(layers: .layers(Array(20..<29)))])
    #expect(d.inputs.sequencesPerStep == 1 && d.inputs.branches.isEmpty)
    #expect(try d.anchorLayers(modelLayers: 32) == Array(20..<29))
    #expect(throws: DeCoError.layers(start: 20, end: 29, modelLayers: 24)) { try d.anchorLayers(modelLayers: 24) }
    #expect(DeCoError.layers(start: 20, end: 29, modelLayers: 24).description.contains("set start_layer < end_layer ≤ 24"))
    // The formula on a hand-made step: candidates {0, 1} (p ≥ 0.5 reached after two), anchor 1 wins.
    let z: [Float] = [2, 1.5, -1, -3]
    let anchors: [ArraySlice<Float>] = [[0, 0, 0, 0], [3, 0, 0, 0]]
    let s = DeCoDecoder.scores(final: z[...], anchors: anchors, alpha: 0.5, topP: 0.8, topK: 3)
    let q = softmax([3, 0, 0, 0])[0]
    #expect(s.anchor == 1 && s.candidates == 2)
    #expect(s.scores[0] == 2 + Float(0.5 * Double(q)) * 3 && s.scores[1] == 1.5 && s.scores[2] == -.infinity && s.scores[3] == -.infinity)
}

// DeCo with beam search against deco_beam_search (Fixtures/deco/deco-beam.json from
// Scripts/fixtures/make_deco_beam_fixtures.py, the same model and prompts): the best hypothesis' tokens and its
// length-normalised score (transformers 4.31's `sequences_scores`; the row length counts generate's dummy
// `[bos]` input id of an inputs_embeds prompt).
@Test func decoBeamSearchMatchesThePublishedCode() throws {
    let model = try DeCoFixture.model()
    let data = try Data(contentsOf: DeCoFixture.root.appendingPathComponent("deco-beam.json"))
    let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
    let beams = (json["num_beams"] as! NSNumber).intValue, steps = (json["new_tokens"] as! NSNumber).intValue
    let image = (DeCoFixture.json["image_rows"] as! [[NSNumber]]).map { PromptItem.embedding($0.map { Float($0.doubleValue) }) }
    let cases = json["cases"] as! [[String: Any]]
    #expect(cases.count >= 4 && beams > 1)
    for (n, c) in cases.enumerated() {
        let s = c["settings"] as! [String: Any]
        let layers = F.ints(s["early_exit_layers"])
        try #require(layers == Array(layers[0]...layers.last!), "case \(n): the anchors must be a range")
        let decoder = DeCoDecoder(try DeCoDecoder.descriptor.resolve(values: [
            "alpha": .double(F.double(s["alpha"])), "threshold_top_p": .double(F.double(s["threshold_top_p"])),
            "threshold_top_k": .int((s["threshold_top_k"] as! NSNumber).intValue), "start_layer": .int(layers[0]),
            "end_layer": .int(layers.last! + 1), "num_beams": .int(beams)]))
        #expect(decoder.inputs.sequencesPerStep == beams)
        let items = F.ints(c["system"]).map { PromptItem.token($0) } + image + F.ints(c["question"]).map { PromptItem.token($0) }
        let result = try decoder.decode(DecodingContext(model: model, prompt: PromptLayout(items: items, inputIDs: [1]),
                                                        limits: GenerationLimits(maxNewTokens: steps, eosTokenIDs: [])))
        #expect(result.tokens == F.ints(c["tokens"]), "case \(n)")
        let score = try #require(result.trace.counters["best-score"])
        let expected = F.double(c["sequence_score"])
        #expect(abs(score - expected) <= 1e-4 * max(1, abs(expected)), "case \(n): best score \(score) vs \(expected)")
        #expect(result.trace.counters["rows"] == Double(1 + beams * (steps - 1)), "case \(n): every beam row scored")
    }
    // Sampling cannot be combined with the search: the error names both ways out.
    let sampling = DeCoDecoder(try DeCoDecoder.descriptor.resolve(values: ["num_beams": .int(3), "sample": .bool(true),
                                                                            "start_layer": .int(20), "end_layer": .int(29)]))
    #expect(throws: DeCoError.beamWithSampling(beams: 3)) {
        try sampling.decode(DecodingContext(model: model, prompt: PromptLayout(tokens: [1, 5, 7]),
                                            limits: GenerationLimits(maxNewTokens: 2, eosTokenIDs: [])))
    }
}
