import Foundation

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
