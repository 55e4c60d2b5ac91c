// NLTK 3.8.1's Punkt sentence tokenizer (`nltk/tokenize/punkt.py`: `PunktSentenceTokenizer.tokenize`
// with the default `PunktLanguageVars` and `realign_boundaries=True`), re-implemented as hand-written
// scanners over Unicode scalars. The regular expressions it reproduces are quoted next to each scanner;
// their behaviour (Python `re` semantics, Unicode `\s` and `\w`) is what is carried over.

/// Splits text into sentences exactly as NLTK 3.8.1's `sent_tokenize` does with the given parameters
/// (`PunktSentenceTokenizer(params).tokenize(text)`): candidate boundaries are `.`, `?` and `!` followed
/// by punctuation or whitespace; each is decided from the tokens around it with the abbreviation list,
/// collocations, frequent sentence starters and the orthographic heuristic; closing quotes and brackets
/// after a boundary stay with the sentence they close.
public struct PunktSentenceTokenizer: Sendable {
    public let parameters: PunktParameters

    public init(parameters: PunktParameters) {
        self.parameters = parameters
    }

    /// The sentences of `text`, as substrings of it (whitespace between sentences is dropped).
    public func sentences(_ text: String) -> [String] {
        let scalars = PyText.scalars(text)
        return sentenceSpans(scalars).map { PyText.makeString(scalars[$0]) }
    }

    /// Sentence spans as scalar offsets into `t` (Python's `span_tokenize`; possibly empty ranges).
    func sentenceSpans(_ t: [Scalar]) -> [Range<Int>] {
        // _slices_from_text: Python slices, kept as (start, stop) pairs since start may pass stop.
        var slices: [(start: Int, stop: Int)] = []
        var lastBreak = 0
        for candidate in potentialEndContexts(t) where containsSentenceBreak(t[candidate.context]) {
            slices.append((lastBreak, candidate.matchEnd))
            lastBreak = candidate.nextTokenStart ?? candidate.matchEnd
        }
        var end = t.count
        while end > 0 && PyText.isSpace(t[end - 1]) { end -= 1 }
        slices.append((lastBreak, end))

        // _realign_boundaries
        var spans: [Range<Int>] = []
        var realign = 0
        for k in slices.indices {
            let s1 = (start: slices[k].start + realign, stop: slices[k].stop)
            if k == slices.count - 1 {
                if s1.start < s1.stop { spans.append(s1.start..<s1.stop) }
                continue
            }
            let s2 = slices[k + 1]
            if let (kept, consumed) = boundaryRealignment(t, from: s2.start, to: s2.stop) {
                let stop = s2.start + kept
                spans.append(s1.start..<max(stop, s1.start))
                realign = consumed
            } else {
                realign = 0
                if s1.start < s1.stop { spans.append(s1.start..<s1.stop) }
            }
        }
        return spans
    }

    // MARK: Candidate boundaries

    struct Candidate {
        var matchEnd: Int
        var nextTokenStart: Int?
        /// The word before the boundary, the boundary character and what follows it (`after_tok`).
        var context: Range<Int>
    }

    /// `_match_potential_end_contexts` over the matches of the period-context regex
    /// `[.?!](?=(?P<after_tok>NONWORD|\s+(?P<next_tok>\S+)))`, NONWORD = `[)";}\]*:@'({[!?]`.
    func potentialEndContexts(_ t: [Scalar]) -> [Candidate] {
        var result: [Candidate] = []
        var previous: (start: Int, stop: Int) = (0, 0)
        var previousMatch: (start: Int, afterEnd: Int, nextToken: Int?)? = nil
        let n = t.count
        var i = 0
        while i < n {
            defer { i += 1 }
            let c = t[i].value
            guard c == 0x2E || c == 0x3F || c == 0x21, i + 1 < n else { continue }
            var afterEnd: Int
            var nextToken: Int? = nil
            if Punkt.isNonWord(t[i + 1]) {
                afterEnd = i + 2
            } else if PyText.isSpace(t[i + 1]) {
                var j = i + 1
                while j < n && PyText.isSpace(t[j]) { j += 1 }
                guard j < n else { continue }
                nextToken = j
                afterEnd = j
                while afterEnd < n && !PyText.isSpace(t[afterEnd]) { afterEnd += 1 }
            } else {
                continue
            }
            // The word before the match starts after the last ASCII whitespace (`string.whitespace`)
            // since the previous match's word; a whitespace at offset 0 counts as none (NLTK quirk).
            var lastSpace = 0
            if previous.stop < i {
                var k = i - 1
                while k >= previous.stop {
                    if Punkt.isASCIIWhitespace(t[k]) { lastSpace = k - previous.stop; break }
                    k -= 1
                }
            }
            let wordStart = lastSpace > 0 ? lastSpace + previous.stop + 1 : previous.start
            if let pm = previousMatch, previous.stop <= wordStart {
                result.append(Candidate(matchEnd: pm.start + 1, nextTokenStart: pm.nextToken,
                                        context: previous.start..<pm.afterEnd))
            }
            previousMatch = (i, afterEnd, nextToken)
            previous = (wordStart, i)
        }
        if let pm = previousMatch {
            result.append(Candidate(matchEnd: pm.start + 1, nextTokenStart: pm.nextToken,
                                    context: previous.start..<pm.afterEnd))
        }
        return result
    }

