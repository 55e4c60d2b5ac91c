import Foundation

/// A file of captions to score, in either layout the reference accepts: JSON Lines (one
/// `{"image_id": 123, "caption": "..."}` per line, what OPERA's `chair_eval.py` writes) or a JSON list of
/// such objects. The layout is recognised from the content (a list starts with `[`). Blank lines in JSON
/// Lines are skipped. Concatenated pretty-printed objects (POPE's `caption_data` files) are read too.
/// Keys are configurable; an image id may be a JSON integer or a string of digits.
public struct ChairCaptionFile: Sendable, Hashable {
    public var captions: [ChairCaption]
    /// The 1-based line where each caption's record starts, for error messages.
    public var lines: [Int]
    /// The file name used in error messages.
    public var source: String

    public init(captions: [ChairCaption], lines: [Int], source: String) {
        self.captions = captions
        self.lines = lines
        self.source = source
    }

    public static func read(_ url: URL, imageIdKey: String = "image_id",
                            captionKey: String = "caption") throws -> ChairCaptionFile {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ChairError.unreadableFile(url.path, error.localizedDescription)
        }
        return try parse(data, source: url.path, imageIdKey: imageIdKey, captionKey: captionKey)
    }

    public static func parse(_ data: Data, source: String, imageIdKey: String = "image_id",
                             captionKey: String = "caption") throws -> ChairCaptionFile {
        let bytes = [UInt8](data)
        guard let first = bytes.firstIndex(where: { !isSpace($0) }) else {
            throw ChairError.invalidCaptions(file: source, line: nil,
                                             reason: "the file is empty; expected JSON Lines with one "
                                                + "{\"\(imageIdKey)\": <COCO id>, \"\(captionKey)\": \"...\"} per line")
        }
        let reader = RecordReader(source: source, imageIdKey: imageIdKey, captionKey: captionKey)
        var file = ChairCaptionFile(captions: [], lines: [], source: source)
        if bytes[first] == UInt8(ascii: "[") {
            let elements = try topLevelElements(bytes, from: first, source: source)
            let lines = LineTable(bytes)
            for (start, end) in elements {
                let line = lines.line(at: start)
                file.captions.append(try reader.record(Data(bytes[start..<end]), line: line))
                file.lines.append(line)
            }
        } else if let objects = concatenatedObjects(bytes, from: first) {
            let lines = LineTable(bytes)
            for (start, end) in objects {
                let line = lines.line(at: start)
                file.captions.append(try reader.record(Data(bytes[start..<end]), line: line))
                file.lines.append(line)
            }
        } else {
            var line = 0
            var start = 0
            while start < bytes.count {
                line += 1
                let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
                if bytes[start..<end].contains(where: { !isSpace($0) }) {
                    file.captions.append(try reader.record(Data(bytes[start..<end]), line: line))
                    file.lines.append(line)
                }
                start = end + 1
            }
        }
        guard !file.captions.isEmpty else {
            throw ChairError.invalidCaptions(file: source, line: nil, reason: "the file holds no caption records")
        }
        return file
    }

    /// The error for a caption the scorer rejected, located at its line.
    public func locate(_ error: Error) -> Error {
        if case ChairError.unknownImage(let id, let index?) = error, index < lines.count {
            return ChairError.invalidCaptions(
                file: source, line: lines[index],
                reason: ChairError.unknownImage(imageId: id, captionIndex: nil).description)
        }
        return error
    }

    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 }

    /// Line starts of a file, for many offset → line look-ups.
    struct LineTable {
        var starts: [Int] = [0]
        init(_ bytes: [UInt8]) {
            for (i, b) in bytes.enumerated() where b == UInt8(ascii: "\n") { starts.append(i + 1) }
        }
        /// 1-based line of a byte offset (binary search).
        func line(at offset: Int) -> Int {
            var lo = 0, hi = starts.count
            while hi - lo > 1 {
                let mid = (lo + hi) / 2
                if starts[mid] <= offset { lo = mid } else { hi = mid }
            }
            return lo + 1
        }
    }

    /// 1-based line of one offset (for a single error).
    static func lineNumber(_ bytes: [UInt8], at offset: Int) -> Int {
        var line = 1
        for b in bytes[..<offset] where b == UInt8(ascii: "\n") { line += 1 }
        return line
    }

    /// Byte ranges of top-level objects written one after another over several lines (not one per line),
    /// or nil when the content is not such a sequence (JSON Lines is then tried).
    static func concatenatedObjects(_ bytes: [UInt8], from start: Int) -> [(Int, Int)]? {
        var objects: [(Int, Int)] = []
        var depth = 0, inString = false, escaped = false, objectStart = 0
        var multiLine = false
        for i in start..<bytes.count {
            let b = bytes[i]
            if inString {
                if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = true }
                else if b == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch b {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                if depth == 0 {
                    guard b == UInt8(ascii: "{") else { return nil }
                    objectStart = i
                }
                depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth < 0 { return nil }
                if depth == 0 { objects.append((objectStart, i + 1)) }
            case UInt8(ascii: "\n"):
                if depth > 0 { multiLine = true }
            default:
                if depth == 0 && !isSpace(b) { return nil }
            }
        }
        return depth == 0 && !inString && multiLine ? objects : nil
    }

    /// Byte ranges of the elements of the top-level JSON array starting at `open`, found by tracking
    /// strings and nesting only; each element is then parsed on its own so errors get a line.
    static func topLevelElements(_ bytes: [UInt8], from open: Int, source: String) throws -> [(Int, Int)] {
        var elements: [(Int, Int)] = []
        var depth = 0
        var inString = false
        var escaped = false
        var elementStart: Int? = nil
        var i = open
        while i < bytes.count {
            let b = bytes[i]
            if inString {
                if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = true }
                else if b == UInt8(ascii: "\"") { inString = false }
                i += 1
                continue
            }
            switch b {
            case UInt8(ascii: "\""):
                inString = true
                if depth == 1 && elementStart == nil { elementStart = i }
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                if depth == 1 && elementStart == nil { elementStart = i }
                depth += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth -= 1
                if depth == 0 {
                    if let s = elementStart { elements.append((s, i)) }
                    let rest = bytes[(i + 1)...]
                    if let extra = rest.firstIndex(where: { !isSpace($0) }) {
                        throw ChairError.invalidCaptions(file: source, line: lineNumber(bytes, at: extra),
                                                         reason: "unexpected text after the end of the JSON list")
                    }
                    return elements
                }
            case UInt8(ascii: ","):
                if depth == 1 {
                    guard let s = elementStart else {
                        throw ChairError.invalidCaptions(file: source, line: lineNumber(bytes, at: i),
                                                         reason: "malformed JSON list: empty element")
                    }
                    elements.append((s, i))
                    elementStart = nil
                }
            default:
                if depth == 1 && elementStart == nil && !isSpace(b) { elementStart = i }
            }
            i += 1
        }
        throw ChairError.invalidCaptions(file: source, line: lineNumber(bytes, at: bytes.count),
                                         reason: "malformed JSON: the list is not closed (truncated file?)")
    }
}

