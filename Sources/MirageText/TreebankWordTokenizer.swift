// NLTK 3.8.1's `NLTKWordTokenizer.tokenize` (nltk/tokenize/destructive.py), the improved Treebank
// tokenizer `word_tokenize` applies to each sentence, with `convert_parentheses=False`. NLTK runs a list
// of `re.sub` rewrites that pad tokens with spaces and then splits on whitespace; each rewrite is a
// hand-written pass here, in the same order, with the regex it reproduces quoted above it. Every pass
// reads the previous pass's output and looks only at that input (lookbehinds and `\b` included).

/// The improved Treebank word tokenizer of NLTK 3.8.1 (`NLTKWordTokenizer`), for one sentence.
struct TreebankWordTokenizer: Sendable {
    /// Appends the tokens of one sentence to `tokens`.
    func tokenize(_ sentence: ArraySlice<Scalar>, into tokens: inout [String]) {
        var a = Array(sentence)
        var b: [Scalar] = []
        a.reserveCapacity(sentence.count * 2 + 8)
        b.reserveCapacity(sentence.count * 2 + 8)
        // Which rule families can fire at all (later passes only add spaces and these characters).
        var hasApostrophe = false, hasBacktick = false, hasQuote = false, hasPeriod = false, hasDash = false
        for c in a {
            switch c {
            case "'": hasApostrophe = true
            case "`": hasBacktick = true
            case "\"": hasQuote = true
            case ".": hasPeriod = true
            case "-": hasDash = true
            default: break
            }
        }

        // STARTING_QUOTES
        // ([«“‘„]|[`]+) -> " \1 "
        Self.substitute(&a, &b, Self.openingQuote)
        // ^\" -> ``
        if a.first == "\"" {
            a[0] = "`"
            a.insert("`", at: 1)
            hasBacktick = true
        }
        // (``) -> " \1 "
        if hasBacktick { Self.substitute(&a, &b) { Self.repeated($0, $1, &$2, "`", run: false) } }
        // ([ \(\[{<])(\"|\'{2}) -> "\1 `` "
        if hasQuote || hasApostrophe { Self.substitute(&a, &b, Self.openingDoubleQuote) }
        // (?i)(\')(?!re|ve|ll|m|t|s|d|n)(\w)\b -> "\1 \2"
        if hasApostrophe { Self.substitute(&a, &b, Self.quotedLetter) }

        // PUNCTUATION
        // ([^\.])(\.)([\]\)}>"\'»”’ ]*)\s*$ -> "\1 \2 \3 "
        if hasPeriod { Self.finalPeriod(&a, closers: Self.isWideCloser, spaceAfterPeriod: true) }
        // ([:,])([^\d]) -> " \1 \2"
        Self.substitute(&a, &b, Self.commaOrColon)
        // ([:,])$ -> " \1 "   ($: at the end, or before a final newline)
        let dollar = a.last == "\n" ? a.count - 1 : a.count
        if dollar > 0 && (a[dollar - 1] == ":" || a[dollar - 1] == ",") {
            a.insert(" ", at: dollar)
            a.insert(" ", at: dollar - 1)
        }
        // \.{2,} -> " \g<0> "
        if hasPeriod { Self.substitute(&a, &b) { Self.repeated($0, $1, &$2, ".", run: true) } }
        // [;@#$%&] -> " \g<0> "
        Self.padEach(&a, &b, Self.isSymbol)
        // ([^\.])(\.)([\]\)}>"\']*)\s*$ -> "\1 \2\3 "
        if hasPeriod { Self.finalPeriod(&a, closers: Self.isCloser, spaceAfterPeriod: false) }
        // [?!] -> " \g<0> "
        Self.padEach(&a, &b) { $0 == "?" || $0 == "!" }
        // ([^'])' -> "\1 ' "
        if hasApostrophe { Self.substitute(&a, &b, Self.closingApostrophe) }
        // [*] -> " \g<0> "
        Self.padEach(&a, &b) { $0 == "*" }

        // PARENS_BRACKETS: [\]\[\(\)\{\}\<\>] -> " \g<0> "
        Self.padEach(&a, &b, Self.isBracket)
        // DOUBLE_DASHES: -- -> " -- "
        if hasDash { Self.substitute(&a, &b) { Self.repeated($0, $1, &$2, "-", run: false) } }

        // text = " " + text + " "
        a.insert(" ", at: 0)
        a.append(" ")

        // ENDING_QUOTES
        // ([»”’]) -> " \1 "
        Self.padEach(&a, &b) { $0.value == 0xBB || $0.value == 0x201D || $0.value == 0x2019 }
        // '' -> " '' "  then  " -> " '' "
        if hasApostrophe { Self.substitute(&a, &b) { Self.repeated($0, $1, &$2, "'", run: false) } }
        if hasQuote { Self.substitute(&a, &b, Self.closingDoubleQuote) }
        if hasApostrophe || hasQuote {
            // ([^' ])('[sS]|'[mM]|'[dD]|') -> "\1 \2 "
            Self.substitute(&a, &b, Self.oneLetterClitic)
            // ([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) -> "\1 \2 "
            Self.substitute(&a, &b, Self.twoLetterClitic)
        }

        // CONTRACTIONS2, in order: (?i)\b(A)(B)\b -> " \1 \2 ", wanna ends in (?=\s)
        for (first, second) in Self.contractions where a.count >= first.count + second.count {
            Self.splitContraction(&a, &b, first: first, second: second, endsBeforeSpace: first == Self.wan)
        }
        // CONTRACTIONS3: (?i) ('t)(is)\b and (?i) ('t)(was)\b -> " \1 \2 "
        if hasApostrophe || hasQuote {
            Self.splitTis(&a, &b, word: Self.is)
            Self.splitTis(&a, &b, word: Self.was)
        }

        PyText.splitOnWhitespace(a, into: &tokens)
    }

