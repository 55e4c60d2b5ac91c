import Foundation

/// Deterministic generator of a synthetic data set in the official COCO annotation layout
/// (`instances_<split>.json` + `captions_<split>.json`), for benchmarks and tests at any scale —
/// e.g. `SyntheticCOCO.coco2014Scale` has the image, instance and caption counts of COCO 2014
/// train+val. The content is invented; only the layout, the 80 category names and the sizes are COCO's.
public struct SyntheticCOCO: Sendable {
    public var images: Int
    /// Instance annotations per image: uniform in this range.
    public var instancesPerImage: ClosedRange<Int>
    /// Captions per image (COCO has 5, a few images 6 or 7).
    public var captionsPerImage: Int
    /// Points per segmentation polygon (0 = no segmentation); real files are mostly polygons.
    public var polygonPoints: Int
    public var seed: UInt64
    public var split: String

    public init(images: Int, instancesPerImage: ClosedRange<Int> = 1...13, captionsPerImage: Int = 5,
                polygonPoints: Int = 24, seed: UInt64 = 0, split: String = "synthetic") {
        self.images = images
        self.instancesPerImage = instancesPerImage
        self.captionsPerImage = captionsPerImage
        self.polygonPoints = polygonPoints
        self.seed = seed
        self.split = split
    }

    /// COCO 2014 train+val sizes: 123,287 images, ≈ 896k instances (mean 7.3 per image),
    /// 616,767 captions (≈ 5 per image).
    public static func coco2014Scale(seed: UInt64 = 0) -> SyntheticCOCO {
        SyntheticCOCO(images: 123_287, instancesPerImage: 1...13, captionsPerImage: 5, polygonPoints: 24, seed: seed)
    }

