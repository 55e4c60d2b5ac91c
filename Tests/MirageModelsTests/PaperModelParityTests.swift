import Foundation
import MirageDecoding
import MirageEngine
@testable import MirageModels
import MirageTestSupport
import Testing

/// The original-layout families against OPERA's own wrappers on tiny models in the published layouts:
/// Fixtures/paper-models/<model> (reference.json, image rows; made by make_paper_model_fixtures.py), loaded as
/// published (.bin shards, the tower folder beside the model), with the prompt ids taken from the references (the
/// prompts built from the folders' tokenizers are checked by MirageRunnerTests' PaperModelRunnerParityTests). Per
/// case: pixels, image rows, key positions, input embeddings, first-step logits, and greedy, beam, OPERA and
/// OPERA-with-rollback tokens.
@Suite struct PaperModelParityTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func ints(_ v: Any?) -> [Int] { (v as! [NSNumber]).map(\.intValue) }
    static func doubles(_ v: Any?) -> [Double] { (v as! [NSNumber]).map(\.doubleValue) }
    static func close(_ a: Double, _ b: Double, _ tolerance: Double) -> Bool { abs(a - b) <= tolerance * max(1, abs(b)) }

    /// LLaVA-1.5 (`minigpt4/models/llava.py`): one -200 in input_ids for the 576 rows.
    @Test func llavaOriginalMatchesOpera() throws {
        try check(model: "llava-original", folder: "llava-v1.5-7b", family: "llava-original", rows: 576) { c, rows in
            let inputIDs = Self.ints(c["input_ids"])
            let at = try #require(inputIDs.firstIndex(of: LlavaOriginalConfig.imageTokenIndex))
            let expanded = Array(inputIDs[..<at]) + Array(repeating: LlavaOriginalConfig.imageTokenIndex, count: rows.tokenCount)
                + Array(inputIDs[(at + 1)...])
            return try MultimodalPrompt(tokenIDs: expanded, imageTokenID: LlavaOriginalConfig.imageTokenIndex, image: rows,
                                        inputIDs: inputIDs)
        }
    }

    /// Shikra (`minigpt4/models/shikra.py`): 256 <im_patch> ids replaced by the rows; the span takes in
    /// <im_start> and <im_end>.
    @Test func shikraMatchesOpera() throws {
        try check(model: "shikra", folder: "shikra-7b", family: "shikra", rows: 256) { c, rows in
            let key = c["key_position"] as! [String: Int]
            return try MultimodalPrompt(tokenIDs: Self.ints(c["input_ids"]), imageTokenID: c["im_patch_id"] as! Int, image: rows,
                                        imageSpan: key["image_start"]!..<(key["image_end"]! + 1))
        }
    }

    func check(model name: String, folder: String, family: String, rows expectedRows: Int,
               prompt build: ([String: Any], ImageEmbedding) throws -> MultimodalPrompt) throws {
        let paper = Self.fixtures.appendingPathComponent("paper-models/\(name)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: paper.appendingPathComponent("reference.json"))) as! [String: Any]
        let cases = json["cases"] as! [[String: Any]]
        #expect(cases.count == 4)
        // The tower is found beside the model by its mm_vision_tower name (openai/clip-vit-large-patch14[-336]).
        let vlm = try ModelFamilies.load(Self.fixtures.appendingPathComponent("paper-models/\(name)/\(folder)"),
                                         options: LoadOptions(threads: 2))
        #expect(vlm.family.name == family && vlm.imageTokenCount == expectedRows)
        let lm = vlm.languageModel
        for (index, c) in cases.enumerated() {
            let label = "\(name) case \(index) (\(c["image"]!), \(c["question_kind"]!))"
            // Pixels: CLIPImageProcessor from the tower folder (OPERA's CHAIR path normalises afterwards with the
            // same constants).
            let pixels = try vlm.pixels(ofImageAt: Self.fixtures.appendingPathComponent("paper-models/\(c["image"] as! String)").path,
                                        padToSquare: false)
            let pv = c["pixel_values"] as! [String: Any]
            #expect(Self.close(pixels.values.reduce(0.0) { $0 + Double($1) }, pv["sum"] as! Double, 1e-6), "\(label) pixel sum")
            #expect(Self.close(pixels.values.reduce(0.0) { $0 + Double(abs($1)) }, pv["abs_sum"] as! Double, 1e-6), "\(label) pixel abs sum")
            for (i, v) in Self.doubles(pv["head"]).enumerated() { #expect(abs(Double(pixels.values[i]) - v) < 1e-5, "\(label) pixel \(i)") }

            // Image rows: hidden_states[-2] without CLS through the projector.
            let rows = try vlm.embedImage(pixels, instruction: nil)
            let file = (c["image_rows_file"] as! [String: Any])["file"] as! String
            let expected = try Data(contentsOf: paper.appendingPathComponent(file)).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            #expect(rows.tokenCount == expectedRows && rows.values.count == expected.count)
            let rowError = Numerics.relativeError(rows.values, expected)
            #expect(rowError < 1e-4, "\(label) image rows: relative error \(rowError)")

            // The prompt at OPERA's key_position.
            let prompt = try build(c, rows)
            let key = c["key_position"] as! [String: Int]
            #expect(prompt.imageSpan.lowerBound == key["image_start"] && prompt.imageSpan.upperBound - 1 == key["image_end"]
                    && prompt.responseStart == key["response_start"], "\(label) key_position \(prompt.imageSpan) \(prompt.responseStart)")
            // Input embeddings: per-row sums of the token embeddings and image rows.
            let rowSums = Self.doubles((c["input_embeds"] as! [String: Any])["row_sums"])
            #expect(rowSums.count == prompt.items.count)
            var worst = 0.0
            for (i, item) in prompt.items.enumerated() {
                let row: [Float]
                switch item {
                case .token(let t): row = try lm.embedding(of: t)
                case .embedding(let e): row = e
                }
                worst = max(worst, abs(Double(row.reduce(0, +)) - rowSums[i]) / max(1, abs(rowSums[i])))
            }
            #expect(worst < 1e-4, "\(label) input embedding row sums: worst relative error \(worst)")
            // First-step logits.
            let logits = Array(try lm.makeSession().append(prompt.items).logits(0))
            let logitError = Numerics.relativeError(logits, Self.doubles(c["first_step_logits"]).map(Float.init))
            #expect(logitError < 1e-4, "\(label) first-step logits: relative error \(logitError)")

            // Greedy, beam and OPERA through the decoders, as the wrapper's generate runs them.
            let layout = PromptLayout(items: prompt.items, imageSpan: prompt.imageSpan, inputIDs: prompt.inputIDs)
            let inputIDs = prompt.inputIDs
            for (run, settings) in c["runs"] as! [String: [String: Any]] {
                let kwargs = settings["generate_kwargs"] as! [String: Any]
                let beams = kwargs["num_beams"] as! Int
                let decoder: any Decoder
                if kwargs["opera_decoding"] as! Bool {
                    decoder = try DecoderRegistry.standard.makeDecoder("opera", preset: "opera-paper", overrides: [
                        ("num_beams", "\(beams)"), ("scale_factor", "\(kwargs["scale_factor"]!)"), ("threshold", "\(kwargs["threshold"]!)"),
                        ("num_attn_candidates", "\(kwargs["num_attn_candidates"]!)"), ("penalty_weights", "\(kwargs["penalty_weights"]!)")])
                } else if beams > 1 {
                    decoder = try DecoderRegistry.standard.makeDecoder("beam", overrides: [("num_beams", "\(beams)")])
                } else {
                    decoder = try DecoderRegistry.standard.makeDecoder("greedy")
                }
                let limits = GenerationLimits(maxNewTokens: kwargs["max_new_tokens"] as! Int, eosTokenIDs: [2])
                let result = try decoder.decode(DecodingContext(model: lm, prompt: layout, limits: limits))
                let raw = Self.ints(settings["raw_output_ids"])
                #expect(Array(raw[..<inputIDs.count]) == inputIDs, "\(label) \(run) prompt ids")
                #expect(result.tokens == Array(raw[inputIDs.count...]), "\(label) \(run)")
            }
        }
    }
}