    // MARK: The single-rule passes

    private static func isWideCloser(_ c: Scalar) -> Bool {
        switch c.value {
        case 0x5D, 0x29, 0x7D, 0x3E, 0x22, 0x27, 0xBB, 0x201D, 0x2019, 0x20: return true
        default: return false
        }
    }

    private static func isCloser(_ c: Scalar) -> Bool {
        switch c.value {
        case 0x5D, 0x29, 0x7D, 0x3E, 0x22, 0x27: return true
        default: return false
        }
    }

    private static func isSymbol(_ c: Scalar) -> Bool {
        switch c.value {
        case 0x3B, 0x40, 0x23, 0x24, 0x25, 0x26: return true
        default: return false
        }
    }

    private static func isBracket(_ c: Scalar) -> Bool {
        switch c.value {
        case 0x5D, 0x5B, 0x28, 0x29, 0x7B, 0x7D, 0x3C, 0x3E: return true
        default: return false
        }
    }

    /// One left-to-right `re.sub` over `a` into `b` (then swapped): at each position `match` either
    /// appends the replacement of a match starting there and returns its length, or returns 0 and the
    /// character is copied. Matchers read only the input, as Python's lookarounds do.
    @inline(__always)
    private static func substitute(_ a: inout [Scalar], _ b: inout [Scalar],
                                   _ match: (_ t: [Scalar], _ i: Int, _ out: inout [Scalar]) -> Int) {
        b.removeAll(keepingCapacity: true)
        var i = 0
        while i < a.count {
            let consumed = match(a, i, &b)
            if consumed > 0 {
                i += consumed
            } else {
                b.append(a[i])
                i += 1
            }
        }
        swap(&a, &b)
    }

    /// `([«“‘„]|[`]+)` -> `" \1 "`
    private static func openingQuote(_ t: [Scalar], _ i: Int, _ out: inout [Scalar]) -> Int {
        let c = t[i].value
        if c == 0xAB || c == 0x201C || c == 0x2018 || c == 0x201E {
            out.pad(t[i])
            return 1
        }
        guard c == 0x60 else { return 0 }
        var e = i + 1
        while e < t.count && t[e] == "`" { e += 1 }
        out.pad(t[i..<e])
        return e - i
    }

