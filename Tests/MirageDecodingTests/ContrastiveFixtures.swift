import Foundation
import MirageEngine

/// Fixtures/contrastive.json and the tiny model of Fixtures/contrastive-llama
/// (Scripts/fixtures/make_contrastive_fixtures.py: torch restatements of the VCD and DoLa code).
enum ContrastiveFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static let json: [String: Any] = {
        let data = try! Data(contentsOf: root.appendingPathComponent("contrastive.json"))
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }()

    static func model() throws -> LanguageModel {
        try LanguageModel(folder: root.appendingPathComponent("contrastive-llama"), options: LoadOptions(threads: 1))
    }

    /// Numbers with JSON null read as −∞ (how the script writes masked scores).
    static func floats(_ v: Any?) -> [Float] {
        (v as! [Any]).map { $0 is NSNull ? -Float.infinity : Float(($0 as! NSNumber).doubleValue) }
    }
    static func doubles(_ v: Any?) -> [Double] { (v as! [Any]).map { ($0 as! NSNumber).doubleValue } }
    static func ints(_ v: Any?) -> [Int] { (v as! [Any]).map { ($0 as! NSNumber).intValue } }
    static func double(_ v: Any?) -> Double { (v as! NSNumber).doubleValue }
    static func cases(_ key: String) -> [[String: Any]] { json[key] as! [[String: Any]] }

    static func items(_ v: Any?) -> [PromptItem] {
        (v as! [[String: Any]]).map { item in
            if let t = item["token"] { return .token((t as! NSNumber).intValue) }
            return .embedding(floats(item["embedding"]))
        }
    }

    /// True when both are −∞ at the same places and the finite values agree to `tolerance` (relative to
    /// the largest finite magnitude).
    static func close(_ a: [Float], _ b: [Float], tolerance: Float = 1e-5) -> Bool {
        guard a.count == b.count else { return false }
        let scale = max(b.filter(\.isFinite).map(abs).max() ?? 1, 1)
        for (x, y) in zip(a, b) {
            if x.isFinite != y.isFinite { return false }
            if x.isFinite, abs(x - y) > tolerance * scale { return false }
        }
        return true
    }
}
