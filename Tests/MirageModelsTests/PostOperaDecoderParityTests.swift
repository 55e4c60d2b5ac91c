import Foundation
@testable import MirageDecoding
import MirageEngine
@testable import MirageModels
import MirageTestSupport
import Testing

/// PAI, VISTA, SID, ICD and M3ID against their published code (LALBJ/PAI, LzVv123456/VISTA, huofushuo/SID for
/// SID and ICD, zifuwan/ONLY for M3ID) on the tiny
/// LLaVA-1.5 of Fixtures/paper-models/llava-original: Fixtures/paper-models/decoders/<method>.json, made by
/// Scripts/fixtures/make_<method>_fixtures.py, holds per prompt (2 images × 3 questions) the prompt ids, the
/// 40 tokens of the deterministic setting and per step the top contrast scores. Mirage builds the prompt from
/// the same ids and image, runs the decoder, and must give the same tokens and scores within 1e-4 × max |score|.
@Suite struct PostOperaDecoderParityTests {
    static let paper = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/paper-models")

    static func ints(_ v: Any?) -> [Int] { (v as! [NSNumber]).map(\.intValue) }

    /// Scores per step, as the decoders report them (called on the decoding thread).
    final class StepRecorder: @unchecked Sendable {
        private let lock = NSLock()
        private var steps: [Int: [Float]] = [:]
        func record(_ step: Int, _ scores: [Float]) { lock.lock(); steps[step] = scores; lock.unlock() }
        subscript(step: Int) -> [Float]? { lock.lock(); defer { lock.unlock() }; return steps[step] }
    }

    @Test func paiMatchesPublishedCode() throws {
        try check("pai") { settings, c, recorder, _ in
            var d = PAIDecoder(alpha: settings["alpha"] as! Double, gamma: settings["gamma"] as! Double,
                               startLayer: settings["start_layer"] as! Int, endLayer: settings["end_layer"] as! Int)
            d.scoreObserver = { recorder.record($0, $1) }
            return (d, [PAIDecoder.branchRole: PromptLayout(tokens: Self.ints(c["unconditional_ids"]))])
        }
    }

    @Test func vistaMatchesPublishedCode() throws {
        try check("vista") { settings, c, recorder, _ in
            let layers = (settings["logits_layers"] as! String).split(separator: ",").map { Int($0)! }
            var d = VISTADecoder(lambda: settings["vsv_lambda"] as! Double, logitsAlpha: settings["logits_alpha"] as! Double,
                                 logitsLayers: layers)
            d.scoreObserver = { recorder.record($0, $1) }
            return (d, [PAIDecoder.branchRole: PromptLayout(tokens: Self.ints(c["null_ids"]))])
        } extra: { vlm, c, context, label in
            // obtain_vsv's vectors (reference mode: the PCA artefact included).
            let d = VISTADecoder()
            let session = context.makeSession()
            session.session.fork(0)
            session.session.fork(0)
            let vectors = try d.steeringVectors(context, session: session, null: context.branch(PAIDecoder.branchRole),
                                                steer: 0..<vlm.languageModel.config.numLayers)
            let expected = (c["steering_vectors"] as! [[NSNumber]]).map { $0.map(\.floatValue) }
            #expect(vectors.count == expected.count)
            for (l, (mine, theirs)) in zip(vectors, expected).enumerated() {
                let error = Numerics.relativeError(mine, theirs)
                #expect(error < 1e-4, "\(label) steering vector of layer \(l): relative error \(error)")
            }
        }
    }

    @Test func sidMatchesPublishedCode() throws {
        try check("sid") { settings, _, recorder, _ in
            var d = SIDDecoder(alpha: settings["cd_alpha"] as! Double, beta: settings["cd_beta"] as! Double,
                               aggLayer: settings["fast_v_agg_layer"] as! Int,
                               attentionRank: settings["fast_v_attention_rank"] as! Int, mode: .reference)
            d.scoreObserver = { recorder.record($0, $1) }
            return (d, [:])
        }
    }