/// Decodes one caption record with configurable keys.
private struct RecordReader {
    let source: String
    let imageIdKey: String
    let captionKey: String

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    struct Record: Decodable {
        var object: KeyedDecodingContainer<Key>
        init(from decoder: Decoder) throws { object = try decoder.container(keyedBy: Key.self) }
    }

    func record(_ data: Data, line: Int) throws -> ChairCaption {
        func fail(_ reason: String) -> ChairError {
            ChairError.invalidCaptions(file: source, line: line, reason: reason)
        }
        let record: Record
        do {
            record = try JSONDecoder().decode(Record.self, from: data)
        } catch DecodingError.typeMismatch {
            throw fail("expected a JSON object like {\"\(imageIdKey)\": 123, \"\(captionKey)\": \"...\"}")
        } catch {
            throw fail("malformed JSON (\(Self.reason(error)))")
        }
        let o = record.object
        let idKey = Key(stringValue: imageIdKey), capKey = Key(stringValue: captionKey)
        guard o.contains(idKey) else {
            throw fail("missing key \"\(imageIdKey)\" (keys here: \(o.allKeys.map(\.stringValue).sorted().joined(separator: ", "))); "
                       + "name the image-id key with --image-id-key")
        }
        guard o.contains(capKey) else {
            throw fail("missing key \"\(captionKey)\" (keys here: \(o.allKeys.map(\.stringValue).sorted().joined(separator: ", "))); "
                       + "name the caption key with --caption-key")
        }
        let id: Int
        if let n = try? o.decode(Int.self, forKey: idKey) {
            id = n
        } else if let s = try? o.decode(String.self, forKey: idKey), let n = Int(s) {
            id = n
        } else {
            throw fail("\"\(imageIdKey)\" must be an integer COCO image id")
        }
        guard let caption = try? o.decode(String.self, forKey: capKey) else {
            throw fail("\"\(captionKey)\" must be a string")
        }
        return ChairCaption(imageId: id, caption: caption)
    }

    static func reason(_ error: Error) -> String {
        if case DecodingError.dataCorrupted(let context) = error {
            if let underlying = context.underlyingError as NSError?,
               let detail = underlying.userInfo["NSDebugDescription"] as? String {
                return detail
            }
            return context.debugDescription
        }
        return "\(error)"
    }
}
