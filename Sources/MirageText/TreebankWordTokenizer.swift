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
        @inline(__always) func run(_ pass: (_ input: [Scalar], _ out: inout [Scalar]) -> Void) {
            b.removeAll(keepingCapacity: true)
            pass(a, &b)
            swap(&a, &b)
        }

        // STARTING_QUOTES
        // ([«“‘„]|[`]+) -> " \1 "
        run { t, out in
            var i = 0
            while i < t.count {
                let c = t[i].value
                if c == 0xAB || c == 0x201C || c == 0x2018 || c == 0x201E {
                    out.pad(t[i])
                    i += 1
                } else if c == 0x60 {
                    var e = i + 1
                    while e < t.count && t[e] == "`" { e += 1 }
                    out.pad(t[i..<e])
                    i = e
                } else {
                    out.append(t[i])
                    i += 1
                }
            }
        }
        // ^\" -> ``
        if a.first == "\"" { a.replaceSubrange(0..<1, with: ["`", "`"]) }
        // (``) -> " \1 "
        if a.contains("`") {
            run { t, out in
                var i = 0
                while i < t.count {
                    if t[i] == "`" && i + 1 < t.count && t[i + 1] == "`" {
                        out.pad(t[i..<(i + 2)])
                        i += 2
                    } else {
                        out.append(t[i])
                        i += 1
                    }
                }
            }
        }
        // ([ \(\[{<])(\"|\'{2}) -> "\1 `` "
        run { t, out in
            var i = 0
            while i < t.count {
                let c = t[i].value
                if (c == 0x20 || c == 0x28 || c == 0x5B || c == 0x7B || c == 0x3C) && i + 1 < t.count {
                    var quote = 0
                    if t[i + 1] == "\"" {
                        quote = 1
                    } else if t[i + 1] == "'" && i + 2 < t.count && t[i + 2] == "'" {
                        quote = 2
                    }
                    if quote > 0 {
                        out.append(t[i])
                        out.append(contentsOf: [" ", "`", "`", " "])
                        i += 1 + quote
                        continue
                    }
                }
                out.append(t[i])
                i += 1
            }
        }
        // (?i)(\')(?!re|ve|ll|m|t|s|d|n)(\w)\b -> "\1 \2"
        // (A two-letter clitic cannot be followed by \b after one letter, so only the one-letter
        // exclusions matter.)
        if a.contains("'") {
            run { t, out in
                var i = 0
                while i < t.count {
                    if t[i] == "'" && i + 1 < t.count {
                        let w = t[i + 1]
                        if PyText.isWord(w) && (i + 2 == t.count || !PyText.isWord(t[i + 2]))
                            && !"mtsdn".unicodeScalars.contains(where: { PyText.caseInsensitiveEquals(w, $0) }) {
                            out.append(contentsOf: ["'", " ", w])
                            i += 2
                            continue
                        }
                    }
                    out.append(t[i])
                    i += 1
                }
            }
        }

        // PUNCTUATION
        // ([^\.])(\.)([\]\)}>"\'»”’ ]*)\s*$ -> "\1 \2 \3 "
        finalPeriod(&a, closers: { c in
            switch c.value {
            case 0x5D, 0x29, 0x7D, 0x3E, 0x22, 0x27, 0xBB, 0x201D, 0x2019, 0x20: return true
            default: return false
            }
        }, spaceAfterPeriod: true)
        // ([:,])([^\d]) -> " \1 \2"
        run { t, out in
            var i = 0
            while i < t.count {
                let c = t[i]
                if (c == ":" || c == ",") && i + 1 < t.count && !PyText.isDecimal(t[i + 1]) {
                    out.append(contentsOf: [" ", c, " ", t[i + 1]])
                    i += 2
                } else {
                    out.append(c)
                    i += 1
                }
            }
        }
        // ([:,])$ -> " \1 "   ($: at the end, or before a final newline)
        if let p = a.dollarPositions.first(where: { $0 > 0 && (a[$0 - 1] == ":" || a[$0 - 1] == ",") }) {
            a.replaceSubrange((p - 1)..<p, with: [" ", a[p - 1], " "])
        }
        // \.{2,} -> " \g<0> "
        if a.contains(".") {
            run { t, out in
                var i = 0
                while i < t.count {
                    if t[i] == "." && i + 1 < t.count && t[i + 1] == "." {
                        var e = i + 2
                        while e < t.count && t[e] == "." { e += 1 }
                        out.pad(t[i..<e])
                        i = e
                    } else {
                        out.append(t[i])
                        i += 1
                    }
                }
            }
        }
        // [;@#$%&] -> " \g<0> "
        padEach(&a, &b) { c in
            switch c.value {
            case 0x3B, 0x40, 0x23, 0x24, 0x25, 0x26: return true
            default: return false
            }
        }
        // ([^\.])(\.)([\]\)}>"\']*)\s*$ -> "\1 \2\3 "
        finalPeriod(&a, closers: { c in
            switch c.value {
            case 0x5D, 0x29, 0x7D, 0x3E, 0x22, 0x27: return true
            default: return false
            }
        }, spaceAfterPeriod: false)
        // [?!] -> " \g<0> "
        padEach(&a, &b) { $0 == "?" || $0 == "!" }
        // ([^'])' -> "\1 ' "
        if a.contains("'") {
            run { t, out in
                var i = 0
                while i < t.count {
                    if t[i] != "'" && i + 2 < t.count && t[i + 1] == "'" && t[i + 2] == " " {
                        out.append(contentsOf: [t[i], " ", "'", " "])
                        i += 3
                    } else {
                        out.append(t[i])
                        i += 1
                    }
                }
            }
        }
        // [*] -> " \g<0> "
        padEach(&a, &b) { $0 == "*" }

        // PARENS_BRACKETS: [\]\[\(\)\{\}\<\>] -> " \g<0> "
        padEach(&a, &b) { c in
            switch c.value {
            case 0x5D, 0x5B, 0x28, 0x29, 0x7B, 0x7D, 0x3C, 0x3E: return true
            default: return false
            }
        }
        // DOUBLE_DASHES: -- -> " -- "
        if a.contains("-") {
            run { t, out in
                var i = 0
                while i < t.count {
                    if t[i] == "-" && i + 1 < t.count && t[i + 1] == "-" {
                        out.pad(t[i..<(i + 2)])
                        i += 2
                    } else {
                        out.append(t[i])
                        i += 1
                    }
                }
            }
        }

        // text = " " + text + " "
        a.insert(" ", at: 0)
        a.append(" ")

        // ENDING_QUOTES
        // ([»”’]) -> " \1 "
        padEach(&a, &b) { $0.value == 0xBB || $0.value == 0x201D || $0.value == 0x2019 }
        // '' -> " '' "  and  " -> " '' "
        if a.contains("'") || a.contains("\"") {
            run { t, out in
                var i = 0
                while i < t.count {
                    if t[i] == "'" && i + 1 < t.count && t[i + 1] == "'" {
                        out.append(contentsOf: [" ", "'", "'", " "])
                        i += 2
                    } else {
                        out.append(t[i])
                        i += 1
                    }
                }
            }
            run { t, out in
                for c in t {
                    if c == "\"" { out.append(contentsOf: [" ", "'", "'", " "]) } else { out.append(c) }
                }
            }
        }
        if a.contains("'") {
            // ([^' ])('[sS]|'[mM]|'[dD]|') -> "\1 \2 "
            run { t, out in
                var i = 0
                while i < t.count {
                    let c = t[i]
                    if c != "'" && c != " " && i + 2 < t.count && t[i + 1] == "'" {
                        var clitic = 0
                        if i + 3 < t.count && "sSmMdD".unicodeScalars.contains(t[i + 2]) && t[i + 3] == " " {
                            clitic = 2
                        } else if t[i + 2] == " " {
                            clitic = 1
                        }
                        if clitic > 0 {
                            out.append(c)
                            out.append(" ")
                            out.append(contentsOf: t[(i + 1)..<(i + 1 + clitic)])
                            out.append(" ")
                            i += clitic + 2
                            continue
                        }
                    }
                    out.append(c)
                    i += 1
                }
            }
            // ([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) -> "\1 \2 "
            run { t, out in
                var i = 0
                while i < t.count {
                    let c = t[i]
                    if c != "'" && c != " " && i + 4 < t.count && t[i + 4] == " "
                        && TreebankWordTokenizer.isTwoLetterClitic(t[i + 1], t[i + 2], t[i + 3]) {
                        out.append(c)
                        out.append(" ")
                        out.append(contentsOf: t[(i + 1)...(i + 3)])
                        out.append(" ")
                        i += 5
                        continue
                    }
                    out.append(c)
                    i += 1
                }
            }
        }

        // CONTRACTIONS2, in order: (?i)\b(A)(B)\b -> " \1 \2 ", wanna ends in (?=\s)
        for (first, second) in TreebankWordTokenizer.contractions where a.count >= first.count + second.count {
            splitContraction(&a, &b, first: first, second: second, endsBeforeSpace: first == Self.wan)
        }
        // CONTRACTIONS3: (?i) ('t)(is)\b and (?i) ('t)(was)\b -> " \1 \2 "
        if a.contains("'") {
            for word in [Self.is, Self.was] { splitTis(&a, &b, word: word) }
        }

        PyText.splitOnWhitespace(a, into: &tokens)
    }

    // MARK: Passes shared by several rules

    /// `re.sub(pattern, " \g<0> ")` for a one-character class.
    private func padEach(_ a: inout [Scalar], _ b: inout [Scalar], _ member: (Scalar) -> Bool) {
        guard let first = a.firstIndex(where: member) else { return }
        b.removeAll(keepingCapacity: true)
        b.append(contentsOf: a[..<first])
        for c in a[first...] {
            if member(c) { b.pad(c) } else { b.append(c) }
        }
        swap(&a, &b)
    }

    /// `([^\.])(\.)([CLOSERS]*)\s*$` -> `\1 \2 \3 ` (or `\1 \2\3 `). The period must be the last one,
    /// not preceded by a period, and followed only by closers then whitespace up to the end.
    private func finalPeriod(_ a: inout [Scalar], closers: (Scalar) -> Bool, spaceAfterPeriod: Bool) {
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

    private static let can = Array("can".unicodeScalars), not = Array("not".unicodeScalars)
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
    private static func matches(_ t: [Scalar], at i: Int, _ word: [Scalar]) -> Bool {
        guard i + word.count <= t.count else { return false }
        for k in word.indices where !PyText.caseInsensitiveEquals(t[i + k], word[k]) { return false }
        return true
    }

    /// `\b` at position `i` of `t`.
    @inline(__always)
    private static func isBoundary(_ t: [Scalar], _ i: Int) -> Bool {
        let before = i > 0 && PyText.isWord(t[i - 1])
        let after = i < t.count && PyText.isWord(t[i])
        return before != after
    }

    /// `(?i)\b(first)(second)\b` (or `(?=\s)` at the end) -> " \1 \2 ".
    private func splitContraction(_ a: inout [Scalar], _ b: inout [Scalar], first: [Scalar], second: [Scalar],
                                  endsBeforeSpace: Bool) {
        let length = first.count + second.count
        func matchesAt(_ i: Int) -> Bool {
            guard Self.isBoundary(a, i), Self.matches(a, at: i, first), Self.matches(a, at: i + first.count, second)
            else { return false }
            let end = i + length
            return endsBeforeSpace ? end < a.count && PyText.isSpace(a[end]) : Self.isBoundary(a, end)
        }
        guard let firstMatch = (0...(a.count - length)).first(where: matchesAt) else { return }
        b.removeAll(keepingCapacity: true)
        b.append(contentsOf: a[..<firstMatch])
        var i = firstMatch
        while i < a.count {
            if i + length <= a.count && matchesAt(i) {
                b.append(" ")
                b.append(contentsOf: a[i..<(i + first.count)])
                b.append(" ")
                b.append(contentsOf: a[(i + first.count)..<(i + length)])
                b.append(" ")
                i += length
            } else {
                b.append(a[i])
                i += 1
            }
        }
        swap(&a, &b)
    }

    /// `(?i) ('t)(is)\b` / `(?i) ('t)(was)\b` -> " \1 \2 ".
    private func splitTis(_ a: inout [Scalar], _ b: inout [Scalar], word: [Scalar]) {
        let length = 3 + word.count
        func matchesAt(_ i: Int) -> Bool {
            i + length <= a.count && a[i] == " " && a[i + 1] == "'" && PyText.caseInsensitiveEquals(a[i + 2], "t")
                && Self.matches(a, at: i + 3, word) && Self.isBoundary(a, i + length)
        }
        guard a.indices.contains(where: matchesAt) else { return }
        b.removeAll(keepingCapacity: true)
        var i = 0
        while i < a.count {
            if matchesAt(i) {
                b.append(contentsOf: [" ", "'", a[i + 2], " "])
                b.append(contentsOf: a[(i + 3)..<(i + length)])
                b.append(" ")
                i += length
            } else {
                b.append(a[i])
                i += 1
            }
        }
        swap(&a, &b)
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

    /// Where Python's `$` (without MULTILINE) matches: at the end, and before a final newline.
    var dollarPositions: [Int] {
        last == "\n" ? [count - 1, count] : [count]
    }
}