    /// `cc` (or `c{2,}` when `run`) -> `" \g<0> "`
    @inline(__always)
    private static func repeated(_ t: [Scalar], _ i: Int, _ out: inout [Scalar], _ c: Scalar, run: Bool) -> Int {
        guard t[i] == c && i + 1 < t.count && t[i + 1] == c else { return 0 }
        var e = i + 2
        if run { while e < t.count && t[e] == c { e += 1 } }
        out.pad(t[i..<e])
        return e - i
    }

    /// `([ \(\[{<])(\"|\'{2})` -> `"\1 `` "`
    private static func openingDoubleQuote(_ t: [Scalar], _ i: Int, _ out: inout [Scalar]) -> Int {
        let c = t[i].value
        guard (c == 0x20 || c == 0x28 || c == 0x5B || c == 0x7B || c == 0x3C) && i + 1 < t.count else { return 0 }
        var quote = 0
        if t[i + 1] == "\"" {
            quote = 1
        } else if t[i + 1] == "'" && i + 2 < t.count && t[i + 2] == "'" {
            quote = 2
        }
        guard quote > 0 else { return 0 }
        out.append(t[i])
        out.pad(Self.twoBackticks[...])
        return 1 + quote
    }

    /// `(?i)(\')(?!re|ve|ll|m|t|s|d|n)(\w)\b` -> `"\1 \2"`. A two-letter exclusion cannot be followed by
    /// `\b` after its first letter, so only the one-letter exclusions matter.
    private static func quotedLetter(_ t: [Scalar], _ i: Int, _ out: inout [Scalar]) -> Int {
        guard t[i] == "'" && i + 1 < t.count else { return 0 }
        let w = t[i + 1]
        guard PyText.isWord(w) && (i + 2 == t.count || !PyText.isWord(t[i + 2])) else { return 0 }
        switch w.value {
        case 0x6D, 0x4D, 0x74, 0x54, 0x73, 0x53, 0x17F, 0x64, 0x44, 0x6E, 0x4E: return 0  // m t s(ſ) d n, any case
        default: break
        }
        out.append("'")
        out.append(" ")
        out.append(w)
        return 2
    }

    /// `([:,])([^\d])` -> `" \1 \2"`
    private static func commaOrColon(_ t: [Scalar], _ i: Int, _ out: inout [Scalar]) -> Int {
        let c = t[i]
        guard (c == ":" || c == ",") && i + 1 < t.count && !PyText.isDecimal(t[i + 1]) else { return 0 }
        out.pad(c)
        out.append(t[i + 1])
        return 2
    }

    /// `([^'])' ` -> `"\1 ' "`
    private static func closingApostrophe(_ t: [Scalar], _ i: Int, _ out: inout [Scalar]) -> Int {
        guard t[i] != "'" && i + 2 < t.count && t[i + 1] == "'" && t[i + 2] == " " else { return 0 }
        out.append(t[i])
        out.pad("'")
        return 3
    }

    /// `"` -> `" '' "`
    private static func closingDoubleQuote(_ t: [Scalar], _ i: Int, _ out: inout [Scalar]) -> Int {
        guard t[i] == "\"" else { return 0 }
        out.pad(Self.twoApostrophes[...])
        return 1
    }

    /// `([^' ])('[sS]|'[mM]|'[dD]|') ` -> `"\1 \2 "`
    private static func oneLetterClitic(_ t: [Scalar], _ i: Int, _ out: inout [Scalar]) -> Int {
        let c = t[i]
        guard c != "'" && c != " " && i + 2 < t.count && t[i + 1] == "'" else { return 0 }
        var clitic = 0
        if i + 3 < t.count && t[i + 3] == " " {
            switch t[i + 2] {
            case "s", "S", "m", "M", "d", "D": clitic = 2
            default: break
            }
        }
        if clitic == 0 && t[i + 2] == " " { clitic = 1 }
        guard clitic > 0 else { return 0 }
        out.append(c)
        out.pad(t[(i + 1)..<(i + 1 + clitic)])
        return clitic + 2
    }

