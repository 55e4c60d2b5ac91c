import Foundation

// Readers for the official COCO annotation files (https://cocodataset.org/#format-data):
// `instances_*.json` = {"info", "licenses", "images": [{"id", "file_name", "width", "height", ...}],
//                       "annotations": [{"id", "image_id", "category_id", "segmentation", "bbox", ...}],
//                       "categories": [{"id", "name", "supercategory"}]}
// `captions_*.json`  = {"info", "licenses", "images": [...], "annotations": [{"id", "image_id", "caption"}]}
// Top-level sections may appear in any order; unknown keys and fields are skipped without decoding.

public struct COCOImage: Sendable, Hashable, Codable {
    public var id: Int
    public var fileName: String
    public var width: Int?
    public var height: Int?

    public init(id: Int, fileName: String, width: Int? = nil, height: Int? = nil) {
        self.id = id; self.fileName = fileName; self.width = width; self.height = height
    }
}

public struct COCOCategory: Sendable, Hashable, Codable {
    public var id: Int
    public var name: String
    public var supercategory: String?

    public init(id: Int, name: String, supercategory: String? = nil) {
        self.id = id; self.name = name; self.supercategory = supercategory
    }
}

/// One instance annotation, reduced to what object-hallucination metrics need.
public struct COCOInstance: Sendable, Hashable, Codable {
    public var imageID: Int
    public var categoryID: Int

    public init(imageID: Int, categoryID: Int) { self.imageID = imageID; self.categoryID = categoryID }
}

public struct COCOCaption: Sendable, Hashable, Codable {
    public var imageID: Int
    public var caption: String

    public init(imageID: Int, caption: String) { self.imageID = imageID; self.caption = caption }
}

/// The content of an `instances_*.json` file (annotations in file order).
public struct COCOInstances: Sendable {
    public var images: [COCOImage]
    public var categories: [COCOCategory]
    public var annotations: [COCOInstance]

    public init(images: [COCOImage] = [], categories: [COCOCategory] = [], annotations: [COCOInstance] = []) {
        self.images = images; self.categories = categories; self.annotations = annotations
    }

    /// Category id → name.
    public var categoryNames: [Int: String] {
        Dictionary(categories.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
    }

    /// Per image id, the distinct category names of its annotations in the order they first appear in the
    /// file. Images without annotations map to an empty list. Unknown category ids throw.
    public func objectsByImage() throws -> [Int: [String]] {
        let names = categoryNames
        var result: [Int: [String]] = [:]
        result.reserveCapacity(images.count)
        for image in images { result[image.id] = [] }
        for a in annotations {
            guard let name = names[a.categoryID] else { throw COCOError.unknownCategory(a.categoryID) }
            if let existing = result[a.imageID], existing.contains(name) { continue }
            result[a.imageID, default: []].append(name)
        }
        return result
    }

    /// Appends another file's content (e.g. train2014 + val2014).
    public mutating func merge(_ other: COCOInstances) {
        images += other.images
        let known = Set(categories.map(\.id))
        categories += other.categories.filter { !known.contains($0.id) }
        annotations += other.annotations
    }
}

/// The content of a `captions_*.json` file (captions in file order).
public struct COCOCaptions: Sendable {
    public var images: [COCOImage]
    public var captions: [COCOCaption]

    public init(images: [COCOImage] = [], captions: [COCOCaption] = []) {
        self.images = images; self.captions = captions
    }

    public mutating func merge(_ other: COCOCaptions) {
        images += other.images
        captions += other.captions
    }

    /// Image id → its captions, in file order.
    public var captionsByImage: [Int: [String]] {
        var result: [Int: [String]] = [:]
        for c in captions { result[c.imageID, default: []].append(c.caption) }
        return result
    }
}

public enum COCOError: Error, CustomStringConvertible {
    case missingSection(file: String, section: String)
    case missingField(file: String, section: String, index: Int, field: String)
    case unknownCategory(Int)

    public var description: String {
        switch self {
        case .missingSection(let file, let section):
            return "\(file) has no \"\(section)\" array: it is not a COCO \(section == "categories" ? "instances" : "annotation") file (expected the official instances_*.json or captions_*.json layout)"
        case .missingField(let file, let section, let index, let field):
            return "\(file): \(section)[\(index)] has no \"\(field)\" field; the file does not follow the COCO annotation format"
        case .unknownCategory(let id):
            return "an annotation refers to category id \(id), which the file's \"categories\" does not define; the file is inconsistent"
        }
    }
}

/// Streaming readers for COCO annotation files (see the file header for the layout).
public enum COCOReader {
    /// Reads an `instances_*.json` file. Segmentations, boxes and other fields are skipped.
    public static func instances(at url: URL) throws -> COCOInstances {
        try JSONScanner.withContents(of: url) { try instances(scanner: &$0) }
    }

