/// A token matched in the text before the model runs (tokenizer.json `added_tokens`, plus the special
/// tokens tokenizer_config.json names).
public struct TokenizerAddedToken: Sendable, Equatable {
    public var id: Int
    public var content: String
    /// Matches only when not inside a word (`\w` on neither side).
    public var singleWord: Bool
    /// Swallows the whitespace on its left / right.
    public var lstrip: Bool
    public var rstrip: Bool
    /// Matched in the normalized text (true) or in the raw text (false).
    public var normalized: Bool
    /// Skipped by `decode(skipSpecialTokens: true)`.
    public var special: Bool

    public init(id: Int, content: String, singleWord: Bool = false, lstrip: Bool = false, rstrip: Bool = false,
                normalized: Bool = false, special: Bool = true) {
        self.id = id
        self.content = content
        self.singleWord = singleWord
        self.lstrip = lstrip
        self.rstrip = rstrip
        self.normalized = normalized
        self.special = special
    }

    init(_ json: TokenizerJSON, id: Int) throws {
        self.init(id: id, content: try json.requireString("content", in: "added token"),
                  singleWord: json.bool("single_word", default: false), lstrip: json.bool("lstrip", default: false),
                  rstrip: json.bool("rstrip", default: false), normalized: json.bool("normalized", default: true),
                  special: json.bool("special", default: false))
    }
}

/// A piece of text after added-token extraction.
enum TokenizerSegment {
    case text(AlignedText)
    case token(id: Int, span: Range<Int>)
}

/// Finds added tokens leftmost-longest, non-overlapping (like tokenizers' Aho-Corasick matcher), then
/// applies each token's `single_word`, `lstrip` and `rstrip`.
struct AddedTokenMatcher: Sendable {
    private struct Pattern: Sendable {
        var scalars: [Unicode.Scalar]
        var token: TokenizerAddedToken
    }
    /// Patterns by first scalar, longest first.
    private let byFirstScalar: [Unicode.Scalar: [Pattern]]
    /// Whether some pattern starts with this ASCII scalar / with any non-ASCII scalar.
    private let asciiFirst: [Bool]
    private let anyNonASCIIFirst: Bool

    var isEmpty: Bool { byFirstScalar.isEmpty }

    /// `content` overrides what is searched for (normalized tokens are searched in normalized form).
    init(_ tokens: [(TokenizerAddedToken, String)]) {
        var table: [Unicode.Scalar: [Pattern]] = [:]
        for (token, content) in tokens {
            let scalars = Array(content.unicodeScalars)
            guard let first = scalars.first else { continue }
            table[first, default: []].append(Pattern(scalars: scalars, token: token))
        }
        for key in table.keys { table[key]!.sort { $0.scalars.count > $1.scalars.count } }
        byFirstScalar = table
        asciiFirst = (0..<128).map { table[Unicode.Scalar(UInt8($0))] != nil }
        anyNonASCIIFirst = table.keys.contains { $0.value >= 128 }
    }

    func split(_ text: AlignedText, into result: inout [TokenizerSegment]) {
        guard !isEmpty else {
            if !text.isEmpty { result.append(.text(text)) }
            return
        }
        let s = text.scalars
        var cursor = 0  // end of the previous accepted match
        var i = 0
        while i < s.count {
            let value = s[i].value
            guard value < 128 ? asciiFirst[Int(value)] : anyNonASCIIFirst,
                  let candidates = byFirstScalar[s[i]],
                  let pattern = candidates.first(where: { p in
                      i + p.scalars.count <= s.count && s[i..<(i + p.scalars.count)].elementsEqual(p.scalars)
                  }) else {
                i += 1
                continue
            }
            var start = i, stop = i + pattern.scalars.count
            i = stop
            let token = pattern.token
            if token.singleWord {
                let wordBefore = start > 0 && TokenizerUnicode.isWordCharacter(s[start - 1])
                let wordAfter = stop < s.count && TokenizerUnicode.isWordCharacter(s[stop])
                if wordBefore || wordAfter { continue }
            }
            if token.lstrip {
                var k = start
                while k > cursor && TokenizerUnicode.isWhitespace(s[k - 1]) { k -= 1 }
                start = k
            }
            if token.rstrip {
                while stop < s.count && TokenizerUnicode.isWhitespace(s[stop]) { stop += 1 }
                i = stop
            }
            if cursor < start { result.append(.text(text[cursor..<start])) }
            result.append(.token(id: token.id, span: text.span(start..<stop)))
            cursor = stop
        }
        if cursor < s.count { result.append(.text(text[cursor..<s.count])) }
    }
}