    /// The 80 COCO detection categories with their official ids (1–90 with gaps) and supercategories,
    /// as listed in the `categories` section of instances_val2014.json.
    public static let categories: [COCOCategory] = {
        let table: [(Int, String, String)] = [
            (1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"), (4, "motorcycle", "vehicle"),
            (5, "airplane", "vehicle"), (6, "bus", "vehicle"), (7, "train", "vehicle"), (8, "truck", "vehicle"),
            (9, "boat", "vehicle"), (10, "traffic light", "outdoor"), (11, "fire hydrant", "outdoor"),
            (13, "stop sign", "outdoor"), (14, "parking meter", "outdoor"), (15, "bench", "outdoor"),
            (16, "bird", "animal"), (17, "cat", "animal"), (18, "dog", "animal"), (19, "horse", "animal"),
            (20, "sheep", "animal"), (21, "cow", "animal"), (22, "elephant", "animal"), (23, "bear", "animal"),
            (24, "zebra", "animal"), (25, "giraffe", "animal"), (27, "backpack", "accessory"),
            (28, "umbrella", "accessory"), (31, "handbag", "accessory"), (32, "tie", "accessory"),
            (33, "suitcase", "accessory"), (34, "frisbee", "sports"), (35, "skis", "sports"),
            (36, "snowboard", "sports"), (37, "sports ball", "sports"), (38, "kite", "sports"),
            (39, "baseball bat", "sports"), (40, "baseball glove", "sports"), (41, "skateboard", "sports"),
            (42, "surfboard", "sports"), (43, "tennis racket", "sports"), (44, "bottle", "kitchen"),
            (46, "wine glass", "kitchen"), (47, "cup", "kitchen"), (48, "fork", "kitchen"), (49, "knife", "kitchen"),
            (50, "spoon", "kitchen"), (51, "bowl", "kitchen"), (52, "banana", "food"), (53, "apple", "food"),
            (54, "sandwich", "food"), (55, "orange", "food"), (56, "broccoli", "food"), (57, "carrot", "food"),
            (58, "hot dog", "food"), (59, "pizza", "food"), (60, "donut", "food"), (61, "cake", "food"),
            (62, "chair", "furniture"), (63, "couch", "furniture"), (64, "potted plant", "furniture"),
            (65, "bed", "furniture"), (67, "dining table", "furniture"), (70, "toilet", "furniture"),
            (72, "tv", "electronic"), (73, "laptop", "electronic"), (74, "mouse", "electronic"),
            (75, "remote", "electronic"), (76, "keyboard", "electronic"), (77, "cell phone", "electronic"),
            (78, "microwave", "appliance"), (79, "oven", "appliance"), (80, "toaster", "appliance"),
            (81, "sink", "appliance"), (82, "refrigerator", "appliance"), (84, "book", "indoor"),
            (85, "clock", "indoor"), (86, "vase", "indoor"), (87, "scissors", "indoor"), (88, "teddy bear", "indoor"),
            (89, "hair drier", "indoor"), (90, "toothbrush", "indoor"),
        ]
        return table.map { COCOCategory(id: $0.0, name: $0.1, supercategory: $0.2) }
    }()

    static let subjects = ["A man", "A woman", "Two people", "A group of kids", "A young boy", "An older woman",
                           "A couple", "A player", "Some men", "A girl"]
    static let verbs = ["is sitting next to", "is holding", "stands near", "is looking at", "walks past",
                        "is riding", "plays with", "is carrying", "leans on", "is cutting"]
    static let places = ["in a kitchen", "on a city street", "at the beach", "in a living room", "in a park",
                         "on a snowy hill", "in a field", "at a table", "near the water", "in an office"]
    static let adjectives = ["large", "small", "red", "white", "wooden", "old", "black", "colorful", "tall", "empty"]

    /// Paths of the two files written by `write(to:)`.
    public struct Files: Sendable {
        public var instances: URL
        public var captions: URL
        public var instanceCount: Int
        public var captionCount: Int
    }

    /// Writes `instances_<split>.json` and `captions_<split>.json` into `directory` (created if needed).
    /// The same configuration always produces byte-identical files.
    @discardableResult
    public func write(to directory: URL) throws -> Files {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let instancesURL = directory.appendingPathComponent("instances_\(split).json")
        let captionsURL = directory.appendingPathComponent("captions_\(split).json")
        var rng = SplitMix64(seed: seed)
        let cats = Self.categories
        var inst = try BufferedWriter(url: instancesURL)
        var caps = try BufferedWriter(url: captionsURL)
        let info = Self.infoJSON(seed: seed)
        inst.write("{\(info), \"images\": [")
        caps.write("{\(info), \"images\": [")
        for i in 0..<images {
            let id = imageID(i)
            let image = Self.imageJSON(id: id, split: split, width: 640, height: 480)
            let sep = i == 0 ? "" : ", "
            inst.write(sep + image)
            caps.write(sep + image)
        }
        inst.write("], \"annotations\": [")
        caps.write("], \"annotations\": [")
        var annotationID = 1, captionID = 1
        var first = true, firstCaption = true
        for i in 0..<images {
            let id = imageID(i)
            let span = instancesPerImage.upperBound - instancesPerImage.lowerBound + 1
            let count = instancesPerImage.lowerBound + rng.uniform(span)
            // A few distinct categories per image, repeated instances of them.
            var present: [COCOCategory] = []
            for _ in 0..<count {
                let cat: COCOCategory
                if !present.isEmpty && rng.uniform(2) == 0 {
                    cat = present[rng.uniform(present.count)]
                } else {
                    cat = cats[rng.uniform(cats.count)]
                    if !present.contains(cat) { present.append(cat) }
                }
                var a = first ? "" : ", "
                first = false
                a += "{\"segmentation\": [["
                let x0 = rng.uniform(600), y0 = rng.uniform(440)
                for p in 0..<polygonPoints {
                    if p > 0 { a += "," }
                    Self.appendHundredths(x0 * 100 + rng.uniform(4000), to: &a)
                    a += ","
                    Self.appendHundredths(y0 * 100 + rng.uniform(4000), to: &a)
                }
                a += "]], \"area\": \(rng.uniform(100_000)).5, \"iscrowd\": 0, \"image_id\": \(id), "
                a += "\"bbox\": [\(x0).0, \(y0).0, 40.0, 40.0], \"category_id\": \(cat.id), \"id\": \(annotationID)}"
                annotationID += 1
                inst.write(a)
            }
            for _ in 0..<captionsPerImage {
                let obj = present.isEmpty ? cats[rng.uniform(cats.count)] : present[rng.uniform(present.count)]
                let other = cats[rng.uniform(cats.count)]
                var text = "\(Self.subjects[rng.uniform(Self.subjects.count)]) \(Self.verbs[rng.uniform(Self.verbs.count)]) "
                text += "a \(Self.adjectives[rng.uniform(Self.adjectives.count)]) \(obj.name) "
                text += "and a \(other.name) \(Self.places[rng.uniform(Self.places.count)])."
                let sep = firstCaption ? "" : ", "
                firstCaption = false
                caps.write(sep + "{\"image_id\": \(id), \"id\": \(captionID), \"caption\": \"\(text)\"}")
                captionID += 1
            }
        }
        inst.write("], \"categories\": \(Self.categoriesJSON)}")
        caps.write("]}")
        try inst.close()
        try caps.close()
        return Files(instances: instancesURL, captions: captionsURL,
                     instanceCount: annotationID - 1, captionCount: captionID - 1)
    }

    /// The `info` and `licenses` members both files start with.
    static func infoJSON(seed: UInt64) -> String {
        "\"info\": {\"description\": \"Mirage synthetic COCO-layout data (seed \(seed))\", \"version\": \"1.0\", \"year\": 2014}, \"licenses\": []"
    }

    /// One entry of the `images` array, named as COCO names its files (`COCO_val2014_000000000042.jpg`).
    static func imageJSON(id: Int, split: String, width: Int, height: Int) -> String {
        "{\"license\": 1, \"file_name\": \"\(fileName(id: id, split: split))\", \"height\": \(height), \"width\": \(width), \"id\": \(id)}"
    }

    static func fileName(id: Int, split: String) -> String { "COCO_\(split)_\(padded(id)).jpg" }

    /// The `categories` array of the instances file.
    static let categoriesJSON: String = "[" + categories.map {
        "{\"supercategory\": \"\($0.supercategory ?? "")\", \"id\": \($0.id), \"name\": \"\($0.name)\"}"
    }.joined(separator: ", ") + "]"

    /// Appends v/100 with two decimals ("123.05").
    static func appendHundredths(_ v: Int, to s: inout String) {
        let frac = v % 100
        s += "\(v / 100)."
        if frac < 10 { s += "0" }
        s += "\(frac)"
    }

    /// COCO's zero-padded 12-digit id.
    static func padded(_ id: Int) -> String {
        let digits = String(id)
        return String(repeating: "0", count: max(0, 12 - digits.count)) + digits
    }

    /// Sparse, increasing image ids like COCO's.
    func imageID(_ index: Int) -> Int { Self.imageID(index) }
    static func imageID(_ index: Int) -> Int { 9 + index * 5 + (index % 3) }
}

/// Appends text to a file through a 1 MiB buffer.
struct BufferedWriter {
    let handle: FileHandle
    var buffer: [UInt8] = []

    init(url: URL) throws {
        guard FileManager.default.createFile(atPath: url.path, contents: nil),
              let h = FileHandle(forWritingAtPath: url.path) else {
            throw DataSourceError.cannotWrite(url.path)
        }
        handle = h
        buffer.reserveCapacity(1 << 20)
    }

    mutating func write(_ s: String) {
        buffer.append(contentsOf: s.utf8)
        if buffer.count >= 1 << 20 { flush() }
    }

    mutating func flush() {
        if !buffer.isEmpty { handle.write(Data(buffer)); buffer.removeAll(keepingCapacity: true) }
    }

    mutating func close() throws {
        flush()
        try handle.close()
    }
}
