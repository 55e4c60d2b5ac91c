import Foundation

/// A byte-level pull scanner for JSON (RFC 8259) that extracts fields without building a tree.
///
/// Foundation's `JSONSerialization` materialises every value as an object graph; for COCO's 2014
/// annotations (≈ 400 MB, mostly segmentation polygons nobody here needs) that costs minutes and
/// gigabytes on Linux. This scanner walks the bytes once: callers iterate objects and arrays, read the
/// fields they want and `skipValue()` the rest, which skips nested structures by bracket counting
/// without decoding them.
///
/// Usage:
/// ```swift
/// try JSONScanner.withContents(of: url) { s in
///     try s.forEachMember { key, s in
///         if key == "images" { try s.forEachElement { s in ... } } else { try s.skipValue() }
///     }
/// }
/// ```
/// Strings are fully unescaped, including `\uXXXX` escapes and UTF-16 surrogate pairs; a lone
/// surrogate becomes U+FFFD (what Python's `json` would keep as a lone surrogate cannot be represented
/// in a Swift `String`).
public struct JSONScanner {
    @usableFromInline let base: UnsafePointer<UInt8>
    @usableFromInline let end: Int
    @usableFromInline var pos: Int
    /// Name of the source (for error messages).
    public let source: String

    public init(bytes: UnsafeRawBufferPointer, source: String = "<memory>") {
        self.base = bytes.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) }
            ?? UnsafePointer(bitPattern: 1)!
        self.end = bytes.count
        self.pos = 0
        self.source = source
    }

    /// Memory-maps a file and runs `body` with a scanner over its bytes.
    public static func withContents<R>(of url: URL, _ body: (inout JSONScanner) throws -> R) throws -> R {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw JSONScanError(source: url.path, offset: 0, message: error.localizedDescription, unreadable: true)
        }
        return try data.withUnsafeBytes { raw in
            var s = JSONScanner(bytes: raw, source: url.path)
            return try body(&s)
        }
    }

    /// Runs `body` with a scanner over in-memory bytes.
    public static func withBytes<D: ContiguousBytes, R>(_ data: D, source: String = "<memory>",
                                                        _ body: (inout JSONScanner) throws -> R) throws -> R {
        try data.withUnsafeBytes { raw in
            var s = JSONScanner(bytes: raw, source: source)
            return try body(&s)
        }
    }

    // MARK: Position

    /// Current byte offset.
    public var offset: Int { pos }
    public var isAtEnd: Bool { mutating get { skipWhitespace(); return pos >= end } }

    @inlinable @inline(__always)
    mutating func skipWhitespace() {
        while pos < end {
            let c = base[pos]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos += 1 } else { return }
        }
    }

    /// The next non-whitespace byte, without consuming it (nil at the end).
    public mutating func peek() -> UInt8? {
        skipWhitespace()
        return pos < end ? base[pos] : nil
    }

    public func error(_ message: String) -> JSONScanError {
        JSONScanError(source: source, offset: pos, message: message)
    }

    @inline(__always)
    mutating func expect(_ byte: UInt8, _ what: String) throws {
        skipWhitespace()
        guard pos < end, base[pos] == byte else {
            throw error("expected \(what), found \(describeHere())")
        }
        pos += 1
    }

    func describeHere() -> String {
        if pos >= end { return "end of input" }
        let c = base[pos]
        if c >= 0x20 && c < 0x7f { return "'\(Character(Unicode.Scalar(c)))'" }
        return String(format: "byte 0x%02x", c)
    }

    // MARK: Containers

    /// Iterates the members of an object; `body` must consume the value (read it or `skipValue()`).
    /// Keys are passed as raw UTF-8 bytes decoded lazily: compare with `key == "name"`.
    public mutating func forEachMember(_ body: (JSONKey, inout JSONScanner) throws -> Void) throws {
        try expect(UInt8(ascii: "{"), "'{' (an object)")
        skipWhitespace()
        if pos < end && base[pos] == UInt8(ascii: "}") { pos += 1; return }
        while true {
            let key = try readKey()
            try expect(UInt8(ascii: ":"), "':' after an object key")
            let before = pos
            try body(key, &self)
            if pos == before { try skipValue() }
            if try atContainerEnd(UInt8(ascii: "}"), "an object") { return }
        }
    }

    /// Iterates the elements of an array; `body` must consume the element.
    public mutating func forEachElement(_ body: (inout JSONScanner) throws -> Void) throws {
        try expect(UInt8(ascii: "["), "'[' (an array)")
        skipWhitespace()
        if pos < end && base[pos] == UInt8(ascii: "]") { pos += 1; return }
        while true {
            let before = pos
            try body(&self)
            if pos == before { try skipValue() }
            if try atContainerEnd(UInt8(ascii: "]"), "an array") { return }
        }
    }

    /// After an item: consumes ',' (returns false, more items follow) or the closing bracket (returns true).
    mutating func atContainerEnd(_ close: UInt8, _ what: String) throws -> Bool {
        skipWhitespace()
        guard pos < end else { throw error("unterminated \(what.dropFirst(what.hasPrefix("an ") ? 3 : 2))") }
        let c = base[pos]
        if c == UInt8(ascii: ",") { pos += 1; return false }
        if c == close { pos += 1; return true }
        throw error("expected ',' or '\(Character(Unicode.Scalar(close)))' in \(what), found \(describeHere())")
    }

    // MARK: Scalars

    /// Reads `null` and returns true, or returns false without consuming anything.
    public mutating func readNull() -> Bool {
        skipWhitespace()
        if pos + 4 <= end, base[pos] == UInt8(ascii: "n"), base[pos + 1] == UInt8(ascii: "u"),
           base[pos + 2] == UInt8(ascii: "l"), base[pos + 3] == UInt8(ascii: "l") {
            pos += 4
            return true
        }
        return false
    }

    public mutating func readBool() throws -> Bool {
        skipWhitespace()
        if matchLiteral("true") { return true }
        if matchLiteral("false") { return false }
        throw error("expected true or false, found \(describeHere())")
    }

    mutating func matchLiteral(_ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard pos + n <= end else { return false }
        let p = literal.utf8Start
        for i in 0..<n where base[pos + i] != p[i] { return false }
        pos += n
        return true
    }

    /// Reads an integer. Accepts a number written with a fraction or exponent only if its value is integral
    /// (COCO ids are sometimes written as `123.0` by other tools).
    public mutating func readInt() throws -> Int {
        skipWhitespace()
        let start = pos
        var negative = false
        if pos < end && base[pos] == UInt8(ascii: "-") { negative = true; pos += 1 }
        var value = 0
        var digits = 0
        while pos < end {
            let d = base[pos] &- 0x30
            if d > 9 { break }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int(d))
            if o1 || o2 { pos = start; throw error("integer out of range") }
            value = a
            digits += 1
            pos += 1
        }
        if digits == 0 { pos = start; throw error("expected an integer, found \(describeHere())") }
        if pos < end, base[pos] == UInt8(ascii: ".") || base[pos] == UInt8(ascii: "e") || base[pos] == UInt8(ascii: "E") {
            pos = start
            let d = try readDouble()
            guard d.rounded() == d, abs(d) < 9.0e18 else { pos = start; throw error("expected an integer, found \(d)") }
            return Int(d)
        }
        return negative ? -value : value
    }

    /// Reads any JSON number as a Double.
    public mutating func readDouble() throws -> Double {
        skipWhitespace()
        let start = pos
        advancePastNumberCharacters()
        guard pos > start else { throw error("expected a number, found \(describeHere())") }
        let text = String(decoding: UnsafeBufferPointer(start: base + start, count: pos - start), as: UTF8.self)
        guard let d = Double(text) else { pos = start; throw error("malformed number '\(text)'") }
        return d
    }

    /// Reads a string value, unescaping it.
    public mutating func readString() throws -> String {
        skipWhitespace()
        guard pos < end, base[pos] == UInt8(ascii: "\"") else {
            throw error("expected a string, found \(describeHere())")
        }
        pos += 1
        let start = pos
        // Fast path: no escapes.
        while pos < end {
            let c = base[pos]
            if c == UInt8(ascii: "\"") {
                let s = String(decoding: UnsafeBufferPointer(start: base + start, count: pos - start), as: UTF8.self)
                pos += 1
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw error("control character inside a string") }
            pos += 1
        }
        guard pos < end else { throw error("unterminated string") }
        var bytes = [UInt8](UnsafeBufferPointer(start: base + start, count: pos - start))
        try readEscapedTail(into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Continues a string at a backslash or ordinary byte, appending unescaped UTF-8 until the closing quote.
    mutating func readEscapedTail(into bytes: inout [UInt8]) throws {
        while pos < end {
            let c = base[pos]
            if c == UInt8(ascii: "\"") { pos += 1; return }
            if c < 0x20 { throw error("control character inside a string") }
            if c != UInt8(ascii: "\\") { bytes.append(c); pos += 1; continue }
            pos += 1
            guard pos < end else { break }
            let e = base[pos]
            pos += 1
            switch e {
            case UInt8(ascii: "\""): bytes.append(0x22)
            case UInt8(ascii: "\\"): bytes.append(0x5C)
            case UInt8(ascii: "/"): bytes.append(0x2F)
            case UInt8(ascii: "b"): bytes.append(0x08)
            case UInt8(ascii: "f"): bytes.append(0x0C)
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "r"): bytes.append(0x0D)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try readHex4()
                if scalar >= 0xD800 && scalar < 0xDC00 {
                    // A high surrogate: combine with a following \uDC00–\uDFFF low surrogate.
                    if pos + 6 <= end, base[pos] == UInt8(ascii: "\\"), base[pos + 1] == UInt8(ascii: "u") {
                        let save = pos
                        pos += 2
                        let low = try readHex4()
                        if low >= 0xDC00 && low < 0xE000 {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            pos = save
                            scalar = 0xFFFD
                        }
                    } else {
                        scalar = 0xFFFD
                    }
                } else if scalar >= 0xDC00 && scalar < 0xE000 {
                    scalar = 0xFFFD
                }
                appendUTF8(scalar, to: &bytes)
            default:
                pos -= 1
                throw error("invalid escape '\\\(Character(Unicode.Scalar(e)))' in a string")
            }
        }
        throw error("unterminated string")
    }

    mutating func readHex4() throws -> UInt32 {
        guard pos + 4 <= end else { throw error("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = base[pos]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw error("invalid hex digit in a \\u escape")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    func appendUTF8(_ scalar: UInt32, to bytes: inout [UInt8]) {
        switch scalar {
        case 0..<0x80: bytes.append(UInt8(scalar))
        case 0x80..<0x800:
            bytes.append(UInt8(0xC0 | (scalar >> 6)))
            bytes.append(UInt8(0x80 | (scalar & 0x3F)))
        case 0x800..<0x10000:
            bytes.append(UInt8(0xE0 | (scalar >> 12)))
            bytes.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            bytes.append(UInt8(0x80 | (scalar & 0x3F)))
        default:
            bytes.append(UInt8(0xF0 | (scalar >> 18)))
            bytes.append(UInt8(0x80 | ((scalar >> 12) & 0x3F)))
            bytes.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            bytes.append(UInt8(0x80 | (scalar & 0x3F)))
        }
    }

    mutating func readKey() throws -> JSONKey {
        skipWhitespace()
        guard pos < end, base[pos] == UInt8(ascii: "\"") else {
            throw error("expected an object key (a string), found \(describeHere())")
        }
        let start = pos + 1
        var p = start
        while p < end {
            let c = base[p]
            if c == UInt8(ascii: "\"") {
                pos = p + 1
                return JSONKey(raw: UnsafeBufferPointer(start: base + start, count: p - start), decoded: nil)
            }
            if c == UInt8(ascii: "\\") { break }
            p += 1
        }
        let s = try readString()
        return JSONKey(raw: nil, decoded: s)
    }

    // MARK: Skipping

    /// Skips one value of any kind, validating bracket structure and string syntax but not decoding.
    public mutating func skipValue() throws {
        skipWhitespace()
        guard pos < end else { throw error("expected a value, found end of input") }
        switch base[pos] {
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            while pos < end {
                let c = base[pos]
                switch c {
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1; pos += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1; pos += 1
                    if depth == 0 { return }
                case UInt8(ascii: "\""): try skipString()
                default: pos += 1
                }
            }
            throw error("unterminated array or object")
        case UInt8(ascii: "\""): try skipString()
        case UInt8(ascii: "t"), UInt8(ascii: "f"): _ = try readBool()
        case UInt8(ascii: "n"):
            guard readNull() else { throw error("unexpected \(describeHere())") }
        default: try skipNumber()
        }
    }

    /// Moves past a run of characters that can appear in a JSON number (digits, sign, '.', exponent).
    private mutating func advancePastNumberCharacters() {
        while pos < end {
            let c = base[pos]
            if (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+")
                || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
                pos += 1
            } else { break }
        }
    }

    /// Skips a number without converting it (validated only as a run of number characters).
    mutating func skipNumber() throws {
        let start = pos
        advancePastNumberCharacters()
        if pos == start { throw error("expected a value, found \(describeHere())") }
    }

    mutating func skipString() throws {
        pos += 1
        while pos < end {
            let c = base[pos]
            if c == UInt8(ascii: "\"") { pos += 1; return }
            pos += c == UInt8(ascii: "\\") ? 2 : 1
        }
        throw error("unterminated string")
    }

    /// Reads any JSON value into a plain Swift value (`[String: Any]`, `[Any]`, `String`, `Double`/`Int`,
    /// `Bool`, `NSNull`). For small documents only; objects and arrays may nest `maxReadAnyDepth` deep.
    public mutating func readAny() throws -> Any {
        try readAny(depth: 0)
    }

    /// Deepest nesting `readAny` follows: its recursion would otherwise overflow the stack on hostile input.
    public static let maxReadAnyDepth = 512

    private mutating func readAny(depth: Int) throws -> Any {
        guard let c = peek() else { throw error("expected a value, found end of input") }
        if (c == UInt8(ascii: "{") || c == UInt8(ascii: "[")) && depth >= Self.maxReadAnyDepth {
            throw error("objects and arrays nested more than \(Self.maxReadAnyDepth) deep; the file is damaged or not the expected kind")
        }
        switch c {
        case UInt8(ascii: "{"):
            var dict: [String: Any] = [:]
            try forEachMember { key, s in dict[key.string] = try s.readAny(depth: depth + 1) }
            return dict
        case UInt8(ascii: "["):
            var array: [Any] = []
            try forEachElement { s in array.append(try s.readAny(depth: depth + 1)) }
            return array
        case UInt8(ascii: "\""): return try readString()
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return try readBool()
        case UInt8(ascii: "n"):
            guard readNull() else { throw error("unexpected \(describeHere())") }
            return NSNull()
        default:
            let save = pos
            if let i = try? readInt() { return i }
            pos = save
            return try readDouble()
        }
    }
}

/// An object key as seen by `forEachMember`: raw bytes when the key had no escapes.
public struct JSONKey {
    let raw: UnsafeBufferPointer<UInt8>?
    let decoded: String?

    public var string: String {
        if let decoded { return decoded }
        return String(decoding: raw!, as: UTF8.self)
    }

    public static func == (key: JSONKey, literal: StaticString) -> Bool {
        if let decoded = key.decoded { return decoded == literal.description }
        let raw = key.raw!
        let n = literal.utf8CodeUnitCount
        guard raw.count == n else { return false }
        let p = literal.utf8Start
        for i in 0..<n where raw[i] != p[i] { return false }
        return true
    }
}

public struct JSONScanError: Error, CustomStringConvertible {
    public var source: String
    public var offset: Int
    public var message: String
    /// The file could not be read at all (missing, permissions), as opposed to malformed.
    public var unreadable: Bool

    public init(source: String, offset: Int, message: String, unreadable: Bool = false) {
        self.source = source; self.offset = offset; self.message = message; self.unreadable = unreadable
    }

    public var description: String {
        if unreadable { return "cannot read \(source) (\(message)); check the path and permissions" }
        return "\(source): invalid JSON at byte \(offset): \(message). The file may be truncated or not the expected format; re-download or re-import it."
    }
}
