/// The pre-tokenizer regexes of the tokenizers Mirage supports, as hand-written scanners over Unicode
/// scalars. Each returns the same matches as the regex (leftmost-first alternation, greedy with
/// backtracking), without a regex engine: faster, and exact where Foundation's regex differs from
/// Oniguruma (which `tokenizers` uses).
enum TokenizerPattern: Sendable, Equatable {
    /// GPT-2 (the ByteLevel pre-tokenizer's built-in regex):
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2
    /// Qwen2 (`maxDigits` 1) and Llama-3 (`maxDigits` 3, i.e. `\p{N}{1,3}`):
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    case qwen2(maxDigits: Int)

    static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let qwen2Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let llama3Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The scanner for a regex written in tokenizer.json, or nil when it is not one Mirage knows.
    init?(regex: String) {
        switch regex {
        case Self.gpt2Regex: self = .gpt2
        case Self.qwen2Regex: self = .qwen2(maxDigits: 1)
        case Self.llama3Regex: self = .qwen2(maxDigits: 3)
        default: return nil
        }
    }

    /// All matches in `s`, in order (these patterns match every scalar, so the ranges tile `s`).
    func matches(_ s: [Unicode.Scalar]) -> [Range<Int>] {
        var result: [Range<Int>] = []
        var i = 0
        while i < s.count {
            let end: Int
            switch self {
            case .gpt2: end = Self.gpt2Match(s, at: i)
            case .qwen2(let maxDigits): end = Self.qwen2Match(s, at: i, maxDigits: maxDigits)
            }
            result.append(i..<end)
            i = end
        }
        return result
    }

    private typealias U = TokenizerUnicode

    @inline(__always) private static func isOther(_ c: Unicode.Scalar) -> Bool {
        !U.isWhitespace(c) && !U.isLetter(c) && !U.isNumber(c)
    }

    @inline(__always) private static func isNewline(_ c: Unicode.Scalar) -> Bool { c == "\r" || c == "\n" }

    /// Contraction suffix after an apostrophe at `i`: returns the end, or nil.
    private static func contraction(_ s: [Unicode.Scalar], at i: Int, caseInsensitive: Bool) -> Int? {
        guard s[i] == "'", i + 1 < s.count else { return nil }
        func letter(_ k: Int, _ lower: Unicode.Scalar) -> Bool {
            guard k < s.count else { return false }
            let c = s[k]
            if c == lower { return true }
            guard caseInsensitive else { return false }
            // Case folding: the uppercase letter, and U+017F LATIN SMALL LETTER LONG S folds to "s".
            if c.value == lower.value - 0x20 { return true }
            return lower == "s" && c.value == 0x17F
        }
        for single in ["s", "t", "m", "d"] as [Unicode.Scalar] where letter(i + 1, single) { return i + 2 }
        for (a, b) in [("r", "e"), ("v", "e"), ("l", "l")] as [(Unicode.Scalar, Unicode.Scalar)]
            where letter(i + 1, a) && letter(i + 2, b) {
            return i + 3
        }
        return nil
    }

    /// End of the whitespace run starting at `i`.
    @inline(__always) private static func whitespaceRun(_ s: [Unicode.Scalar], from i: Int) -> Int {
        var j = i
        while j < s.count && U.isWhitespace(s[j]) { j += 1 }
        return j
    }

    /// `\s+(?!\S)|\s+` at a whitespace scalar: the run, leaving its last scalar to the next word.
    @inline(__always) private static func trailingWhitespace(_ s: [Unicode.Scalar], at i: Int) -> Int {
        let j = whitespaceRun(s, from: i)
        if j == s.count || j - 1 == i { return j }
        return j - 1
    }

    private static func gpt2Match(_ s: [Unicode.Scalar], at i: Int) -> Int {
        let c = s[i]
        if let end = contraction(s, at: i, caseInsensitive: false) { return end }
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
        var start = i
        if c == " ", i + 1 < s.count { start = i + 1 }
        for kind in 0..<3 {
            @inline(__always) func matches(_ scalar: Unicode.Scalar) -> Bool {
                kind == 0 ? U.isLetter(scalar) : kind == 1 ? U.isNumber(scalar) : isOther(scalar)
            }
            var j = start
            while j < s.count && matches(s[j]) { j += 1 }
            if j > start { return j }
            if start != i {  // without the optional space
                var k = i
                while k < s.count && matches(s[k]) { k += 1 }
                if k > i { return k }
            }
        }
        // `\s+(?!\S)|\s+` (c is whitespace here)
        return trailingWhitespace(s, at: i)
    }

    private static func qwen2Match(_ s: [Unicode.Scalar], at i: Int, maxDigits: Int) -> Int {
        let c = s[i]
        if let end = contraction(s, at: i, caseInsensitive: true) { return end }
        // `[^\r\n\p{L}\p{N}]?\p{L}+`
        if U.isLetter(c) {
            var j = i + 1
            while j < s.count && U.isLetter(s[j]) { j += 1 }
            return j
        }
        if !isNewline(c) && !U.isNumber(c), i + 1 < s.count, U.isLetter(s[i + 1]) {
            var j = i + 2
            while j < s.count && U.isLetter(s[j]) { j += 1 }
            return j
        }
        // `\p{N}` / `\p{N}{1,3}`
        if U.isNumber(c) {
            var j = i + 1
            while j < s.count && j - i < maxDigits && U.isNumber(s[j]) { j += 1 }
            return j
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        let start = (c == " " && i + 1 < s.count && isOther(s[i + 1])) ? i + 1 : i
        if isOther(s[start]) {
            var j = start + 1
            while j < s.count && isOther(s[j]) { j += 1 }
            while j < s.count && isNewline(s[j]) { j += 1 }
            return j
        }
        // `\s*[\r\n]+`: up to the last newline of the whitespace run.
        let run = whitespaceRun(s, from: i)
        var lastNewline = -1
        for k in i..<run where isNewline(s[k]) { lastNewline = k }
        if lastNewline >= 0 { return lastNewline + 1 }
        // `\s+(?!\S)|\s+`
        return trailingWhitespace(s, at: i)
    }
}
