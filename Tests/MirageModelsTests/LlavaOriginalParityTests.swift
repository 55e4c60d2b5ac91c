import Foundation
import MirageDecoding
import MirageEngine
@testable import MirageModels
import MirageTestSupport
import Testing

/// llava-original against OPERA's own LLaVA-1.5 wrapper (`minigpt4/models/llava.py`) on a tiny model in the
/// published layout: Fixtures/paper-models/llava-original (reference.json, image rows; made by
/// make_paper_model_fixtures.py). The weights are read from the safetensors copy in
/// Fixtures/llava-original-safetensors (make_llava_original_safetensors.py) and the prompt ids from the
/// reference, until Mirage reads .bin shards and SentencePiece tokenizer.model files.
@Suite struct LlavaOriginalParityTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let paper = fixtures.appendingPathComponent("paper-models/llava-original")
    static let model = fixtures.appendingPathComponent("llava-original-safetensors/llava-v1.5-7b")

    static func cases() throws -> [[String: Any]] {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: paper.appendingPathComponent("reference.json"))) as! [String: Any]
        return json["cases"] as! [[String: Any]]
    }

    static func ints(_ v: Any?) -> [Int] { (v as! [NSNumber]).map(\.intValue) }
    static func doubles(_ v: Any?) -> [Double] { (v as! [NSNumber]).map(\.doubleValue) }

    static func close(_ a: Double, _ b: Double, _ tolerance: Double) -> Bool { abs(a - b) <= tolerance * max(1, abs(b)) }

    @Test func imageRowsPromptLogitsAndDecodersMatchOpera() throws {
        // The tower is found beside the model by its mm_vision_tower name, openai/clip-vit-large-patch14-336.
        let vlm = try ModelFamilies.load(Self.model, options: LoadOptions(threads: 2))
        #expect(vlm.family.name == "llava-original" && vlm.imageTokenCount == 576)
        let lm = vlm.languageModel
        let cases = try Self.cases()
        #expect(cases.count == 4)
        for (index, c) in cases.enumerated() {
            let label = "case \(index) (\(c["image"]!), \(c["question_kind"]!))"
            // Pixels: CLIPImageProcessor from the tower folder (OPERA's CHAIR path normalises afterwards with
            // the same constants).
            let pixels = try vlm.pixels(ofImageAt: Self.fixtures.appendingPathComponent("paper-models/\(c["image"] as! String)").path,
                                        padToSquare: false)
            let pv = c["pixel_values"] as! [String: Any]
            #expect(Self.close(pixels.values.reduce(0.0) { $0 + Double($1) }, pv["sum"] as! Double, 1e-6), "\(label) pixel sum")
            #expect(Self.close(pixels.values.reduce(0.0) { $0 + Double(abs($1)) }, pv["abs_sum"] as! Double, 1e-6), "\(label) pixel abs sum")
            for (i, v) in Self.doubles(pv["head"]).enumerated() { #expect(abs(Double(pixels.values[i]) - v) < 1e-5, "\(label) pixel \(i)") }

            // Image rows: hidden_states[-2] without CLS through mlp2x_gelu.
            let rows = try vlm.embedImage(pixels, instruction: nil)
            let file = (c["image_rows_file"] as! [String: Any])["file"] as! String
            let expected = try Data(contentsOf: Self.paper.appendingPathComponent(file)).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            #expect(rows.tokenCount == 576 && rows.values.count == expected.count)
            let rowError = Numerics.relativeError(rows.values, expected)
            #expect(rowError < 1e-4, "\(label) image rows: relative error \(rowError)")

            // The prompt: OPERA's input_ids (one -200), the rows spliced in at key_position.
            let inputIDs = Self.ints(c["input_ids"])
            let at = try #require(inputIDs.firstIndex(of: LlavaOriginalConfig.imageTokenIndex))
            let expanded = Array(inputIDs[..<at]) + Array(repeating: LlavaOriginalConfig.imageTokenIndex, count: 576) + Array(inputIDs[(at + 1)...])
            let prompt = try MultimodalPrompt(tokenIDs: expanded, imageTokenID: LlavaOriginalConfig.imageTokenIndex, image: rows,
                                              inputIDs: inputIDs)
            let key = c["key_position"] as! [String: Int]
            #expect(prompt.imageSpan.lowerBound == key["image_start"] && prompt.imageSpan.upperBound - 1 == key["image_end"]
                    && prompt.responseStart == key["response_start"], "\(label) key_position")
            // Input embeddings: per-row sums of the token embeddings and image rows.
            let embeds = c["input_embeds"] as! [String: Any]
            let rowSums = Self.doubles(embeds["row_sums"])
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
            for (name, run) in c["runs"] as! [String: [String: Any]] {
                let kwargs = run["generate_kwargs"] as! [String: Any]
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
                let raw = Self.ints(run["raw_output_ids"])
                #expect(Array(raw[..<inputIDs.count]) == inputIDs)
                #expect(result.tokens == Array(raw[inputIDs.count...]), "\(label) \(name)")
            }
        }
    }
}
