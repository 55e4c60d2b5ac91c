import Foundation
import MirageEngine
import MirageTestSupport

/// The tiny reference models of Fixtures/models (Scripts/fixtures/make_tiny_models.py, and
/// make_trained_tiny_model.py for `trainedModelName`, whose reference has no embeddings/outputs blocks).
enum EngineFixtures {
    static let modelsRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/models")

    static func folder(_ name: String) -> URL { modelsRoot.appendingPathComponent(name) }

    static let modelNames = ["llama-gqa-f32", "llama-llama3-bf16", "llama-linear-f32", "qwen2-dynamic-f32", "qwen2-tied-f32"]
    /// A Llama trained on image captions, stored in float16 (peaked next-token distributions).
    static let trainedModelName = "llama-trained-f16"

    struct Prompt { var ids: [Int]; var rows: [Int]; var logits: [[Float]]; var text: String? }
    struct Reference {
        var prompts: [Prompt]
        var greedyPrompt: [Int]
        var greedyTokens: [Int]
        var embeddingItems: [PromptItem]
        var embeddingLastLogits: [Float]
        var embeddingGreedy: [Int]
        /// Rows of prompt `q8Prompt` (2 unless the file says) and their logits with group-wise int8 weights
        /// (torch simulation of q8).
        var q8Prompt: Int
        var q8Rows: [Int]
        var q8Logits: [[Float]]
        /// Prompt 1 run with output_attentions / output_hidden_states.
        var outputIDs: [Int]
        var lastLayerAttention: [[[Float]]]   // [head][query][key] (zero above the diagonal)
        var hiddenStates: [[[Float]]]         // [layer 0...L][row][hidden]; L is after the final norm
    }

    static func reference(_ name: String) throws -> Reference {
        let data = try Data(contentsOf: folder(name).appendingPathComponent("reference.json"))
        let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        // A missing block reads as empty.
        func floats(_ v: Any?) -> [Float] { (v as? [Any] ?? []).map { Float(($0 as! NSNumber).doubleValue) } }
        func ints(_ v: Any?) -> [Int] { (v as? [Any] ?? []).map { ($0 as! NSNumber).intValue } }
        let prompts = (json["prompts"] as! [[String: Any]]).map { p in
            Prompt(ids: ints(p["ids"]), rows: ints(p["rows"]), logits: (p["logits"] as! [Any]).map { floats($0) },
                   text: p["text"] as? String)
        }
        let greedy = json["greedy"] as! [String: Any]
        let emb = json["embeddings"] as? [String: Any] ?? [:]
        let q8 = json["q8"] as! [String: Any]
        let outputs = json["outputs"] as? [String: Any] ?? [:]
        func matrices(_ v: Any?) -> [[[Float]]] { (v as? [Any] ?? []).map { ($0 as! [Any]).map { floats($0) } } }
        let items: [PromptItem] = (emb["items"] as? [[String: Any]] ?? []).map { item in
            if let t = item["token"] { return .token((t as! NSNumber).intValue) }
            return .embedding(floats(item["embedding"]))
        }
        return Reference(prompts: prompts, greedyPrompt: ints(greedy["prompt"]), greedyTokens: ints(greedy["tokens"]),
                         embeddingItems: items, embeddingLastLogits: floats(emb["last_logits"]),
                         embeddingGreedy: ints(emb["greedy"]),
                         q8Prompt: (q8["prompt"] as? NSNumber)?.intValue ?? 2, q8Rows: ints(q8["rows"]), q8Logits: (q8["logits"] as! [Any]).map { floats($0) },
                         outputIDs: ints(outputs["ids"]), lastLayerAttention: matrices(outputs["attention"]),
                         hiddenStates: matrices(outputs["hidden"]))
    }

    /// max |a − b| / max |b|.
    static func relativeError<A: Collection, B: Collection>(_ a: A, _ b: B) -> Float
    where A.Element == Float, B.Element == Float {
        Numerics.relativeError(a, b)
    }
}