    /// `re_boundary_realignment.match(text[start:stop])` for `["')\]}]+?(?:\s+|(?=--)|$)` (MULTILINE):
    /// the length of the closing punctuation to keep and the length consumed with its whitespace.
    func boundaryRealignment(_ t: [Scalar], from start: Int, to stop: Int) -> (kept: Int, consumed: Int)? {
        guard start < stop else { return nil }
        var k = start
        while k < stop {
            let c = t[k].value
            guard c == 0x22 || c == 0x27 || c == 0x29 || c == 0x5D || c == 0x7D else { return nil }
            k += 1
            if k == stop { return (k - start, k - start) }
            if PyText.isSpace(t[k]) {
                var e = k
                while e < stop && PyText.isSpace(t[e]) { e += 1 }
                return (k - start, e - start)
            }
            if t[k] == "-" && k + 1 < stop && t[k + 1] == "-" { return (k - start, k - start) }
        }
        return nil
    }

    // MARK: Deciding one candidate

    /// `text_contains_sentbreak`: whether any token but the last of `context` ends a sentence after both
    /// annotation passes.
    func containsSentenceBreak(_ context: ArraySlice<Scalar>) -> Bool {
        var tokens = Punkt.words(context).map { PunktToken($0) }
        for k in tokens.indices { firstPass(&tokens[k]) }
        guard tokens.count > 1 else { return false }
        for k in 0..<(tokens.count - 1) {
            secondPass(&tokens[k], next: tokens[k + 1])
            if tokens[k].sentenceBreak { return true }
        }
        return false
    }

    /// `_first_pass_annotation`: decisions from the token's own type.
    func firstPass(_ token: inout PunktToken) {
        let tok = token.text
        if tok.count == 1, let c = tok.first, c == "." || c == "?" || c == "!" {
            token.sentenceBreak = true
        } else if token.isEllipsis {
            token.ellipsis = true
        } else if token.periodFinal && !(tok.count >= 2 && tok[tok.endIndex - 2] == ".") {
            // tok[:-1].lower(), and its part after the last hyphen
            let base = Punkt.lower(tok.dropLast())
            let lastPart = base.lastIndex(of: "-").map { base[($0 + 1)...] } ?? base[...]
            if parameters.abbreviationTypes.contains(PyText.makeString(base))
                || parameters.abbreviationTypes.contains(PyText.makeString(lastPart)) {
                token.abbreviation = true
            } else {
                token.sentenceBreak = true
            }
        }
    }

    /// `_second_pass_annotation`: collocations, the orthographic heuristic and sentence starters.
    func secondPass(_ token: inout PunktToken, next: PunktToken) {
        guard token.periodFinal else { return }
        let type = token.typeNoPeriod
        let nextType = next.typeNoSentencePeriod
        let isInitial = token.isInitial
        if parameters.collocations.contains(.init(type, nextType)) {
            token.sentenceBreak = false
            token.abbreviation = true
            return
        }
        if (token.abbreviation || token.ellipsis) && !isInitial {
            let starter = orthographicHeuristic(next)
            if starter == .yes {
                token.sentenceBreak = true
                return
            }
            if next.firstUpper && parameters.sentenceStarters.contains(nextType) {
                token.sentenceBreak = true
                return
            }
        }
        if isInitial || type == Punkt.numberType {
            let starter = orthographicHeuristic(next)
            if starter == .no {
                token.sentenceBreak = false
                token.abbreviation = true
                return
            }
            if starter == .unknown && isInitial && next.firstUpper
                && (parameters.orthographicContext[nextType] ?? 0) & OrthoContext.lower == 0 {
                token.sentenceBreak = false
                token.abbreviation = true
            }
        }
    }

