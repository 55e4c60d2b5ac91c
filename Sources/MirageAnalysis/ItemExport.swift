import Foundation
import MirageStore

/// Per-item export of a run (`mirage export`).
public enum ItemExport {
    static let columns = ["item", "ordinal", "image_id", "question_id", "status", "failure_reason", "prompt", "output",
                          "output_tokens", "prefill_seconds", "decode_seconds", "forward_passes", "seed",
                          "mentioned", "hallucinated", "positions", "ground_truth", "words", "label", "parsed_answer"]

    static func fields(_ s: StoredItem) -> [String: Any] {
        let i = s.item
        var f: [String: Any] = ["item": i.key, "ordinal": i.ordinal, "status": i.failureReason == nil ? "ok" : "failed",
                                "output": i.outputText]
        f["image_id"] = i.imageID; f["question_id"] = i.questionID; f["failure_reason"] = i.failureReason
        f["prompt"] = i.prompt; f["output_tokens"] = i.outputTokens; f["prefill_seconds"] = i.prefillSeconds
        f["decode_seconds"] = i.decodeSeconds; f["forward_passes"] = i.forwardPasses; f["seed"] = i.seed
        switch s.score {
        case .chair(let c)?:
            f["mentioned"] = c.mentions.map(\.node)
            f["hallucinated"] = c.mentions.filter(\.hallucinated).map(\.node)
            f["positions"] = c.mentions.map(\.position)
            f["ground_truth"] = c.groundTruth
            f["words"] = c.wordCount
        case .pope(let p)?:
            f["label"] = p.label.rawValue
            f["parsed_answer"] = p.parsed.rawValue
        case nil:
            break
        }
        return f
    }

    /// One JSON object per line. Text is exact (no normalisation); besides JSON's own escapes, U+2028, U+2029
    /// and U+0085 are written as `\uXXXX`, because line readers such as Python's `str.splitlines()` break lines
    /// there and would cut a record in two.
    public static func jsonl(_ items: [StoredItem]) -> String {
        items.map { item -> String in
            let data = try! JSONSerialization.data(withJSONObject: fields(item), options: [.sortedKeys, .withoutEscapingSlashes])
            return escapeLineSeparators(String(decoding: data, as: UTF8.self))
        }.map { $0 + "\n" }.joined()
    }

    /// JSON text with U+2028, U+2029 and U+0085 as escapes (they can only occur inside JSON strings).
    static func escapeLineSeparators(_ json: String) -> String {
        guard json.unicodeScalars.contains(where: { [0x85, 0x2028, 0x2029].contains($0.value) }) else { return json }
        var out = String.UnicodeScalarView()
        for scalar in json.unicodeScalars {
            switch scalar.value {
            case 0x85, 0x2028, 0x2029: out.append(contentsOf: String(format: "\\u%04x", scalar.value).unicodeScalars)
            default: out.append(scalar)
            }
        }
        return String(out)
    }

    /// RFC 4180 CSV; list values are joined with "|".
    public static func csv(_ items: [StoredItem]) -> String {
        func cell(_ v: Any?) -> String {
            let s: String
            switch v {
            case nil: s = ""
            case let list as [String]: s = list.joined(separator: "|")
            case let list as [Int]: s = list.map(String.init).joined(separator: "|")
            case let x?: s = "\(x)"
            }
            return s.contains(where: { ",\"\n\r".contains($0) }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        var lines = [columns.joined(separator: ",")]
        for item in items {
            let f = fields(item)
            lines.append(columns.map { cell(f[$0]) }.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
