import CMirageImage
import Foundation

/// A small, deterministic COCO-style image set for demos and end-to-end tests, made from a seed with
/// nothing downloaded: JPEG images of flat shapes (one per object, each COCO category with its own shape
/// and colour) on a shaded background, the official annotation layout (`instances_val2014.json`,
/// `captions_val2014.json`) describing exactly what was drawn, and POPE question files built from those
/// annotations with `POPEBuilder`.
///
/// Folder written by `write(to:)`:
///
///     images/COCO_val2014_000000000009.jpg ...
///     annotations/instances_val2014.json, annotations/captions_val2014.json
///     pope/coco_pope_random.json, coco_pope_popular.json, coco_pope_adversarial.json
///
/// The same configuration gives the same scenes, pixels and annotation bytes everywhere; the JPEG bytes
/// are those of the linked libjpeg-turbo (identical for one library version and settings).
public struct SyntheticImageSet: Sendable {
    public var images: Int
    /// Width and height of every image, in pixels.
    public var size: Int
    /// Distinct object categories per image (uniform in this range).
    public var objectsPerImage: ClosedRange<Int>
    public var captionsPerImage: Int
    public var seed: UInt64
    /// libjpeg quality (1–100).
    public var quality: Int
    /// Images in the POPE question pool (at most `images`; each needs 3 objects for POPE's 3 positives).
    public var popeImages: Int
    public var popeSplits: [POPESplit]

    /// The COCO split the files are named after.
    public static let split = "val2014"

    public init(images: Int = 8, size: Int = 336, objectsPerImage: ClosedRange<Int> = 3...5, captionsPerImage: Int = 2,
                seed: UInt64 = 0, quality: Int = 95, popeImages: Int? = nil,
                popeSplits: [POPESplit] = POPESplit.allCases) {
        self.images = images; self.size = size; self.objectsPerImage = objectsPerImage
        self.captionsPerImage = captionsPerImage; self.seed = seed; self.quality = quality
        self.popeImages = min(popeImages ?? images, images); self.popeSplits = popeSplits
    }

    // MARK: Scenes

    public enum ShapeKind: String, Sendable, CaseIterable { case ellipse, rectangle, triangle, diamond }

    /// One drawn object: its category, shape, box (pixels; x, y = top-left) and RGB colour.
    public struct SceneObject: Sendable, Hashable {
        public var category: COCOCategory
        public var shape: ShapeKind
        public var x: Int, y: Int, width: Int, height: Int
        public var color: [UInt8]

        /// Whether the pixel (px, py) is inside the shape (tested at the pixel centre).
        public func contains(_ px: Int, _ py: Int) -> Bool {
            let w = Double(width), h = Double(height)
            let dx = Double(px - x) + 0.5 - w / 2, dy = Double(py - y) + 0.5 - h / 2
            guard abs(dx) <= w / 2, abs(dy) <= h / 2 else { return false }
            switch shape {
            case .rectangle: return true
            case .ellipse: return (dx * dx) / (w * w / 4) + (dy * dy) / (h * h / 4) <= 1
            case .triangle: return abs(dx) <= (dy + h / 2) / h * (w / 2)     // apex at the top centre
            case .diamond: return abs(dx) / (w / 2) + abs(dy) / (h / 2) <= 1
            }
        }

        /// The outline as COCO's flat polygon `[x1, y1, x2, y2, ...]`.
        public var polygon: [Double] {
            let x0 = Double(x), y0 = Double(y), w = Double(width), h = Double(height)
            switch shape {
            case .rectangle: return [x0, y0, x0 + w, y0, x0 + w, y0 + h, x0, y0 + h]
            case .triangle: return [x0 + w / 2, y0, x0 + w, y0 + h, x0, y0 + h]
            case .diamond: return [x0 + w / 2, y0, x0 + w, y0 + h / 2, x0 + w / 2, y0 + h, x0, y0 + h / 2]
            case .ellipse:
                return (0..<16).flatMap { i -> [Double] in
                    let a = Double(i) * .pi / 8
                    return [x0 + w / 2 + w / 2 * cos(a), y0 + h / 2 + h / 2 * sin(a)]
                }
            }
        }

        /// Pixels inside the shape.
        public var area: Int {
            var n = 0
            for py in y..<(y + height) { for px in x..<(x + width) where contains(px, py) { n += 1 } }
            return n
        }
    }

    /// One image: id, file name, background (top and bottom colours of a vertical gradient), objects in
    /// drawing order (later ones cover earlier ones), and its captions.
    public struct Scene: Sendable, Hashable {
        public var id: Int
        public var fileName: String
        public var backgroundTop: [UInt8]
        public var backgroundBottom: [UInt8]
        public var objects: [SceneObject]
        public var captions: [String]
    }

