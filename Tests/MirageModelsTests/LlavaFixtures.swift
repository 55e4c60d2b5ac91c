import Foundation
@testable import MirageModels
import MirageEngine
import MirageImaging

/// The tiny LLaVA reference models of Tests/MirageEngineTests/Fixtures/llava (Scripts/fixtures/make_tiny_llava.py).
enum LlavaFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("MirageEngineTests/Fixtures/llava")

    static func folder(_ name: String) -> URL { root.appendingPathComponent(name) }

    static let modelNames = ["llava-llama-clip", "llava-qwen2-siglip", "llava-llama-clip-multi-v4", "llava-qwen2-clip"]

    struct Reference {
        var visionHiddenStates: [[[Float]]]   // [layer 0...L][token][hidden]
        var imageFeatures: [[Float]]          // [token][text hidden]
        var inputIDs: [Int]
        var logits: [[Float]]                 // every prompt row
        var greedy: [Int]
    }

    static func pixels() throws -> PixelTensor {
        let data = try Data(contentsOf: root.appendingPathComponent("pixel_values.json"))
        let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let shape = (json["shape"] as! [NSNumber]).map(\.intValue)
        return try PixelTensor(validating: floats(json["values"]), channels: shape[0], height: shape[1], width: shape[2])
    }

    static func floats(_ v: Any?) -> [Float] { (v as! [Any]).map { Float(($0 as! NSNumber).doubleValue) } }

    static func reference(_ name: String) throws -> Reference {
        let data = try Data(contentsOf: folder(name).appendingPathComponent("reference.json"))
        let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        func ints(_ v: Any?) -> [Int] { (v as! [Any]).map { ($0 as! NSNumber).intValue } }
        func rows(_ v: Any?) -> [[Float]] { (v as! [Any]).map { floats($0) } }
        return Reference(visionHiddenStates: (json["vision_hidden_states"] as! [Any]).map { rows($0) },
                         imageFeatures: rows(json["image_features"]), inputIDs: ints(json["input_ids"]),
                         logits: rows(json["logits"]), greedy: ints(json["greedy"]))
    }
}