    /// ICD as SID's repository runs it (chair_eval.py `--use-icd`, `--sample-greedy`): the disturbed prompt's ids
    /// (`input_ids_cd`, the disturbance right after the image) with the same image rows; reference mode, argmax.
    @Test func icdMatchesPublishedCode() throws {
        try check("icd") { settings, c, recorder, layout in
            var d = ICDDecoder(try ICDDecoder.descriptor.resolve(values: [
                "alpha": .double(settings["cd_alpha"] as! Double), "beta": .double(settings["cd_beta"] as! Double),
                "mode": .string("reference"), "sample": .bool(false), "disturbance": .string(c["disturbance"] as! String)]))
            d.scoreObserver = { recorder.record($0, $1) }
            // The branch the decoder declares puts the disturbance where SID's scripts do: the prompt with the
            // changed instruction is SID's prompt_cd.
            let question = c["question"] as! String
            let changed = try #require(d.inputs.branches.first).instruction.apply(to: question)
            #expect((c["prompt"] as! String).replacingOccurrences(of: question, with: changed) == c["prompt_cd"] as! String)
            return (d, [ICDDecoder.branchRole: try layout(Self.ints(c["input_ids_cd"]))])
        }
    }

    /// M3ID as zifuwan/ONLY runs it (`--use_m3id`) with top_k 1, so its multinomial draw is the argmax: the
    /// text-only branch is the prompt's ids without the image token.
    @Test func m3idMatchesPublishedCode() throws {
        try check("m3id") { settings, c, recorder, _ in
            var d = M3IDDecoder(try M3IDDecoder.descriptor.resolve(values: [
                "lambda": .double(settings["lambda_"] as! Double), "beta": .double(settings["beta"] as! Double),
                "sample": .bool(false)]))
            d.scoreObserver = { recorder.record($0, $1) }
            return (d, [M3IDDecoder.branchRole: PromptLayout(tokens: Self.ints(c["text_only_ids"]))])
        }
    }

    /// M3ID's sampling formula against ONLY's sampled runs (temperature 0.7, top_p 0.9): for each step, the two
    /// rows of logits the published code computed, through `M3IDDecoder.scores` and the sampling processors,
    /// give the probabilities `torch.multinomial` was handed (within 1e-5; the same tokens have non-zero
    /// probability).
    @Test func m3idSamplingFormulaMatchesPublishedCode() throws {
        let url = Self.paper.appendingPathComponent("decoders/m3id.json")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let settings = json["settings"] as! [String: Any]
        let warp = settings["sampling"] as! [String: Any]
        let runs = try #require(json["sampling"] as? [[String: Any]])
        #expect(!runs.isEmpty)
        let parameters = try M3IDDecoder.descriptor.resolve(values: [
            "temperature": .double(warp["temperature"] as! Double), "top_p": .double(warp["top_p"] as! Double)])
        let limits = GenerationLimits(maxNewTokens: 8, eosTokenIDs: [2])
        for (r, run) in runs.enumerated() {
            let prompt = Self.ints(run["input_ids"]).filter { $0 >= 0 }
            let tokens = Self.ints(run["tokens"])
            for step in run["steps"] as! [[String: Any]] {
                let t = step["t"] as! Int
                let z = (step["logits"] as! [NSNumber]).map(\.floatValue)
                let u = (step["text_logits"] as! [NSNumber]).map(\.floatValue)
                var scores = M3IDDecoder.scores(z[...], unconditional: u[...], step: t,
                                                lambda: parameters[M3IDDecoder.lambda], beta: parameters[M3IDDecoder.beta])
                let context = LogitsContext(tokens: prompt + tokens[..<t], generated: t)
                for p in ContrastSampling.processors(parameters, limits: limits) { p.process(&scores, context: context) }
                let mine = softmax(scores)
                var expected = [Float](repeating: 0, count: mine.count)
                for pair in step["probs"] as! [[NSNumber]] { expected[pair[0].intValue] = pair[1].floatValue }
                #expect(mine.map { $0 > 0 } == expected.map { $0 > 0 }, "run \(r) step \(t): the kept tokens differ")
                let error = zip(mine, expected).map { abs($0 - $1) }.max() ?? 0
                #expect(error < 1e-5, "run \(r) step \(t): max |probability difference| \(error)")
            }
        }
    }

