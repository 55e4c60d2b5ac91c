import Foundation
@testable import MirageEngine
@testable import MirageTokenizers

/// The committed tokenizer fixtures (Scripts/fixtures/make_tokenizer_fixtures.py): small trained
/// tokenizers and transformers' encodings of a caption corpus plus hard cases.
enum TokenizerFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tokenizers")

    static func folder(_ name: String) -> URL { root.appendingPathComponent(name) }

    struct Case {
        var text: String
        var ids: [Int]
        var decoded: String
        var decodedSkip: String
    }

    static let texts: [String] = {
        let data = try! Data(contentsOf: root.appendingPathComponent("corpus.json"))
        let object = try! JSONSerialization.jsonObject(with: data) as! [String: Any]
        return object["texts"] as! [String]
    }()

    /// Expected encodings of a fixture folder, with the compact decode fields expanded.
    static func cases(_ name: String) throws -> [Case] {
        let data = try Data(contentsOf: folder(name).appendingPathComponent("expected.json"))
        let object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        return (object["cases"] as! [[String: Any]]).map { entry in
            let text = texts[(entry["text"] as! NSNumber).intValue]
            func expand(_ key: String) -> String {
                if let full = entry[key] as? String { return full }
                if let prefix = entry[key + "_prefix"] as? String { return prefix + text }
                return text
            }
            return Case(text: text, ids: (entry["ids"] as! [NSNumber]).map(\.intValue),
                        decoded: expand("decoded"), decodedSkip: expand("decoded_skip"))
        }
    }

    static func tokenizer(_ name: String) throws -> Tokenizer { try Tokenizer(folder: folder(name)) }
}
