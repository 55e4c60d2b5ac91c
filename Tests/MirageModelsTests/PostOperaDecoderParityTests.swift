import Foundation
@testable import MirageDecoding
import MirageEngine
@testable import MirageModels
import MirageTestSupport
import Testing

/// PAI, VISTA and SID against their published code (LALBJ/PAI, LzVv123456/VISTA, huofushuo/SID) on the tiny
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
        try check("pai") { settings, c, recorder in
            var d = PAIDecoder(alpha: settings["alpha"] as! Double, gamma: settings["gamma"] as! Double,
                               startLayer: settings["start_layer"] as! Int, endLayer: settings["end_layer"] as! Int)
            d.scoreObserver = { recorder.record($0, $1) }
            return (d, [PAIDecoder.branchRole: PromptLayout(tokens: Self.ints(c["unconditional_ids"]))])
        }
    }

    @Test func vistaMatchesPublishedCode() throws {
        try check("vista") { settings, c, recorder in
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
        try check("sid") { settings, _, recorder in
            var d = SIDDecoder(alpha: settings["cd_alpha"] as! Double, beta: settings["cd_beta"] as! Double,
                               aggLayer: settings["fast_v_agg_layer"] as! Int,
                               attentionRank: settings["fast_v_attention_rank"] as! Int, mode: .reference)
            d.scoreObserver = { recorder.record($0, $1) }
            return (d, [:])
        }
    }

    typealias Make = ([String: Any], [String: Any], StepRecorder) throws -> (any Decoder, [String: PromptLayout])
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
            let inputIDs = Self.ints(c["input_ids"])
            let at = try #require(inputIDs.firstIndex(of: LlavaOriginalConfig.imageTokenIndex))
            let expanded = Array(inputIDs[..<at]) + Array(repeating: LlavaOriginalConfig.imageTokenIndex, count: rows.tokenCount)
                + Array(inputIDs[(at + 1)...])
            let prompt = try MultimodalPrompt(tokenIDs: expanded, imageTokenID: LlavaOriginalConfig.imageTokenIndex, image: rows,
                                              inputIDs: inputIDs)
            let layout = PromptLayout(items: prompt.items, imageSpan: prompt.imageSpan, inputIDs: prompt.inputIDs)
            let recorder = StepRecorder()
            let (decoder, branches) = try make(settings, c, recorder)
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
