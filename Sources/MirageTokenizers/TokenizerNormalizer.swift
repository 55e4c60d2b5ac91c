import Foundation

/// The `normalizer` of tokenizer.json: rewrites text before pre-tokenization, keeping alignment.
indirect enum TokenizerNormalizer: Sendable {
    case sequence([TokenizerNormalizer])
    case prepend(String)
    case replace(pattern: String, content: String)
    case nfc, nfd, nfkc, nfkd
    case lowercase
    case strip(left: Bool, right: Bool)

    static func parse(_ json: TokenizerJSON) throws -> TokenizerNormalizer {
        let type = try json.requireString("type", in: "normalizer")
        switch type {
        case "Sequence":
            return .sequence(try json.objects("normalizers").map(parse))
        case "Prepend":
            return .prepend(try json.requireString("prepend", in: "Prepend normalizer"))
        case "Replace":
            return .replace(pattern: try stringPattern(json, component: "Replace normalizer"),
                            content: try json.requireString("content", in: "Replace normalizer"))
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "Strip":
            return .strip(left: json.bool("strip_left", default: true), right: json.bool("strip_right", default: true))
        default:
            throw TokenizerError.unsupported(component: "normalizer", detail: "type \(type)")
        }
    }

    /// `{"String": "..."}` patterns; regex patterns are not supported in Replace.
    static func stringPattern(_ json: TokenizerJSON, component: String) throws -> String {
        guard let pattern = json["pattern"] as? [String: Any] else {
            throw TokenizerError.malformed(file: json.file, detail: "\(component) has no pattern")
        }
        if let text = pattern["String"] as? String { return text }
        throw TokenizerError.unsupported(component: component,
                                         detail: "regex pattern \(String(describing: pattern["Regex"] ?? pattern))")
    }

    func apply(_ text: AlignedText) -> AlignedText {
        switch self {
        case .sequence(let steps):
            return steps.reduce(text) { $1.apply($0) }
        case .prepend(let prefix):
            // Like tokenizers: only non-empty text gets the prefix, aligned with the first character.
            guard !text.isEmpty else { return text }
            var result = AlignedText.empty(origin: text.origin)
            for scalar in prefix.unicodeScalars { result.append(scalar, start: text.starts[0], end: text.ends[0]) }
            result.scalars += text.scalars
            result.starts += text.starts
            result.ends += text.ends
            return result
        case .replace(let pattern, let content):
            return Self.replace(text, pattern: Array(pattern.unicodeScalars), content: Array(content.unicodeScalars))
        case .nfc: return Self.unicodeNormalize(text, invariantBelow: 0x300) { $0.precomposedStringWithCanonicalMapping }
        case .nfd: return Self.unicodeNormalize(text, invariantBelow: 0xC0) { $0.decomposedStringWithCanonicalMapping }
        case .nfkc: return Self.unicodeNormalize(text, invariantBelow: 0xA0) { $0.precomposedStringWithCompatibilityMapping }
        case .nfkd: return Self.unicodeNormalize(text, invariantBelow: 0xA0) { $0.decomposedStringWithCompatibilityMapping }
        case .lowercase:
            var result = AlignedText.empty(origin: text.origin)
            for i in 0..<text.count {
                for scalar in text.scalars[i].properties.lowercaseMapping.unicodeScalars {
                    result.append(scalar, start: text.starts[i], end: text.ends[i])
                }
            }
            return result
        case .strip(let left, let right):
            var low = 0, high = text.count
            if left { while low < high && TokenizerUnicode.isWhitespace(text.scalars[low]) { low += 1 } }
            if right { while high > low && TokenizerUnicode.isWhitespace(text.scalars[high - 1]) { high -= 1 } }
            return text[low..<high]
        }
    }

    /// Normalizes a plain string (added tokens with `normalized: true` are matched in normalized form).
    func apply(_ text: String) -> String { apply(AlignedText(text)).string }

    private static func replace(_ text: AlignedText, pattern: [Unicode.Scalar], content: [Unicode.Scalar]) -> AlignedText {
        guard !pattern.isEmpty, text.count >= pattern.count else { return text }
        var result = AlignedText.empty(origin: text.origin)
        var i = 0
        while i < text.count {
            if text.scalars[i] == pattern[0], i + pattern.count <= text.count,
               text.scalars[i..<(i + pattern.count)].elementsEqual(pattern) {
                let span = text.span(i..<(i + pattern.count))
                for scalar in content { result.append(scalar, start: span.lowerBound, end: span.upperBound) }
                i += pattern.count
            } else {
                result.append(text.scalars[i], start: text.starts[i], end: text.ends[i])
                i += 1
            }
        }
        return result
    }

    /// Unicode normalization applied per chunk: a scalar below `limit` (or the text start) and the
    /// scalars at or above `limit` after it. Scalars below the limit are their own normalization in this
    /// form (NFC: below U+0300; NFD: below U+00C0; NFKC/NFKD: below U+00A0), and every combining mark and
    /// every second element of a canonical composition is at or above U+0300, so chunks normalize
    /// independently. Output scalars stay aligned with their chunk; single-scalar chunks below the limit
    /// are copied as they are.
    private static func unicodeNormalize(_ text: AlignedText, invariantBelow limit: UInt32,
                                         _ transform: (String) -> String) -> AlignedText {
        if text.scalars.allSatisfy({ $0.value < limit }) { return text }
        var result = AlignedText.empty(origin: text.origin)
        result.scalars.reserveCapacity(text.count)
        var i = 0
        while i < text.count {
            var j = i + 1
            while j < text.count && text.scalars[j].value >= limit { j += 1 }
            if j == i + 1 && text.scalars[i].value < limit {
                result.append(text.scalars[i], start: text.starts[i], end: text.ends[i])
            } else {
                let span = text.span(i..<j)
                let chunk = String(String.UnicodeScalarView(text.scalars[i..<j]))
                for scalar in transform(chunk).unicodeScalars {
                    result.append(scalar, start: span.lowerBound, end: span.upperBound)
                }
            }
            i = j
        }
        return result
    }
}
