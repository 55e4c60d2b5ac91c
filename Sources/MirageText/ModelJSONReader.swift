/// A small streaming JSON reader for the tagger's model files (objects of strings and numbers, arrays of
/// strings). It hands out keys as raw UTF-8 bytes so they can be interned byte-exactly, parses numbers
/// with Swift's correctly rounded `Double(_:)` (the same value Python's `float(repr)` round trip gives),
/// and reports the byte offset of any syntax error.
struct ModelJSONReader {
    struct SyntaxError: Error {
        var offset: Int
        var message: String
    }

    private let bytes: [UInt8]
    private(set) var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    private func fail(_ message: String) -> SyntaxError { SyntaxError(offset: position, message: message) }

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private mutating func expect(_ byte: UInt8) throws {
        skipWhitespace()
        guard position < bytes.count, bytes[position] == byte else {
            throw fail("expected '\(Character(Unicode.Scalar(byte)))'")
        }
        position += 1
    }

    /// True (and consumed) when the next non-space byte is `byte`.
    private mutating func consume(_ byte: UInt8) -> Bool {
        skipWhitespace()
        if position < bytes.count && bytes[position] == byte { position += 1; return true }
        return false
    }

    mutating func expectEnd() throws {
        skipWhitespace()
        if position != bytes.count { throw fail("unexpected data after the JSON value") }
    }

    /// A JSON string as UTF-8 bytes, escapes decoded (`\uD83D\uDE00` surrogate pairs combined).
    mutating func string() throws -> [UInt8] {
        try expect(0x22)
        var out: [UInt8] = []
        while true {
            guard position < bytes.count else { throw fail("unterminated string") }
            let b = bytes[position]
            position += 1
            if b == 0x22 { return out }
            if b != 0x5C { out.append(b); continue }
            guard position < bytes.count else { throw fail("unterminated escape") }
            let e = bytes[position]
            position += 1
            switch e {
            case 0x22, 0x5C, 0x2F: out.append(e)
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x74: out.append(0x09)
            case 0x75:
                var value = try hex4()
                if (0xD800..<0xDC00).contains(value), position + 1 < bytes.count,
                   bytes[position] == 0x5C, bytes[position + 1] == 0x75 {
                    position += 2
                    let low = try hex4()
                    if (0xDC00..<0xE000).contains(low) {
                        value = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        appendScalar(value, to: &out)
                        value = low
                    }
                }
                appendScalar(value, to: &out)
            default: throw fail("invalid escape")
            }
        }
    }

    private mutating func hex4() throws -> UInt32 {
        guard position + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[position]
            position += 1
            switch c {
            case 0x30...0x39: v = v << 4 | UInt32(c - 0x30)
            case 0x41...0x46: v = v << 4 | UInt32(c - 0x37)
            case 0x61...0x66: v = v << 4 | UInt32(c - 0x57)
            default: throw fail("invalid \\u escape")
            }
        }
        return v
    }

    private func appendScalar(_ value: UInt32, to out: inout [UInt8]) {
        // A lone surrogate cannot live in a Swift string; it becomes U+FFFD.
        let scalar = Unicode.Scalar(value) ?? "\u{FFFD}"
        out.append(contentsOf: String(Character(scalar)).utf8)
    }

    /// Calls `body` with the next JSON string's UTF-8 bytes: a view of the input when the string has no
    /// escapes (no copy), the decoded bytes otherwise.
    mutating func withString<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) throws -> R {
        skipWhitespace()
        let start = position + 1
        var end = start
        while end < bytes.count && bytes[end] != 0x22 && bytes[end] != 0x5C { end += 1 }
        if position < bytes.count && bytes[position] == 0x22 && end < bytes.count && bytes[end] == 0x22 {
            position = end + 1
            return try bytes.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[start..<end])) }
        }
        let decoded = try string()
        return try decoded.withUnsafeBufferPointer(body)
    }

    /// Powers of ten that are exact doubles.
    private static let exactPowersOfTen: [Double] = (0...22).map { k in
        var p = 1.0
        for _ in 0..<k { p *= 10 }
        return p
    }

    mutating func number() throws -> Double {
        skipWhitespace()
        let start = position
        scan: while position < bytes.count {
            switch bytes[position] {
            case 0x30...0x39, 0x2D, 0x2B, 0x2E, 0x65, 0x45: position += 1  // digits - + . e E
            default: break scan
            }
        }
        // Fast path for plain decimals with at most 15 significant digits (all of the tagger's weights,
        // which NLTK rounded to 3 decimals): the integer mantissa and 10^k are exact doubles, so one
        // IEEE division is correctly rounded, the same value `Double(text)` and Python's `float` give.
        var i = start, negative = false
        if i < position && bytes[i] == 0x2D { negative = true; i += 1 }
        var mantissa: Int64 = 0, digits = 0, fractionDigits = 0, seenPoint = false, plain = i < position
        while i < position && plain {
            let c = bytes[i]
            if c >= 0x30 && c <= 0x39 {
                if mantissa > 0 || c != 0x30 { digits += 1 }
                if digits > 15 { plain = false; break }  // not exact in a double: slow path
                mantissa = mantissa * 10 + Int64(c - 0x30)
                if seenPoint { fractionDigits += 1 }
            } else if c == 0x2E && !seenPoint {
                seenPoint = true
            } else {
                plain = false
            }
            i += 1
        }
        if plain && digits <= 15 && fractionDigits <= 22 && !(seenPoint && fractionDigits == 0) {
            let value = Double(mantissa) / Self.exactPowersOfTen[fractionDigits]
            return negative ? -value : value
        }
        let text = String(decoding: bytes[start..<position], as: UTF8.self)
        guard !text.isEmpty, let value = Double(text) else {
            position = start
            throw fail("expected a number")
        }
        return value
    }

    /// Reads an object, calling `member` with each key; `member` must consume the value.
    mutating func object(_ member: (inout ModelJSONReader, [UInt8]) throws -> Void) throws {
        try objectMembers { reader in
            let key = try reader.string()
            try reader.expect(0x3A)
            try member(&reader, key)
        }
    }

    /// Reads an object, calling `member` for each member: it reads the key (e.g. with `withString`),
    /// then `colon()`, then the value.
    mutating func objectMembers(_ member: (inout ModelJSONReader) throws -> Void) throws {
        try expect(0x7B)
        if consume(0x7D) { return }
        repeat { try member(&self) } while consume(0x2C)
        try expect(0x7D)
    }

    /// The ":" between a key and its value.
    mutating func colon() throws { try expect(0x3A) }

    /// Reads an array, calling `element` for each entry; `element` must consume the value.
    mutating func array(_ element: (inout ModelJSONReader) throws -> Void) throws {
        try expect(0x5B)
        if consume(0x5D) { return }
        repeat { try element(&self) } while consume(0x2C)
        try expect(0x5D)
    }
}