    enum Decision { case yes, no, unknown }

    /// `_ortho_heuristic`: whether `token` starts a sentence, judged by the cases its type was seen in.
    func orthographicHeuristic(_ token: PunktToken) -> Decision {
        if token.text.count == 1, let c = token.text.first, Punkt.isInternalPunctuation(c) { return .no }
        let context = parameters.orthographicContext[token.typeNoSentencePeriod] ?? 0
        if token.firstUpper && context & OrthoContext.lower != 0 && context & OrthoContext.midUpper == 0 {
            return .yes
        }
        if token.firstLower && (context & OrthoContext.upper != 0 || context & OrthoContext.begLower == 0) {
            return .no
        }
        return .unknown
    }
}

/// One word of a candidate's context with Punkt's annotations (`PunktToken`).
struct PunktToken {
    let text: ArraySlice<Scalar>
    let periodFinal: Bool
    var sentenceBreak = false
    var abbreviation = false
    var ellipsis = false

    init(_ text: ArraySlice<Scalar>) {
        self.text = text
        periodFinal = text.last == "."
    }

    /// Lower-cased, numbers replaced by `##number##`. Computed on demand: only tokens next to a
    /// candidate period ever need it.
    var type: String {
        let lowered = Punkt.lower(text)
        return Punkt.isNumeric(lowered) ? Punkt.numberType : PyText.makeString(lowered)
    }

    var typeNoPeriod: String {
        let type = self.type
        let scalars = type.unicodeScalars
        if scalars.count > 1 && scalars.last == "." { return String(scalars.dropLast()) }
        return type
    }

    var typeNoSentencePeriod: String { sentenceBreak ? typeNoPeriod : type }
    var firstUpper: Bool { text.first.map(PyText.isUpper) ?? false }
    var firstLower: Bool { text.first.map(PyText.isLower) ?? false }
    /// `\.\.+$`
    var isEllipsis: Bool { text.count >= 2 && text.allSatisfy { $0 == "." } }
    /// `[^\W\d]\.$`
    var isInitial: Bool {
        text.count == 2 && text.last == "." && PyText.isWord(text[text.startIndex])
            && !PyText.isDecimal(text[text.startIndex])
    }
}

/// Punkt's language variables (`PunktLanguageVars`) and its word splitter.
enum Punkt {
    static let numberType = "##number##"

    /// `_re_non_word_chars`: `[)";}\]*:@'({[` plus `!` and `?`.
    @inline(__always)
    static func isNonWord(_ c: Scalar) -> Bool {
        switch c.value {
        case 0x29, 0x22, 0x3B, 0x7D, 0x5D, 0x2A, 0x3A, 0x40, 0x27, 0x28, 0x7B, 0x5B, 0x21, 0x3F: return true
        default: return false
        }
    }

    /// Characters `_re_word_start` excludes: `(` `"` `` ` `` `{` `[` `:` `;` `&` `#` `*` `@` `)` `}` `]` `-` `,`.
    @inline(__always)
    static func cannotStartWord(_ c: Scalar) -> Bool {
        switch c.value {
        case 0x28, 0x22, 0x60, 0x7B, 0x5B, 0x3A, 0x3B, 0x26, 0x23, 0x2A, 0x40, 0x29, 0x7D, 0x5D, 0x2D, 0x2C:
            return true
        default: return false
        }
    }

    /// `PunktSentenceTokenizer.PUNCTUATION`: `;:,.!?`.
    static func isInternalPunctuation(_ c: Scalar) -> Bool {
        switch c.value {
        case 0x3B, 0x3A, 0x2C, 0x2E, 0x21, 0x3F: return true
        default: return false
        }
    }

    /// Python's `string.whitespace`: space, tab, LF, CR, VT, FF.
    @inline(__always)
    static func isASCIIWhitespace(_ c: Scalar) -> Bool {
        c.value == 0x20 || (c.value >= 0x09 && c.value <= 0x0D)
    }

