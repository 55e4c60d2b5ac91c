import Foundation
import MirageEngine
import MirageModels

/// Tests/MirageModelsTests/Fixtures/blip2: tiny InstructBLIP / BLIP-2 (Llama) folders and transformers' outputs
/// (Scripts/fixtures/make_blip2_fixtures.py).
enum Blip2Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/blip2")
    static let modelNames = ["instructblip-f32-tied", "instructblip-bf16-gqa", "blip2-llama-f16-gqa"]
    static let imageNames = ["gradient.png", "noise.png"]

    static func folder(_ name: String) -> URL { root.appendingPathComponent(name) }
    static func image(_ index: Int) -> String { root.appendingPathComponent("images/" + imageNames[index]).path }

    static func json(_ url: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }

    static func reference(_ name: String) throws -> [String: Any] {
        try json(folder(name).appendingPathComponent("reference.json"))
    }

    static func floats(_ value: Any?) -> [Float] {
        if let rows = value as? [[NSNumber]] { return rows.flatMap { $0.map(\.floatValue) } }
        return (value as? [NSNumber] ?? []).map(\.floatValue)
    }

    /// The fixture script's checksum: Σ bits(vᵢ) · (i mod 65521 + 1) mod 2⁶⁴ over the float32 bit patterns.
    static func checksum(_ values: [Float]) -> UInt64 {
        var sum: UInt64 = 0
        for (i, v) in values.enumerated() { sum &+= UInt64(v.bitPattern) &* UInt64(i % 65521 + 1) }
        return sum
    }

    /// max |a − b| / max |b|.
    static func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "relativeError: \(a.count) vs \(b.count) values")
        var diff: Float = 0, scale: Float = 0
        for i in a.indices {
            diff = max(diff, abs(a[i] - b[i]))
            scale = max(scale, abs(b[i]))
        }
        return diff / max(scale, .leastNormalMagnitude)
    }
}