    /// The fixed look of a category: shape by its index in COCO's list, hue spread by the golden ratio.
    public static func appearance(of category: COCOCategory) -> (shape: ShapeKind, color: [UInt8]) {
        let index = SyntheticCOCO.categories.firstIndex(of: category) ?? category.id
        let hue = (Double(index) * 0.618_033_988_75).truncatingRemainder(dividingBy: 1)
        return (ShapeKind.allCases[index % ShapeKind.allCases.count], hsvToRGB(hue: hue, saturation: 0.8, value: 0.85))
    }

    static func hsvToRGB(hue: Double, saturation s: Double, value v: Double) -> [UInt8] {
        let h = hue * 6, sector = Int(h) % 6, f = h - Double(Int(h))
        let p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f))
        let (r, g, b): (Double, Double, Double) = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][sector]
        return [r, g, b].map { UInt8(($0 * 255).rounded()) }
    }

    /// All scenes, in image order.
    public func scenes() -> [Scene] {
        var rng = SplitMix64(seed: seed)
        let categories = SyntheticCOCO.categories
        return (0..<images).map { i in
            let span = objectsPerImage.upperBound - objectsPerImage.lowerBound + 1
            let count = min(categories.count, objectsPerImage.lowerBound + rng.uniform(span))
            var chosen: [COCOCategory] = []
            while chosen.count < count {
                let c = categories[rng.uniform(categories.count)]
                if !chosen.contains(c) { chosen.append(c) }
            }
            let objects = chosen.map { category -> SceneObject in
                let (shape, color) = Self.appearance(of: category)
                let minSide = max(2, size / 6), spread = max(1, size / 4)
                let w = min(size, minSide + rng.uniform(spread)), h = min(size, minSide + rng.uniform(spread))
                return SceneObject(category: category, shape: shape, x: rng.uniform(size - w + 1),
                                   y: rng.uniform(size - h + 1), width: w, height: h, color: color)
            }
            let grey = 170 + rng.uniform(60)
            let top = [UInt8(grey), UInt8(grey + rng.uniform(20)), UInt8(min(255, grey + 20))]
            let bottom = top.map { UInt8(max(0, Int($0) - 50)) }
            let id = SyntheticCOCO.imageID(i)
            return Scene(id: id, fileName: SyntheticCOCO.fileName(id: id, split: Self.split), backgroundTop: top,
                         backgroundBottom: bottom, objects: objects, captions: captions(for: chosen, rng: &rng))
        }
    }

    func captions(for objects: [COCOCategory], rng: inout SplitMix64) -> [String] {
        func article(_ name: String) -> String { "aeiou".contains(name.first!) ? "an \(name)" : "a \(name)" }
        let names = objects.map { article($0.name) }
        let list = names.count == 1 ? names[0]
            : names.dropLast().joined(separator: ", ") + " and " + names.last!
        let templates = [
            "A picture of \(list).",
            "There is \(names[0]) in the picture.",
            "A drawing that shows \(list) on a plain background.",
            "Some simple shapes: \(list).",
        ]
        return (0..<captionsPerImage).map { _ in templates[rng.uniform(templates.count)] }
    }

    /// The RGB pixels (rows packed, 3 bytes per pixel) of a scene.
    public func render(_ scene: Scene) -> [UInt8] {
        var pixels = [UInt8](repeating: 0, count: size * size * 3)
        for y in 0..<size {
            let t = size > 1 ? Double(y) / Double(size - 1) : 0
            for c in 0..<3 {
                let v = UInt8((Double(scene.backgroundTop[c]) * (1 - t) + Double(scene.backgroundBottom[c]) * t).rounded())
                for x in 0..<size { pixels[(y * size + x) * 3 + c] = v }
            }
        }
        for object in scene.objects {
            for py in object.y..<(object.y + object.height) {
                for px in object.x..<(object.x + object.width) where object.contains(px, py) {
                    let o = (py * size + px) * 3
                    pixels[o] = object.color[0]; pixels[o + 1] = object.color[1]; pixels[o + 2] = object.color[2]
                }
            }
        }
        return pixels
    }

    // MARK: Files

    public struct Files: Sendable {
        public var root: URL
        public var imageDirectory: URL
        public var instances: URL
        public var captions: URL
        /// One POPE question file per requested split.
        public var popeQuestions: [POPESplit: URL]
        public var scenes: [Scene]
    }

    /// Where `write(to:)` puts each file under `root` (nothing is read or written).
    public func files(at root: URL, scenes: [Scene] = []) -> Files {
        let annotations = root.appendingPathComponent("annotations")
        var pope: [POPESplit: URL] = [:]
        for split in popeSplits { pope[split] = root.appendingPathComponent("pope/coco_pope_\(split.rawValue).json") }
        return Files(root: root, imageDirectory: root.appendingPathComponent("images"),
                     instances: annotations.appendingPathComponent("instances_\(Self.split).json"),
                     captions: annotations.appendingPathComponent("captions_\(Self.split).json"),
                     popeQuestions: pope, scenes: scenes)
    }

    /// Writes images, annotations and POPE files under `root` (folders created as needed).
    @discardableResult
    public func write(to root: URL) throws -> Files {
        let scenes = scenes()
        let files = files(at: root, scenes: scenes)
        let fm = FileManager.default
        for dir in [files.imageDirectory, files.instances.deletingLastPathComponent()]
            + files.popeQuestions.values.map({ $0.deletingLastPathComponent() }) {
            try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        }
        for scene in scenes {
            let jpeg = try JPEGEncoder.encode(rgb: render(scene), width: size, height: size, quality: quality)
            try jpeg.write(to: files.imageDirectory.appendingPathComponent(scene.fileName))
        }
        try writeAnnotations(scenes, files: files)
        if !files.popeQuestions.isEmpty {
            let builder = POPEBuilder(images: popeImages, positivesPerImage: 3, seed: seed)
            let pool = try builder.samplePool(scenes.map { s in
                POPEImageObjects(image: s.fileName, objects: s.objects.map(\.category.name))
            })
            for (split, url) in files.popeQuestions {
                try POPEQuestionReader.jsonLines(try builder.questions(pool: pool, split: split)).write(to: url)
            }
        }
        return files
    }

    func writeAnnotations(_ scenes: [Scene], files: Files) throws {
        var instances = try BufferedWriter(url: files.instances)
        var captions = try BufferedWriter(url: files.captions)
        let head = "{\(SyntheticCOCO.infoJSON(seed: seed)), \"images\": ["
            + scenes.map { SyntheticCOCO.imageJSON(id: $0.id, split: Self.split, width: size, height: size) }
                .joined(separator: ", ") + "], \"annotations\": ["
        instances.write(head)
        captions.write(head)
        var annotationID = 1, captionID = 1
        for scene in scenes {
            for object in scene.objects {
                var polygon = ""
                for (i, v) in object.polygon.enumerated() {
                    if i > 0 { polygon += ", " }
                    SyntheticCOCO.appendHundredths(Int((v * 100).rounded()), to: &polygon)
                }
                instances.write((annotationID == 1 ? "" : ", ") + "{\"segmentation\": [[\(polygon)]], "
                    + "\"area\": \(Double(object.area)), \"iscrowd\": 0, \"image_id\": \(scene.id), "
                    + "\"bbox\": [\(Double(object.x)), \(Double(object.y)), \(Double(object.width)), \(Double(object.height))], "
                    + "\"category_id\": \(object.category.id), \"id\": \(annotationID)}")
                annotationID += 1
            }
            for caption in scene.captions {
                captions.write((captionID == 1 ? "" : ", ")
                    + "{\"image_id\": \(scene.id), \"id\": \(captionID), \"caption\": \(PythonJSON.string(caption))}")
                captionID += 1
            }
        }
        instances.write("], \"categories\": \(SyntheticCOCO.categoriesJSON)}")
        captions.write("]}")
        try instances.close()
        try captions.close()
    }
}

/// libjpeg-turbo's compressor (baseline JPEG, 4:4:4 chroma).
public enum JPEGEncoder {
    public struct EncodingError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { "JPEG encoding failed: \(message)" }
    }

    /// Encodes packed 8-bit RGB (`channels` 3) or grey (1) rows.
    public static func encode(rgb pixels: [UInt8], width: Int, height: Int, channels: Int = 3, quality: Int = 95) throws -> Data {
        guard pixels.count == width * height * channels else {
            throw EncodingError(message: "\(pixels.count) bytes for a \(width)×\(height)×\(channels) image (expected \(width * height * channels))")
        }
        var out: UnsafeMutablePointer<UInt8>? = nil
        var size = 0
        var message = [CChar](repeating: 0, count: 200)
        let status = pixels.withUnsafeBufferPointer { p in
            mirage_jpeg_encode(p.baseAddress, Int32(width), Int32(height), Int32(channels), Int32(quality),
                               &out, &size, &message)
        }
        guard status == 0, let out else {
            throw EncodingError(message: String(cString: message))
        }
        defer { mirage_image_free(out) }
        return Data(bytes: out, count: size)
    }
}