    public static func instances(data: Data, source: String = "<memory>") throws -> COCOInstances {
        try JSONScanner.withBytes(data, source: source) { try instances(scanner: &$0) }
    }

    static func instances(scanner s: inout JSONScanner) throws -> COCOInstances {
        var out = COCOInstances()
        var sawImages = false, sawCategories = false, sawAnnotations = false
        let file = s.source
        try s.forEachMember { key, s in
            if key == "images" {
                sawImages = true
                out.images = try readImages(&s, file: file)
            } else if key == "categories" {
                sawCategories = true
                var index = 0
                try s.forEachElement { s in
                    var id: Int?, name: String?, supercategory: String?
                    try s.forEachMember { k, s in
                        if k == "id" { id = try s.readInt() }
                        else if k == "name" { name = try s.readString() }
                        else if k == "supercategory" { supercategory = try s.readString() }
                        else { try s.skipValue() }
                    }
                    guard let id else { throw COCOError.missingField(file: file, section: "categories", index: index, field: "id") }
                    guard let name else { throw COCOError.missingField(file: file, section: "categories", index: index, field: "name") }
                    out.categories.append(COCOCategory(id: id, name: name, supercategory: supercategory))
                    index += 1
                }
            } else if key == "annotations" {
                sawAnnotations = true
                var index = 0
                try s.forEachElement { s in
                    var imageID: Int?, categoryID: Int?
                    try s.forEachMember { k, s in
                        if k == "image_id" { imageID = try s.readInt() }
                        else if k == "category_id" { categoryID = try s.readInt() }
                        else { try s.skipValue() }
                    }
                    guard let imageID else { throw COCOError.missingField(file: file, section: "annotations", index: index, field: "image_id") }
                    guard let categoryID else { throw COCOError.missingField(file: file, section: "annotations", index: index, field: "category_id") }
                    out.annotations.append(COCOInstance(imageID: imageID, categoryID: categoryID))
                    index += 1
                }
            } else {
                try s.skipValue()
            }
        }
        if !sawImages { throw COCOError.missingSection(file: file, section: "images") }
        if !sawCategories { throw COCOError.missingSection(file: file, section: "categories") }
        if !sawAnnotations { throw COCOError.missingSection(file: file, section: "annotations") }
        return out
    }

    /// Reads a `captions_*.json` file.
    public static func captions(at url: URL) throws -> COCOCaptions {
        try JSONScanner.withContents(of: url) { try captions(scanner: &$0) }
    }

    public static func captions(data: Data, source: String = "<memory>") throws -> COCOCaptions {
        try JSONScanner.withBytes(data, source: source) { try captions(scanner: &$0) }
    }

    static func captions(scanner s: inout JSONScanner) throws -> COCOCaptions {
        var out = COCOCaptions()
        var sawAnnotations = false
        let file = s.source
        try s.forEachMember { key, s in
            if key == "images" {
                out.images = try readImages(&s, file: file)
            } else if key == "annotations" {
                sawAnnotations = true
                var index = 0
                try s.forEachElement { s in
                    var imageID: Int?, caption: String?
                    try s.forEachMember { k, s in
                        if k == "image_id" { imageID = try s.readInt() }
                        else if k == "caption" { caption = try s.readString() }
                        else { try s.skipValue() }
                    }
                    guard let imageID else { throw COCOError.missingField(file: file, section: "annotations", index: index, field: "image_id") }
                    guard let caption else { throw COCOError.missingField(file: file, section: "annotations", index: index, field: "caption") }
                    out.captions.append(COCOCaption(imageID: imageID, caption: caption))
                    index += 1
                }
            } else {
                try s.skipValue()
            }
        }
        if !sawAnnotations { throw COCOError.missingSection(file: file, section: "annotations") }
        return out
    }

    static func readImages(_ s: inout JSONScanner, file: String) throws -> [COCOImage] {
        var images: [COCOImage] = []
        var index = 0
        try s.forEachElement { s in
            var id: Int?, fileName: String?, width: Int?, height: Int?
            try s.forEachMember { k, s in
                if k == "id" { id = try s.readInt() }
                else if k == "file_name" { fileName = try s.readString() }
                else if k == "width" { width = s.readNull() ? nil : try s.readInt() }
                else if k == "height" { height = s.readNull() ? nil : try s.readInt() }
                else { try s.skipValue() }
            }
            guard let id else { throw COCOError.missingField(file: file, section: "images", index: index, field: "id") }
            images.append(COCOImage(id: id, fileName: fileName ?? "", width: width, height: height))
            index += 1
        }
        return images
    }
}