    typealias Make = ([String: Any], [String: Any], StepRecorder, (_ inputIDs: [Int]) throws -> PromptLayout) throws
        -> (any Decoder, [String: PromptLayout])
    typealias Extra = (any VisionLanguageModel, [String: Any], DecodingContext, String) throws -> Void

    func check(_ method: String, make: Make, extra: Extra? = nil) throws {
        let url = Self.paper.appendingPathComponent("decoders/\(method).json")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let settings = json["settings"] as! [String: Any]
        let cases = json["cases"] as! [[String: Any]]
        #expect(cases.count >= 5)
        let vlm = try ModelFamilies.load(Self.paper.appendingPathComponent("llava-original/llava-v1.5-7b"), options: LoadOptions(threads: 2))
        var images: [String: ImageEmbedding] = [:]
        for (index, c) in cases.enumerated() {
            let label = "\(method) case \(index) (\(c["image"]!), \(c["question"]!))"
            let name = c["image"] as! String
            let rows = try images[name] ?? vlm.embedImage(
                vlm.pixels(ofImageAt: Self.paper.appendingPathComponent("images/\(name)").path, padToSquare: false), instruction: nil)
            images[name] = rows
            // The ids with the image placeholder expanded to the image's rows (the prompt, or a branch's ids).
            let withImage = { (inputIDs: [Int]) throws -> PromptLayout in
                let at = try #require(inputIDs.firstIndex(of: LlavaOriginalConfig.imageTokenIndex))
                let expanded = Array(inputIDs[..<at]) + Array(repeating: LlavaOriginalConfig.imageTokenIndex, count: rows.tokenCount)
                    + Array(inputIDs[(at + 1)...])
                let prompt = try MultimodalPrompt(tokenIDs: expanded, imageTokenID: LlavaOriginalConfig.imageTokenIndex,
                                                  image: rows, inputIDs: inputIDs)
                return PromptLayout(items: prompt.items, imageSpan: prompt.imageSpan, inputIDs: prompt.inputIDs)
            }
            let layout = try withImage(Self.ints(c["input_ids"]))
            let recorder = StepRecorder()
            let (decoder, branches) = try make(settings, c, recorder, withImage)
            let expected = Self.ints(c["tokens"])
            let context = DecodingContext(model: vlm.languageModel, prompt: layout, branches: branches,
                                          limits: GenerationLimits(maxNewTokens: expected.count, eosTokenIDs: [2]))
            try extra?(vlm, c, context, label)
            let result = try decoder.decode(context)
            #expect(result.tokens == expected, "\(label) tokens")
            for (step, s) in (c["steps"] as! [[String: Any]]).enumerated() {
                guard step < result.tokens.count, result.tokens[..<step] == expected[..<step] else { break }
                let mine = try #require(recorder[step], "\(label) step \(step): the decoder reported no scores")
                let maxAbs = s["max_abs"] as! Double, tolerance = 1e-4 * maxAbs
                let finite = mine.filter(\.isFinite)
                #expect(finite.count == s["finite"] as! Int, "\(label) step \(step): finite scores \(finite.count)")
                #expect(abs(Double(finite.map(abs).max() ?? 0) - maxAbs) <= tolerance, "\(label) step \(step): max |score|")
                for pair in s["top"] as! [[NSNumber]] {
                    let (id, value) = (pair[0].intValue, pair[1].doubleValue)
                    #expect(abs(Double(mine[id]) - value) <= tolerance,
                            "\(label) step \(step): score of token \(id) \(mine[id]) vs \(value)")
                }
            }
        }
    }
}