    /// Python's `s.lower()` (`PythonStr.lowercased`), with a fast path for ASCII.
    static func lower(_ s: ArraySlice<Scalar>) -> [Scalar] {
        guard s.allSatisfy(\.isASCII) else {
            return Array(PythonStr.lowercased(PyText.makeString(s)).unicodeScalars)
        }
        return s.map { $0.value >= 0x41 && $0.value <= 0x5A ? Scalar(UInt8($0.value + 0x20)) : $0 }
    }

    /// `_RE_NUMERIC` (`^-?[\.,]?\d[\d,\.-]*\.?$`) on a lower-cased token.
    static func isNumeric(_ s: [Scalar]) -> Bool {
        var i = 0
        if i < s.count && s[i] == "-" { i += 1 }
        if i < s.count && (s[i] == "." || s[i] == ",") { i += 1 }
        guard i < s.count && PyText.isDecimal(s[i]) else { return false }
        i += 1
        while i < s.count {
            let c = s[i]
            guard PyText.isDecimal(c) || c == "," || c == "." || c == "-" else { return false }
            i += 1
        }
        return true
    }

    /// `_tokenize_words`: the text split at `\n`, each non-blank line split with `word_tokenize`.
    static func words(_ text: ArraySlice<Scalar>) -> [ArraySlice<Scalar>] {
        var result: [ArraySlice<Scalar>] = []
        var lineStart = text.startIndex
        while lineStart <= text.endIndex {
            let lineEnd = text[lineStart...].firstIndex(of: "\n") ?? text.endIndex
            splitWords(text[lineStart..<lineEnd], into: &result)
            lineStart = lineEnd + 1
        }
        return result
    }

    /// `PunktLanguageVars.word_tokenize`: `findall` of
    /// `(MULTICHAR | (?=WORDSTART)\S+?(?=\s|$|NONWORD|MULTICHAR|,(?=$|\s|NONWORD|MULTICHAR)) | \S)` with
    /// MULTICHAR = `(?:\-{2,}|\.{2,}|(?:\.\s){2,}\.)`.
    static func splitWords(_ line: ArraySlice<Scalar>, into result: inout [ArraySlice<Scalar>]) {
        let end = line.endIndex
        var p = line.startIndex
        while p < end {
            let c = line[p]
            if let e = multiCharEnd(line, at: p) {
                result.append(line[p..<e])
                p = e
            } else if PyText.isSpace(c) {
                p += 1
            } else if cannotStartWord(c) {
                result.append(line[p..<(p + 1)])
                p += 1
            } else {
                var q = p + 1
                while q < end && !wordEndsBefore(line, q) { q += 1 }
                result.append(line[p..<q])
                p = q
            }
        }
    }

    /// The lookahead that ends a Punkt word before `q` (`q` < end of line).
    @inline(__always)
    private static func wordEndsBefore(_ line: ArraySlice<Scalar>, _ q: Int) -> Bool {
        let c = line[q]
        if PyText.isSpace(c) || isNonWord(c) || multiCharEnd(line, at: q) != nil { return true }
        guard c == "," else { return false }
        let r = q + 1
        return r == line.endIndex || PyText.isSpace(line[r]) || isNonWord(line[r]) || multiCharEnd(line, at: r) != nil
    }

    /// End of a `(?:\-{2,}|\.{2,}|(?:\.\s){2,}\.)` match starting at `p`, if any.
    @inline(__always)
    static func multiCharEnd(_ s: ArraySlice<Scalar>, at p: Int) -> Int? {
        let end = s.endIndex
        guard p + 1 < end else { return nil }
        let c = s[p]
        guard c == "-" || c == "." else { return nil }
        if s[p + 1] == c {
            var e = p + 2
            while e < end && s[e] == c { e += 1 }
            return e
        }
        guard c == "." else { return nil }
        // (?:\.\s){2,}\. with backtracking: greedy repetitions, then a final period.
        var r = p
        var repetitions = 0
        while r + 1 < end && s[r] == "." && PyText.isSpace(s[r + 1]) {
            r += 2
            repetitions += 1
        }
        guard repetitions >= 2 else { return nil }
        if r < end && s[r] == "." { return r + 1 }
        return repetitions >= 3 ? r - 1 : nil
    }
}
