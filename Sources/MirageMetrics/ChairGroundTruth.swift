import Foundation
import MirageText

/// CHAIR's ground truth: for every COCO image, the set of node words (COCO category names) that are
/// really there = instance-annotation categories ∪ objects the CHAIR pipeline finds in the human captions
/// (OPERA `chair.py`, `get_annotations`).
public struct ChairGroundTruth: Sendable, Hashable {
    public private(set) var objectsByImage: [Int: Set<String>]

    public init(objectsByImage: [Int: Set<String>]) {
        self.objectsByImage = objectsByImage
    }

    /// The node words of one image, or nil when the image is unknown.
    @inlinable
    public func objects(for imageId: Int) -> Set<String>? { objectsByImage[imageId] }

    public var imageCount: Int { objectsByImage.count }

    /// Loads the prebuilt layout `{"<image id>": ["node word", ...]}` (e.g. `coco2014_gt_objects.json`,
    /// exported from the reference's pickled evaluator).
    public init(prebuiltJSON url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw ChairError.unreadableFile(url.path, error.localizedDescription)
        }
        try self.init(prebuiltJSONData: data, source: url.path)
    }

    /// Parses the prebuilt layout from memory; `source` names the data in errors.
    public init(prebuiltJSONData data: Data, source: String) throws {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ChairError.invalidGroundTruth(source, "malformed JSON (\(Self.jsonReason(error)))")
        }
        guard let dictionary = object as? [String: Any] else {
            throw ChairError.invalidGroundTruth(source, "the top level is not an object")
        }
        var result: [Int: Set<String>] = [:]
        result.reserveCapacity(dictionary.count)
        for (key, value) in dictionary {
            guard let id = Int(key) else {
                throw ChairError.invalidGroundTruth(source, "key \"\(key)\" is not an integer image id")
            }
            guard let words = value as? [String] else {
                throw ChairError.invalidGroundTruth(source, "the value of image \(key) is not a list of strings")
            }
            result[id] = Set(words)
        }
        self.objectsByImage = result
    }

    /// The prebuilt layout, keys in ascending id order and node words sorted, so equal ground truths give
    /// identical bytes.
    public func prebuiltJSONData() -> Data {
        var out = "{"
        var first = true
        for id in objectsByImage.keys.sorted() {
            if !first { out += "," }
            first = false
            out += "\"\(id)\":["
            out += objectsByImage[id]!.sorted().map(Self.jsonString).joined(separator: ",")
            out += "]"
        }
        out += "}"
        return Data(out.utf8)
    }

    /// `BinaryTableReader` kind of a ground-truth image.
    public static let imageKind: UInt32 = 0x4754_4F31  // "GTO1"
    /// Bump when the image's layout changes: older images are then rebuilt from the JSON.
    public static let imageVersion: UInt32 = 1

    /// The ground truth as a binary image (node words once, then per image, in ascending id order, the
    /// indices of its words); `init(image:)` reads it back equal to `self`.
    public func encodedImage() -> [UInt8] {
        let words = Array(Set(objectsByImage.values.flatMap { $0 })).sorted()
        let index = Dictionary(uniqueKeysWithValues: words.enumerated().map { ($1, Int32($0)) })
        let ids = objectsByImage.keys.sorted()
        var starts: [Int32] = [0], members: [Int32] = []
        for id in ids {
            members += objectsByImage[id]!.map { index[$0]! }.sorted()
            starts.append(Int32(members.count))
        }
        var w = BinaryTableWriter()
        w.appendStrings(words)
        w.appendValues(ids.map { Int64($0) })
        w.appendValues(starts)
        w.appendValues(members)
        return w.encoded(kind: Self.imageKind, version: Self.imageVersion)
    }

    /// Reads `encodedImage()`'s bytes from `url` (one read); throws `BinaryTableError` when the image is
    /// damaged or inconsistent.
    public init(image url: URL) throws {
        let file = try BinaryTableFile(contentsOf: url)
        var r = try file.reader(kind: Self.imageKind, version: Self.imageVersion)
        let words = try r.nextStrings("ground-truth words")
        let ids = try r.next(Int64.self)
        let starts = try r.next(Int32.self, count: ids.count + 1, "ground-truth offsets")
        let members = try r.next(Int32.self)
        try r.expectEnd()
        guard starts.first == 0, Int(starts.last!) == members.count else {
            throw BinaryTableError("ground truth: offsets do not cover the object lists")
        }
        var result: [Int: Set<String>] = [:]
        result.reserveCapacity(ids.count)
        for (i, id) in ids.enumerated() {
            let a = Int(starts[i]), b = Int(starts[i + 1])
            guard a <= b, result[Int(id)] == nil else { throw BinaryTableError("ground truth: image \(id) is malformed") }
            var set = Set<String>(minimumCapacity: b - a)
            for k in a..<b {
                let w = Int(members[k])
                guard w >= 0, w < words.count else { throw BinaryTableError("ground truth: word index \(w) out of range") }
                set.insert(words[w])
            }
            result[Int(id)] = set
        }
        objectsByImage = result
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    static func jsonReason(_ error: Error) -> String {
        let ns = error as NSError
        if let detail = ns.userInfo["NSDebugDescription"] as? String { return detail }
        return ns.localizedDescription
    }
}
