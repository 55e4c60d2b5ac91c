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
        /// How many steps were recorded.
        var count: Int { lock.lock(); defer { lock.unlock() }; return steps.count }
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
        let (settings, runs) = try Self.samplingRuns("m3id.json")
        let warp = settings["sampling"] as! [String: Any]
        let parameters = try M3IDDecoder.descriptor.resolve(values: [
            "temperature": .double(warp["temperature"] as! Double), "top_p": .double(warp["top_p"] as! Double)])
        try checkSampledDistributions("m3id", runs, processors: ContrastSampling.processors(parameters, limits: Self.samplingLimits)) { step in
            M3IDDecoder.scores(Self.floats(step["logits"])[...], unconditional: Self.floats(step["text_logits"])[...],
                               step: step["t"] as! Int, lambda: parameters[M3IDDecoder.lambda], beta: parameters[M3IDDecoder.beta])
        }
    }

    /// PAI's sampling formula against its published code's sampled runs (chair_eval.py with --sample: CFGLogits,
    /// then transformers 4.37's temperature 0.7, top-k 50 and top-p 0.9): the `reference` decoder's step scores
    /// on the two rows CFGLogits combined, through PAI's sampling processors, give what `torch.multinomial` was
    /// handed. Each image has a run at the settings' γ and one at γ = 1, where CFGLogits hands back the
    /// log-softmax with no cut-off and no text-only row (the cut-off would drop kept tokens on these rows).
    @Test func paiSamplingFormulaMatchesPublishedCode() throws {
        let (settings, runs) = try Self.samplingRuns("pai-sampling.json")
        let beta = settings["beta"] as! Double
        let gammas = runs.map { $0["gamma"] as! Double }
        #expect(Set(gammas) == [settings["gamma"] as! Double, 1], "pai-sampling.json: runs at the settings' gamma and at 1")
        for gamma in Set(gammas).sorted() {
            let d = PAIDecoder(alpha: settings["alpha"] as! Double, gamma: gamma, beta: beta, mode: .reference,
                               temperature: settings["temperature"] as! Double, topK: settings["top_k"] as! Int,
                               topP: settings["top_p"] as! Double, sample: true)
            try checkSampledDistributions("pai gamma \(gamma)", runs.filter { $0["gamma"] as! Double == gamma },
                                          processors: d.sampling.processors(Self.samplingLimits)) { step in
                let logits = Self.floats(step["logits"])
                // γ = 1: the published code ran no text-only pass, so there is no row to hand over.
                let text = gamma == 1 ? logits : Self.floats(step["text_logits"])
                #expect(gamma == 1 || step["text_logits"] != nil)
                return d.stepScores(logits[...], text: text[...]).scores
            }
        }
    }

    /// VISTA's sampling formula against its published code's sampled runs (chair_eval.py with --do-sample,
    /// temperature 0.7 and its defaults --top-p 0.9, --top-k 0):
    /// `VISTADecoder.augmented` on the final logits and the logits layers' rows, through VISTA's sampling
    /// processors, gives what `torch.multinomial` was handed.
    @Test func vistaSamplingFormulaMatchesPublishedCode() throws {
        let (settings, runs) = try Self.samplingRuns("vista-sampling.json")
        let alpha = settings["logits_alpha"] as! Double
        let d = VISTADecoder(logitsAlpha: alpha, temperature: settings["temperature"] as! Double,
                             topK: settings["top_k"] as! Int, topP: settings["top_p"] as! Double, sample: true)
        try checkSampledDistributions("vista", runs, processors: d.sampling.processors(Self.samplingLimits)) { step in
            let layers = (step["layer_logits"] as! [Any]).map { Self.floats($0)[...] }
            #expect(layers.count == (settings["logits_layers"] as! String).split(separator: ",").count)
            return VISTADecoder.augmented(Self.floats(step["logits"])[...], layerLogits: layers, alpha: Float(alpha))
        }
    }

    /// SID's sampling formula against its published code's sampled runs (pope_eval.py's SID run with --sample
    /// but without --sample-greedy: vcd_sample.py's cut-off contrast, then temperature 0.7, top-k 50, top-p 0.9):
    /// the contrast of the prompt pass's and the pruned pass's rows, through SID's sampling processors, gives
    /// what `torch.multinomial` was handed.
    @Test func sidSamplingFormulaMatchesPublishedCode() throws {
        let (settings, runs) = try Self.samplingRuns("sid-sampling.json")
        let (alpha, beta) = (settings["cd_alpha"] as! Double, settings["cd_beta"] as! Double)
        let d = SIDDecoder(alpha: alpha, beta: beta, temperature: settings["temperature"] as! Double,
                           topK: settings["top_k"] as! Int, topP: settings["top_p"] as! Double, sample: true)
        try checkSampledDistributions("sid", runs, processors: d.sampling.processors(Self.samplingLimits)) { step in
            ContrastiveScores.vcd(Self.floats(step["logits"])[...], contrast: Self.floats(step["contrast_logits"])[...],
                                  alpha: alpha, beta: beta).scores
        }
    }

    /// ICD's sampling formula against SID's code run as chair_eval.py --use-icd --sample (without
    /// --sample-greedy): the contrast of the prompt's and the disturbed prompt's rows with the cut-off, through
    /// `icd`'s sampling processors (`sample=true`), gives what `torch.multinomial` was handed.
    @Test func icdSamplingFormulaMatchesPublishedCode() throws {
        let (settings, runs) = try Self.samplingRuns("icd-sampling.json")
        let parameters = try ICDDecoder.descriptor.resolve(values: [
            "alpha": .double(settings["cd_alpha"] as! Double), "beta": .double(settings["cd_beta"] as! Double),
            "temperature": .double(settings["temperature"] as! Double), "top_k": .int(settings["top_k"] as! Int),
            "top_p": .double(settings["top_p"] as! Double), "sample": .bool(true)])
        try checkSampledDistributions("icd", runs, processors: ContrastSampling.processors(parameters, limits: Self.samplingLimits)) { step in
            ContrastiveScores.vcd(Self.floats(step["logits"])[...], contrast: Self.floats(step["contrast_logits"])[...],
                                  alpha: parameters[ICDDecoder.alpha], beta: parameters[ICDDecoder.beta]).scores
        }
    }

    static let samplingLimits = GenerationLimits(maxNewTokens: 8, eosTokenIDs: [2])

    static func floats(_ v: Any?) -> [Float] { (v as! [NSNumber]).map(\.floatValue) }

    /// The settings and sampled runs of a fixture under decoders/ (its "sampling" array).
    static func samplingRuns(_ file: String) throws -> (settings: [String: Any], runs: [[String: Any]]) {
        let url = paper.appendingPathComponent("decoders/\(file)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        return (json["settings"] as! [String: Any], try #require(json["sampling"] as? [[String: Any]]))
    }

    /// For every recorded step of every run: `scores(step)` (the decoder's own rule on the rows the published
    /// code computed) through `processors` (the prefix the published code had: prompt ids without the image
    /// placeholder, then the sampled tokens), softmaxed, must keep the same tokens as the distribution
    /// `torch.multinomial` was handed, each probability within 1e-5. The rows are float32 rounded to 6
    /// decimals; that moves a probability by about 1e-6 at temperature 0.7, so 1e-5 leaves room for float32
    /// softmax and warper differences without hiding a wrong formula (a changed weight, order or cut-off moves
    /// probabilities by 1e-2 or more on these rows).
    func checkSampledDistributions(_ method: String, _ runs: [[String: Any]], processors: [any LogitsProcessor],
                                   scores: ([String: Any]) throws -> [Float]) throws {
        #expect(!runs.isEmpty)
        var (worst, count) = (Float(0), 0)
        for (r, run) in runs.enumerated() {
            let prompt = Self.ints(run["input_ids"]).filter { $0 >= 0 }
            let tokens = Self.ints(run["tokens"])
            let steps = run["steps"] as! [[String: Any]]
            #expect(steps.count == tokens.count && !steps.isEmpty, "\(method) run \(r): one recorded step per sampled token")
            for step in steps {
                let t = step["t"] as! Int
                var mine = try scores(step)
                let context = LogitsContext(tokens: prompt + tokens[..<t], generated: t)
                for p in processors { p.process(&mine, context: context) }
                let probabilities = softmax(mine)
                var expected = [Float](repeating: 0, count: probabilities.count)
                for pair in step["probs"] as! [[NSNumber]] { expected[pair[0].intValue] = pair[1].floatValue }
                #expect(probabilities.map { $0 > 0 } == expected.map { $0 > 0 }, "\(method) run \(r) step \(t): the kept tokens differ")
                let error = zip(probabilities, expected).map { abs($0 - $1) }.max() ?? 0
                #expect(error < 1e-5, "\(method) run \(r) step \(t): max |probability difference| \(error)")
                #expect(expected[tokens[t]] > 0, "\(method) run \(r) step \(t): the drawn token had probability 0")
                (worst, count) = (max(worst, error), count + 1)
            }
        }
        print("\(method) sampling formula: \(count) steps, max |probability difference| \(worst)")
    }

    /// One step's scores against the golden's summary (decoder_fixture_common.summary): the finite count, max
    /// |score| and the top scores within 1e-4 × max |score|.
    static func expectSummary(_ mine: [Float], _ summary: [String: Any], _ label: String) {
        let maxAbs = summary["max_abs"] as! Double, tolerance = 1e-4 * maxAbs
        let finite = mine.filter(\.isFinite)
        #expect(finite.count == summary["finite"] as! Int, "\(label): finite scores \(finite.count)")
        #expect(abs(Double(finite.map(abs).max() ?? 0) - maxAbs) <= tolerance, "\(label): max |score|")
        for pair in summary["top"] as! [[NSNumber]] {
            let (id, value) = (pair[0].intValue, pair[1].doubleValue)
            #expect(abs(Double(mine[id]) - value) <= tolerance, "\(label): score of token \(id) \(mine[id]) vs \(value)")
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
        let prompts = try PaperPrompts()
        let vlm = prompts.vlm
        for (index, c) in cases.enumerated() {
            let label = "\(method) case \(index) (\(c["image"]!), \(c["question"]!))"
            let withImage = try prompts.builder(image: c["image"] as! String)
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
                Self.expectSummary(mine, s, "\(label) step \(step)")
            }
        }
    }
}

