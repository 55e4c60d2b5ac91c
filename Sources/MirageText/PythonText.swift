// Python 3 `str` semantics that NLTK's tokenizers depend on, over Unicode scalars (a Python `str` is a
// sequence of code points, and every index, length and slice in NLTK counts code points).
//
// Facts carried over from CPython 3.11 (Objects/unicodectype.c, Modules/_sre/sre.c, Lib/re/_compiler.py):
// - `\s`, `str.split()`, `str.strip()` and `str.isspace()` share one set: bidirectional class WS, B or S,
//   or general category Zs. It is listed literally below (it has not changed since Unicode 6.3).
// - `\d` in a `str` pattern is `str.isdecimal()`: general category Nd.
// - `\w` is `str.isalnum()` or `_`; `isalnum` = `isalpha` (categories Lu Ll Lt Lm Lo) or a numeric type.
//   Combining marks (Mn, Mc) are *not* word characters.
// - `str.isupper()` / `str.islower()` on one character are the derived properties Uppercase / Lowercase.
// - `str.lower()` applies the full lowercase mapping, and maps capital sigma to final sigma when it ends
//   a cased word (`handle_capital_sigma`).
// - An IGNORECASE literal matches a character whose simple lowercase equals the pattern's lowercase, plus
//   the equivalence classes i/ı and s/ſ (`_equivalences`); for the ASCII letters the NLTK patterns use
//   this adds only U+0130 and U+0131 for `i` and U+017F for `s` (checked against CPython 3.11).

typealias Scalar = Unicode.Scalar

enum PyText {
    /// `\s`, `str.isspace()`.
    @inline(__always)
    static func isSpace(_ c: Scalar) -> Bool {
        let v = c.value
        if v < 0x80 { return v == 0x20 || (v >= 0x09 && v <= 0x0D) || (v >= 0x1C && v <= 0x1F) }
        switch v {
        case 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }

    /// `\d`, `str.isdecimal()`.
    @inline(__always)
    static func isDecimal(_ c: Scalar) -> Bool {
        let v = c.value
        if v < 0x80 { return v >= 0x30 && v <= 0x39 }
        return c.properties.generalCategory == .decimalNumber
    }

    /// `\w`: `str.isalnum()` or underscore.
    @inline(__always)
    static func isWord(_ c: Scalar) -> Bool {
        let v = c.value
        if v < 0x80 {
            return (v >= 0x61 && v <= 0x7A) || (v >= 0x41 && v <= 0x5A) || (v >= 0x30 && v <= 0x39) || v == 0x5F
        }
        return isAlnumSlow(c)
    }

    private static func isAlnumSlow(_ c: Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
             .decimalNumber, .letterNumber, .otherNumber:
            return true
        default:
            return c.properties.numericType != nil
        }
    }

    /// `ch.isupper()` for a single character.
    @inline(__always)
    static func isUpper(_ c: Scalar) -> Bool {
        let v = c.value
        if v < 0x80 { return v >= 0x41 && v <= 0x5A }
        return c.properties.isUppercase
    }

    /// `ch.islower()` for a single character.
    @inline(__always)
    static func isLower(_ c: Scalar) -> Bool {
        let v = c.value
        if v < 0x80 { return v >= 0x61 && v <= 0x7A }
        return c.properties.isLowercase
    }

    /// Whether `c` matches the lower-case ASCII letter `letter` under Python's `re.IGNORECASE`.
    @inline(__always)
    static func caseInsensitiveEquals(_ c: Scalar, _ letter: Scalar) -> Bool {
        let v = c.value, l = letter.value
        if v == l || v == l - 0x20 { return true }
        switch l {
        case 0x69: return v == 0x130 || v == 0x131  // i: İ, ı
        case 0x73: return v == 0x17F                // s: ſ
        default: return false
        }
    }

    /// Python's `str.lower()`.
    static func lower(_ s: [Scalar]) -> [Scalar] {
        var out: [Scalar] = []
        out.reserveCapacity(s.count)
        for (i, c) in s.enumerated() {
            let v = c.value
            if v < 0x80 {
                out.append(v >= 0x41 && v <= 0x5A ? Scalar(v + 0x20)! : c)
            } else if v == 0x3A3 {
                out.append(isFinalSigma(s, at: i) ? Scalar(0x3C2)! : Scalar(0x3C3)!)
            } else {
                out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return out
    }

    /// CPython's `handle_capital_sigma`: a cased letter before (skipping case-ignorables) and none after.
    private static func isFinalSigma(_ s: [Scalar], at i: Int) -> Bool {
        var j = i - 1
        while j >= 0 && s[j].properties.isCaseIgnorable { j -= 1 }
        guard j >= 0 && s[j].properties.isCased else { return false }
        j = i + 1
        while j < s.count && s[j].properties.isCaseIgnorable { j += 1 }
        return j == s.count || !s[j].properties.isCased
    }

    /// `str.split()` with no arguments: runs of whitespace separate, empty fields are dropped.
    static func splitOnWhitespace(_ s: [Scalar], into tokens: inout [String]) {
        var i = 0
        let n = s.count
        while i < n {
            while i < n && isSpace(s[i]) { i += 1 }
            guard i < n else { break }
            let start = i
            while i < n && !isSpace(s[i]) { i += 1 }
            tokens.append(makeString(s[start..<i]))
        }
    }

    static func makeString<C: Collection>(_ scalars: C) -> String where C.Element == Scalar {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }
}

extension String {
    /// Python 3's `str.lower()` (full lowercase mapping, final sigma), which CHAIR applies to a caption
    /// before tokenising. Swift's `lowercased()` differs on capital sigma at the end of a word.
    public var pythonLowercased: String {
        if utf8.allSatisfy({ $0 < 0x80 }) { return lowercased() }
        return PyText.makeString(PyText.lower(Array(unicodeScalars)))
    }
}
