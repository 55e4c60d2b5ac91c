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
// (`str.lower()` is `PythonStr.lowercased`.)
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

    /// Whether `c` matches the pattern character `p` (an ASCII lower-case letter, or any other ASCII
    /// character matched literally) under Python's `re.IGNORECASE`.
    @inline(__always)
    static func caseInsensitiveEquals(_ c: Scalar, _ p: Scalar) -> Bool {
        let v = c.value, l = p.value
        if v < 0x80 { return v == l || (l >= 0x61 && l <= 0x7A && v == l - 0x20) }
        return (l == 0x69 && (v == 0x130 || v == 0x131)) || (l == 0x73 && v == 0x17F)  // i: İ ı, s: ſ
    }

    /// The code points of `text` (Python's view of a `str`), with a fast path for ASCII.
    static func scalars(_ text: String) -> [Scalar] {
        let ascii: [Scalar]? = text.utf8.withContiguousStorageIfAvailable { bytes in
            guard !bytes.contains(where: { $0 >= 0x80 }) else { return nil }
            return bytes.map { Scalar($0) }
        } ?? nil
        return ascii ?? Array(text.unicodeScalars)
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

    /// A `String` from scalars, encoded to UTF-8 directly.
    static func makeString(_ scalars: ArraySlice<Scalar>) -> String {
        var utf8Count = 0
        for c in scalars { utf8Count += UTF8.width(c) }
        return String(unsafeUninitializedCapacity: utf8Count) { buffer in
            var k = 0
            for c in scalars {
                let v = c.value
                if v < 0x80 {
                    buffer[k] = UInt8(v)
                    k += 1
                } else {
                    UTF8.encode(c) { byte in
                        buffer[k] = byte
                        k += 1
                    }
                }
            }
            return k
        }
    }

    static func makeString(_ scalars: [Scalar]) -> String { makeString(scalars[...]) }
}
