import Foundation
@testable import MirageDecoding
import MirageEngine
@testable import MirageModels
import MirageTestSupport
import Testing

/// Beam search under transformers 4.37 (the version PAI and VISTA pin) on the tiny LLaVA-1.5 of
/// Fixtures/paper-models/llava-original, against goldens made by Scripts/fixtures/make_pai_beam_fixtures.py:
/// plain `generate(num_beams=B)` for the `transformers-4.37` semantics on its own, and PAI's chair_eval.py
/// `--beam B` run for `pai` with `num_beams`.
@Suite struct PostOperaBeamParityTests {
    static func golden(_ name: String) throws -> (json: [String: Any], cases: [[String: Any]]) {
        let url = PostOperaDecoderParityTests.paper.appendingPathComponent("decoders/\(name)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        return (json, json["cases"] as! [[String: Any]])
    }

    static func ints(_ v: Any?) -> [Int] { PostOperaDecoderParityTests.ints(v) }

    /// A score transformers reports (`sequences_scores`) against Mirage's, within 1e-4 relative (float32 sums of
    /// 24 log-probabilities).
    static func sameScore(_ mine: Double?, _ theirs: Double) -> Bool {
        guard let mine else { return false }
        return abs(mine - theirs) <= 1e-4 * max(1, abs(theirs))
    }

    /// transformers 4.37's `beam_search` + `BeamSearchScorer` with no logits processor: 6 cases (2 images,
    /// 3 questions), beams 2–5, length penalties 0.5, 1 and 2, early stopping false/true/never, EOS ids that
    /// the tiny model produces (so hypotheses finish early and the lengths matter), 24 new tokens. The same
    /// tokens and the same best score (`sequences_scores`). The 4.29 semantics must fail at least one case, so
    /// the golden tells the two apart.
    @Test func transformers437BeamSearchMatchesPlainTransformers() throws {
        let (json, cases) = try Self.golden("transformers-4.37-beam.json")
        #expect(cases.count >= 3)
        let maxNew = json["max_new_tokens"] as! Int
        let prompts = try PaperPrompts()
        var older = 0
        for (index, c) in cases.enumerated() {
            let label = "case \(index) (\(c["image"]!), beams \(c["num_beams"]!), lp \(c["length_penalty"]!), eos \(c["eos_token_id"]!))"
            let layout = try prompts.builder(image: c["image"] as! String)(Self.ints(c["input_ids"]))
            let context = DecodingContext(model: prompts.vlm.languageModel, prompt: layout,
                                          limits: GenerationLimits(maxNewTokens: maxNew, eosTokenIDs: [c["eos_token_id"] as! Int]))
            let run = { (semantics: BeamSemantics) throws -> DecodeResult in
                try BeamSearchDecoder(numBeams: c["num_beams"] as! Int, lengthPenalty: c["length_penalty"] as! Double,
                                      earlyStopping: EarlyStopping(rawValue: c["early_stopping"] as! String)!,
                                      semantics: semantics).decode(context)
            }
            let expected = Self.ints(c["tokens"]), score = c["sequences_score"] as! Double
            let result = try run(.transformers437)
            #expect(result.tokens == expected, "\(label): tokens")
            #expect(Self.sameScore(result.trace.counters["best-score"], score),
                    "\(label): best score \(result.trace.counters["best-score"] ?? .nan) vs \(score)")
            let old = try run(.transformers4)
            if old.tokens != expected || !Self.sameScore(old.trace.counters["best-score"], score) { older += 1 }
        }
        #expect(older >= 1, "transformers-4 (4.29) semantics matched every 4.37 case: the golden does not separate them")
        print("transformers-4.37 beam golden: \(cases.count) cases; 4.29 semantics differ on \(older)")
    }

