import Foundation
import MirageText

/// CHAIR's ground truth: for every COCO image, the set of node words (COCO category names) that are
/// really there = instance-annotation categories ∪ objects the CHAIR pipeline finds in the human captions
/// (OPERA `chair.py`, `get_annotations`).
public struct ChairGroundTruth: Sendable, Hashable {
    /// A dictionary, or (read from a cached binary image) the image itself, searched per lookup: building
    /// 40,000 sets that a run of 500 captions never reads would cost more than the rest of its start-up.
    private enum Storage: Sendable {
        case objects([Int: Set<String>])
        case image(GroundTruthImage)
    }
    private let storage: Storage

    public init(objectsByImage: [Int: Set<String>]) {
        storage = .objects(objectsByImage)
    }

    /// Every image's node words (built on each call when the ground truth was read from an image).
    public var objectsByImage: [Int: Set<String>] {
        switch storage {
        case .objects(let objects): return objects
        case .image(let image): return image.dictionary()
        }
    }

    /// The node words of one image, or nil when the image is unknown.
    public func objects(for imageId: Int) -> Set<String>? {
        switch storage {
        case .objects(let objects): return objects[imageId]
        case .image(let image): return image.objects(for: imageId)
        }
    }

    public var imageCount: Int {
        switch storage {
        case .objects(let objects): return objects.count
        case .image(let image): return image.ids.count
        }
    }

    public static func == (a: ChairGroundTruth, b: ChairGroundTruth) -> Bool { a.objectsByImage == b.objectsByImage }

    public func hash(into hasher: inout Hasher) { hasher.combine(objectsByImage) }

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
        storage = .objects(result)
    }

    /// The prebuilt layout, keys in ascending id order and node words sorted, so equal ground truths give
    /// identical bytes.
    public func prebuiltJSONData() -> Data {
        var out = "{"
        var first = true
        let objects = objectsByImage
        for id in objects.keys.sorted() {
            if !first { out += "," }
            first = false
            out += "\"\(id)\":["
            out += objects[id]!.sorted().map(Self.jsonString).joined(separator: ",")
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
        let objects = objectsByImage
        let words = Array(Set(objects.values.flatMap { $0 })).sorted()
        let index = Dictionary(uniqueKeysWithValues: words.enumerated().map { ($1, Int32($0)) })
        let ids = objects.keys.sorted()
        var starts: [Int32] = [0], members: [Int32] = []
        for id in ids {
            members += objects[id]!.map { index[$0]! }.sorted()
            starts.append(Int32(members.count))
        }
        var w = BinaryTableWriter()
        w.appendStrings(words)
        w.appendValues(ids.map { Int64($0) })
        w.appendValues(starts)
        w.appendValues(members)
        return w.encoded(kind: Self.imageKind, version: Self.imageVersion)
    }

    /// Reads `encodedImage()`'s bytes from `url` (one read) and keeps them: lookups search the image. Throws
    /// `BinaryTableError` when the image is damaged or inconsistent (ids not strictly ascending, offsets
    /// outside the lists, word indices outside the words).
    public init(image url: URL) throws {
        storage = .image(try GroundTruthImage(url))
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

/// A ground-truth image kept in memory: ids ascending, per id a range of word indices.
final class GroundTruthImage: @unchecked Sendable {
    private let file: BinaryTableFile
    let ids: UnsafeBufferPointer<Int64>
    private let starts: UnsafeBufferPointer<Int32>
    private let members: UnsafeBufferPointer<Int32>
    private let words: [String]

    init(_ url: URL) throws {
        file = try BinaryTableFile(contentsOf: url)
        var r = try file.reader(kind: ChairGroundTruth.imageKind, version: ChairGroundTruth.imageVersion)
        words = try r.nextStrings("ground-truth words")
        ids = try r.next(Int64.self)
        starts = try r.next(Int32.self, count: ids.count + 1, "ground-truth offsets")
        members = try r.next(Int32.self)
        try r.expectEnd()
        guard starts[0] == 0, Int(starts[ids.count]) == members.count else {
            throw BinaryTableError("ground truth: offsets do not cover the object lists")
        }
        for k in 0..<ids.count {
            guard starts[k] <= starts[k + 1] else { throw BinaryTableError("ground truth: offsets decrease at \(k)") }
            guard k == 0 || ids[k - 1] < ids[k] else { throw BinaryTableError("ground truth: ids not ascending at \(k)") }
        }
        for w in members where w < 0 || Int(w) >= words.count {
            throw BinaryTableError("ground truth: word index \(w) out of range")
        }
    }

    func objects(for imageId: Int) -> Set<String>? {
        var low = 0, high = ids.count
        let key = Int64(imageId)
        while low < high {
            let mid = (low + high) / 2
            if ids[mid] < key { low = mid + 1 } else { high = mid }
        }
        guard low < ids.count, ids[low] == key else { return nil }
        return objects(at: low)
    }

    private func objects(at k: Int) -> Set<String> {
        var set = Set<String>(minimumCapacity: Int(starts[k + 1] - starts[k]))
        for m in Int(starts[k])..<Int(starts[k + 1]) { set.insert(words[Int(members[m])]) }
        return set
    }

    func dictionary() -> [Int: Set<String>] {
        var result = [Int: Set<String>](minimumCapacity: ids.count)
        for k in 0..<ids.count { result[Int(ids[k])] = objects(at: k) }
        return result
    }
}
