/// Python 3 `str` semantics that NLTK's tagger and lemmatizer rely on, on UTF-8 bytes.
/// Python indexes and slices strings by code point (not by grapheme like Swift's `Character`),
/// `str.isdigit` accepts every Unicode digit, and `str.lower` applies full case mappings plus the
/// Final_Sigma rule.
enum PythonStr {
    /// Byte offset where the last `n` code points of `bytes` start (`s[-n:]`).
    @inline(__always)
    static func suffixStart(_ bytes: UnsafeBufferPointer<UInt8>, codePoints n: Int) -> Int {
        var i = bytes.count
        var seen = 0
        while i > 0 && seen < n {
            i -= 1
            // UTF-8 continuation bytes are 0b10xxxxxx; a code point starts at any other byte.
            if bytes[i] & 0xC0 != 0x80 { seen += 1 }
        }
        return i
    }

    /// Byte length of the first code point of `bytes` (`s[0]`), 0 for the empty string.
    @inline(__always)
    static func firstCodePointLength(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        guard !bytes.isEmpty else { return 0 }
        var i = 1
        while i < bytes.count && bytes[i] & 0xC0 == 0x80 { i += 1 }
        return i
    }

    /// `len(s)`: the number of code points.
    @inline(__always)
    static func length(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        var n = 0
        for b in bytes where b & 0xC0 != 0x80 { n += 1 }
        return n
    }

    static func length(_ string: String) -> Int { string.unicodeScalars.count }

    /// `c.isdigit()` for one code point: Numeric_Type is Decimal or Digit (so "²" and "①" count).
    @inline(__always)
    static func isDigit(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII { return scalar.value >= 0x30 && scalar.value <= 0x39 }
        switch scalar.properties.numericType {
        case .decimal?, .digit?: return true
        default: return false
        }
    }

    static func scalars(_ bytes: UnsafeBufferPointer<UInt8>) -> String.UnicodeScalarView {
        String(decoding: bytes, as: UTF8.self).unicodeScalars
    }

    /// `s.lower()`, appended to `out` as UTF-8. ASCII input takes a fast path.
    static func appendLowercased(_ bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        if !bytes.contains(where: { $0 >= 0x80 }) {
            for b in bytes { out.append(b >= 0x41 && b <= 0x5A ? b | 0x20 : b) }
            return
        }
        let scalars = Array(Self.scalars(bytes))
        for (i, scalar) in scalars.enumerated() {
            if scalar.value == 0x03A3 {
                // GREEK CAPITAL LETTER SIGMA: Python applies the Final_Sigma condition
                // (preceded by a cased letter, not followed by one, skipping case-ignorables).
                let final = isFinalSigma(scalars, at: i)
                out.append(contentsOf: String(final ? "\u{03C2}" : "\u{03C3}").utf8)
            } else if scalar.isASCII {
                let b = UInt8(scalar.value)
                out.append(b >= 0x41 && b <= 0x5A ? b | 0x20 : b)
            } else {
                out.append(contentsOf: scalar.properties.lowercaseMapping.utf8)
            }
        }
    }

    static func lowercased(_ string: String) -> String {
        var out: [UInt8] = []
        withUTF8Buffer(string) { appendLowercased($0, to: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    private static func isFinalSigma(_ scalars: [Unicode.Scalar], at index: Int) -> Bool {
        var j = index - 1
        while j >= 0 && scalars[j].properties.isCaseIgnorable { j -= 1 }
        guard j >= 0 && scalars[j].properties.isCased else { return false }
        j = index + 1
        while j < scalars.count && scalars[j].properties.isCaseIgnorable { j += 1 }
        return j == scalars.count || !scalars[j].properties.isCased
    }
}