/// The tiny LLaVA-1.5 of Fixtures/paper-models/llava-original and the prompts of its goldens: the published
/// scripts' `input_ids` (one image placeholder) with the placeholder expanded to the image's rows.
final class PaperPrompts {
    let vlm: any VisionLanguageModel
    private var images: [String: ImageEmbedding] = [:]

    init() throws {
        vlm = try ModelFamilies.load(PostOperaDecoderParityTests.paper.appendingPathComponent("llava-original/llava-v1.5-7b"),
                                     options: LoadOptions(threads: 2))
    }

    /// Turns ids holding the image placeholder (the prompt, or a branch's ids) into a layout with `image`'s rows.
    func builder(image name: String) throws -> (_ inputIDs: [Int]) throws -> PromptLayout {
        let rows = try images[name] ?? vlm.embedImage(
            vlm.pixels(ofImageAt: PostOperaDecoderParityTests.paper.appendingPathComponent("images/\(name)").path, padToSquare: false),
            instruction: nil)
        images[name] = rows
        return { inputIDs in
            let at = try #require(inputIDs.firstIndex(of: LlavaOriginalConfig.imageTokenIndex))
            let expanded = Array(inputIDs[..<at]) + Array(repeating: LlavaOriginalConfig.imageTokenIndex, count: rows.tokenCount)
                + Array(inputIDs[(at + 1)...])
            let prompt = try MultimodalPrompt(tokenIDs: expanded, imageTokenID: LlavaOriginalConfig.imageTokenIndex,
                                              image: rows, inputIDs: inputIDs)
            return PromptLayout(items: prompt.items, imageSpan: prompt.imageSpan, inputIDs: prompt.inputIDs)
        }
    }
}