    /// `([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ` -> `"\1 \2 "`
    private static func twoLetterClitic(_ t: [Scalar], _ i: Int, _ out: inout [Scalar]) -> Int {
        let c = t[i]
        guard c != "'" && c != " " && i + 4 < t.count && t[i + 4] == " "
            && isTwoLetterClitic(t[i + 1], t[i + 2], t[i + 3]) else { return 0 }
        out.append(c)
        out.pad(t[(i + 1)...(i + 3)])
        return 5
    }

    // MARK: Passes shared by several rules

    /// `re.sub(pattern, " \g<0> ")` for a one-character class.
    @inline(__always)
    private static func padEach(_ a: inout [Scalar], _ b: inout [Scalar], _ member: (Scalar) -> Bool) {
        guard a.contains(where: member) else { return }
        substitute(&a, &b) { t, i, out in
            guard member(t[i]) else { return 0 }
            out.pad(t[i])
            return 1
        }
    }

    /// `([^\.])(\.)([CLOSERS]*)\s*$` -> `\1 \2 \3 ` (or `\1 \2\3 `). The period must be the last one,
    /// not preceded by a period, and followed only by closers then whitespace up to the end.
    private static func finalPeriod(_ a: inout [Scalar], closers: (Scalar) -> Bool, spaceAfterPeriod: Bool) {
        // Walk back over the trailing whitespace, then over the closers.
        var j = a.count - 1
        while j >= 0 && PyText.isSpace(a[j]) { j -= 1 }
        while j >= 0 && closers(a[j]) { j -= 1 }
        guard j >= 1, a[j] == ".", a[j - 1] != "." else { return }
        // Group 3 is the greedy run of closers after the period; the whitespace after it is dropped.
        var e = j + 1
        while e < a.count && closers(a[e]) { e += 1 }
        var replaced: [Scalar] = spaceAfterPeriod ? [" ", ".", " "] : [" ", "."]
        replaced.append(contentsOf: a[(j + 1)..<e])
        replaced.append(" ")
        a.replaceSubrange(j..<a.count, with: replaced)
    }

    private static let twoBackticks: [Scalar] = ["`", "`"], twoApostrophes: [Scalar] = ["'", "'"]
    private static let wan = Array("wan".unicodeScalars)
    private static let `is` = Array("is".unicodeScalars), was = Array("was".unicodeScalars)
    private static let contractions: [([Scalar], [Scalar])] = [
        ("can", "not"), ("d", "'ye"), ("gim", "me"), ("gon", "na"), ("got", "ta"), ("lem", "me"),
        ("more", "'n"), ("wan", "na"),
    ].map { (Array($0.0.unicodeScalars), Array($0.1.unicodeScalars)) }

    /// `'ll 'LL 're 'RE 've 'VE n't N'T`
    private static func isTwoLetterClitic(_ x: Scalar, _ y: Scalar, _ z: Scalar) -> Bool {
        if x == "'" {
            return (y == "l" && z == "l") || (y == "L" && z == "L") || (y == "r" && z == "e")
                || (y == "R" && z == "E") || (y == "v" && z == "e") || (y == "V" && z == "E")
        }
        return (x == "n" && y == "'" && z == "t") || (x == "N" && y == "'" && z == "T")
    }

    /// Case-insensitive match of the lower-case ASCII `word` at `i` (apostrophes match themselves).
    @inline(__always)
    private static func matches(_ t: UnsafeBufferPointer<Scalar>, at i: Int, _ word: UnsafeBufferPointer<Scalar>) -> Bool {
        guard i + word.count <= t.count else { return false }
        for k in 0..<word.count where !PyText.caseInsensitiveEquals(t[i + k], word[k]) { return false }
        return true
    }