    /// PAI as chair_eval.py runs it with `--beam B` (README's α 0.2, γ 1.1; layer 1 of the 2-layer model), 6 cases
    /// with beams 2–5, one with γ 1 (CFGLogits then hands back the log-softmax untouched: no cut-off, no edit):
    /// see `checkBeam`. `reference` mode reproduces the text-only cache that CFGLogits never
    /// reorders; the same run with the text-only rows reordered with the beams (what `clean` does, without its
    /// edit of the first token) must differ from the golden somewhere, so the golden shows that behaviour.
    @Test func paiBeamSearchMatchesPublishedCode() throws {
        var reorderedDiffers = 0
        try checkBeam("pai-beam.json") { settings, c, model in
            let d = PAIDecoder(alpha: settings["alpha"] as! Double, gamma: c["gamma"] as! Double,
                               startLayer: settings["start_layer"] as! Int, endLayer: settings["end_layer"] as! Int,
                               numBeams: c["num_beams"] as! Int)
            let text = PromptLayout(tokens: Self.ints(c["unconditional_ids"]))
            return (d, [PAIDecoder.branchRole: text], { context in
                let reordered = try d.beamDecode(context, text: text, layers: d.editedLayers(modelLayers: model.config.numLayers),
                                                 reorderText: true)
                if reordered.tokens != Self.ints(c["tokens"]) { reorderedDiffers += 1 }
            })
        }
        #expect(reorderedDiffers >= 1, "reordered text-only rows matched the golden on every case: it does not show the unreordered rows")
        print("pai beam golden: with reordered text-only rows \(reorderedDiffers) cases differ")
    }

    /// VISTA as chair_eval.py runs it with `--num-beams B` (run_chair.sh's λ 0.17, α 0.3; logits layers 0,1 of the
    /// 2-layer model), 5 cases with beams 2–5: see `checkBeam`. Every beam is steered and the augmented logits
    /// enter the beam scores.
    @Test func vistaBeamSearchMatchesPublishedCode() throws {
        try checkBeam("vista-beam.json") { settings, c, _ in
            let layers = (settings["logits_layers"] as! String).split(separator: ",").map { Int($0)! }
            let d = VISTADecoder(lambda: settings["vsv_lambda"] as! Double, logitsAlpha: settings["logits_alpha"] as! Double,
                                 logitsLayers: layers, numBeams: c["num_beams"] as! Int)
            return (d, [PAIDecoder.branchRole: PromptLayout(tokens: Self.ints(c["null_ids"]))], nil)
        }
    }

    typealias MakeBeam = (_ settings: [String: Any], _ case: [String: Any], _ model: LanguageModel) throws
        -> (decoder: any ObservedDecoder, branches: [String: PromptLayout], extra: ((DecodingContext) throws -> Void)?)

    /// Each case of a beam golden: the same tokens over its 24 steps, the same best score (`sequences_scores`),
    /// and beam 0's first-step scores (finite count, max |score|, top 8) within 1e-4 × max |score|.
    func checkBeam(_ file: String, make: MakeBeam) throws {
        let (json, cases) = try Self.golden(file)
        #expect(cases.count >= 5)
        let settings = json["settings"] as! [String: Any]
        let prompts = try PaperPrompts()
        for (index, c) in cases.enumerated() {
            let label = "\(file) case \(index) (\(c["image"]!), \(c["question"]!), beams \(c["num_beams"]!))"
            let layout = try prompts.builder(image: c["image"] as! String)(Self.ints(c["input_ids"]))
            let expected = Self.ints(c["tokens"])
            let made = try make(settings, c, prompts.vlm.languageModel)
            var decoder = made.decoder
            let context = DecodingContext(model: prompts.vlm.languageModel, prompt: layout, branches: made.branches,
                                          limits: GenerationLimits(maxNewTokens: settings["max_new_tokens"] as! Int,
                                                                   eosTokenIDs: [settings["eos_token_id"] as! Int]))
            let recorder = PostOperaDecoderParityTests.StepRecorder()
            decoder.scoreObserver = { recorder.record($0, $1) }
            let result = try decoder.decode(context)
            #expect(result.tokens == expected, "\(label): tokens")
            let score = c["sequences_score"] as! Double
            #expect(Self.sameScore(result.trace.counters["best-score"], score),
                    "\(label): best score \(result.trace.counters["best-score"] ?? .nan) vs \(score)")
            if decoder is PAIDecoder {
                // The cut-off trace counts steps (beam 0's row), not 1 + B·(steps − 1) beam rows.
                #expect(result.trace.counters["steps"] == Double(recorder.count), "\(label): traced steps vs observed steps")
            }
            let mine = try #require(recorder[0], "\(label): no first-step scores")
            PostOperaDecoderParityTests.expectSummary(mine, c["first_step"] as! [String: Any], "\(label) first step")
            try made.extra?(context)
        }
    }
}

/// The decoders whose per-step scores the beam goldens compare.
protocol ObservedDecoder: Decoder {
    var scoreObserver: (@Sendable (_ step: Int, _ scores: [Float]) -> Void)? { get set }
}
extension PAIDecoder: ObservedDecoder {}
extension VISTADecoder: ObservedDecoder {}
