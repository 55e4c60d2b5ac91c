import Foundation

/// Text on its way through the tokenizer: Unicode scalars, each aligned with the UTF-8 byte range of
/// the input it came from (so tokens can report where they are in the caller's string).
struct AlignedText {
    var scalars: [Unicode.Scalar]
    /// Input byte range of each scalar.
    var starts: [Int]
    var ends: [Int]
    /// Input byte offset where this text begins (meaningful when `scalars` is empty too).
    var origin: Int

    init(scalars: [Unicode.Scalar], starts: [Int], ends: [Int], origin: Int) {
        self.scalars = scalars
        self.starts = starts
        self.ends = ends
        self.origin = origin
    }

    /// The input string, aligned with itself.
    init(_ text: String) {
        var scalars: [Unicode.Scalar] = []
        var starts: [Int] = []
        var ends: [Int] = []
        scalars.reserveCapacity(text.utf8.count)
        var offset = 0
        for scalar in text.unicodeScalars {
            let width = UTF8.width(scalar)
            scalars.append(scalar)
            starts.append(offset)
            ends.append(offset + width)
            offset += width
        }
        self.init(scalars: scalars, starts: starts, ends: ends, origin: 0)
    }

    var isEmpty: Bool { scalars.isEmpty }
    var count: Int { scalars.count }
    var string: String {
        var result = String.UnicodeScalarView()
        result.append(contentsOf: scalars)
        return String(result)
    }

    subscript(range: Range<Int>) -> AlignedText {
        AlignedText(scalars: Array(scalars[range]), starts: Array(starts[range]), ends: Array(ends[range]),
                    origin: range.lowerBound < starts.count ? starts[range.lowerBound] : (ends.last ?? origin))
    }

    /// Input byte span covered by the scalars in `range`.
    func span(_ range: Range<Int>) -> Range<Int> {
        guard !range.isEmpty else { return origin..<origin }
        var low = Int.max, high = Int.min
        for i in range { low = min(low, starts[i]); high = max(high, ends[i]) }
        return low..<high
    }

    mutating func append(_ scalar: Unicode.Scalar, start: Int, end: Int) {
        scalars.append(scalar)
        starts.append(start)
        ends.append(end)
    }

    /// Inserts a scalar at the front, aligned with the first scalar (as tokenizers aligns prefixes).
    mutating func prepend(_ scalar: Unicode.Scalar) {
        let start = starts.first ?? origin, end = ends.first ?? origin
        scalars.insert(scalar, at: 0)
        starts.insert(start, at: 0)
        ends.insert(end, at: 0)
    }

    static func empty(origin: Int) -> AlignedText {
        AlignedText(scalars: [], starts: [], ends: [], origin: origin)
    }
}

/// The Unicode classes the pre-tokenizer patterns and added-token flags test, with ASCII fast paths.
enum TokenizerUnicode {
    /// `\p{L}`: general category Letter.
    @inline(__always) static func isLetter(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if v < 0x80 { return (v | 0x20) >= 0x61 && (v | 0x20) <= 0x7A }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    /// `\p{N}`: general category Number.
    @inline(__always) static func isNumber(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if v < 0x80 { return v >= 0x30 && v <= 0x39 }
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// `\s`: the White_Space property (Oniguruma and Rust regex agree on it).
    @inline(__always) static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if v < 0x80 { return v == 0x20 || (v >= 0x09 && v <= 0x0D) }
        return s.properties.isWhitespace
    }

    /// `\w` of Rust's regex crate: Alphabetic, marks, decimal numbers, connector punctuation, join controls.
    static func isWordCharacter(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if v < 0x80 {
            return (v | 0x20) >= 0x61 && (v | 0x20) <= 0x7A || (v >= 0x30 && v <= 0x39) || v == 0x5F
        }
        let p = s.properties
        if p.isAlphabetic || p.isJoinControl { return true }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }
}