    /// `\b` at position `i` of `t`.
    @inline(__always)
    private static func isBoundary(_ t: UnsafeBufferPointer<Scalar>, _ i: Int) -> Bool {
        let before = i > 0 && PyText.isWord(t[i - 1])
        let after = i < t.count && PyText.isWord(t[i])
        return before != after
    }

    /// Start of the first match at or after `from` of `(?i)\b(first)(second)\b` (or `(?=\s)` at the end).
    private static func findContraction(_ t: UnsafeBufferPointer<Scalar>, from: Int, _ first: UnsafeBufferPointer<Scalar>,
                                        _ second: UnsafeBufferPointer<Scalar>, endsBeforeSpace: Bool) -> Int? {
        let length = first.count + second.count
        guard t.count >= length else { return nil }
        // Every contraction starts with a lower-case ASCII letter: skip other ASCII characters quickly.
        let lead = first[0].value
        var i = from
        while i <= t.count - length {
            defer { i += 1 }
            let v = t[i].value
            if v < 0x80 && v != lead && v != lead - 0x20 { continue }
            guard matches(t, at: i, first), isBoundary(t, i), matches(t, at: i + first.count, second) else { continue }
            let end = i + length
            if endsBeforeSpace ? end < t.count && PyText.isSpace(t[end]) : isBoundary(t, end) { return i }
        }
        return nil
    }

    /// `(?i)\b(first)(second)\b` (or `(?=\s)` at the end) -> " \1 \2 ".
    private static func splitContraction(_ a: inout [Scalar], _ b: inout [Scalar], first: [Scalar], second: [Scalar],
                                         endsBeforeSpace: Bool) {
        let found: Bool = a.withUnsafeBufferPointer { t in
            first.withUnsafeBufferPointer { f in
                second.withUnsafeBufferPointer { s in
                    var i = 0
                    var output = false
                    while let m = findContraction(t, from: i, f, s, endsBeforeSpace: endsBeforeSpace) {
                        if !output {
                            b.removeAll(keepingCapacity: true)
                            output = true
                        }
                        b.append(contentsOf: t[i..<m])
                        b.append(" ")
                        b.append(contentsOf: t[m..<(m + f.count)])
                        b.append(" ")
                        b.append(contentsOf: t[(m + f.count)..<(m + f.count + s.count)])
                        b.append(" ")
                        i = m + f.count + s.count
                    }
                    if output { b.append(contentsOf: t[i...]) }
                    return output
                }
            }
        }
        if found { swap(&a, &b) }
    }

    /// `(?i) ('t)(is)\b` / `(?i) ('t)(was)\b` -> " \1 \2 ".
    private static func splitTis(_ a: inout [Scalar], _ b: inout [Scalar], word: [Scalar]) {
        let found: Bool = a.withUnsafeBufferPointer { t in
            word.withUnsafeBufferPointer { w in
                let length = 3 + w.count
                func matchesAt(_ i: Int) -> Bool {
                    i + length <= t.count && t[i] == " " && t[i + 1] == "'"
                        && PyText.caseInsensitiveEquals(t[i + 2], "t")
                        && matches(t, at: i + 3, w) && isBoundary(t, i + length)
                }
                guard (0..<t.count).contains(where: matchesAt) else { return false }
                b.removeAll(keepingCapacity: true)
                var i = 0
                while i < t.count {
                    if matchesAt(i) {
                        b.append(" ")
                        b.append("'")
                        b.append(t[i + 2])
                        b.append(" ")
                        b.append(contentsOf: t[(i + 3)..<(i + length)])
                        b.append(" ")
                        i += length
                    } else {
                        b.append(t[i])
                        i += 1
                    }
                }
                return true
            }
        }
        if found { swap(&a, &b) }
    }
}

extension Array where Element == Unicode.Scalar {
    /// Appends `" " + c + " "`.
    @inline(__always)
    mutating func pad(_ c: Unicode.Scalar) {
        append(" ")
        append(c)
        append(" ")
    }

    @inline(__always)
    mutating func pad(_ s: ArraySlice<Unicode.Scalar>) {
        append(" ")
        append(contentsOf: s)
        append(" ")
    }
}
