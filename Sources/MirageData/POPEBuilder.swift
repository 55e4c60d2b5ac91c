import Foundation

/// The objects of one image, in the order POPE takes positives from (`{"image", "objects"}` in POPE's
/// segmentation files).
public struct POPEImageObjects: Sendable, Hashable {
    public var image: String
    public var objects: [String]

    public init(image: String, objects: [String]) { self.image = image; self.objects = objects }
}

/// Builds POPE question sets the way RUCAIBox/POPE's `main.py` + `utils.py` (@ 3df3ba1) define them,
/// with a documented seeded generator so a set can be rebuilt bit-for-bit anywhere:
///
/// 1. Eligible images are those with at least `positivesPerImage` objects (input order).
/// 2. `images` of them are drawn without replacement by a partial Fisher–Yates shuffle driven by
///    `SplitMix64(seed)`: for i in 0..<k, swap position i with i + uniform(n − i); the first k, in draw
///    order, form the pool. (POPE uses Python's unseeded `random.sample`; only the rule is reproduced.)
/// 3. Object frequencies and co-occurrence counts are computed over the pool. Ties in both rankings keep
///    first-appearance order, as Python's stable `sorted(..., reverse=True)` over an insertion-ordered
///    dict does.
/// 4. Per image, for each of the first `positivesPerImage` objects (in list order): a "yes" question, then
///    one "no" question about an object that is neither in the image nor already asked about:
///    - random: uniform over the pool's distinct objects, redrawn on collision (POPE after commit 7cf0a02;
///      before it a collision skipped the negative, which is why OPERA's random file has 2,910 lines);
///    - popular: the most frequent pool object not yet used;
///    - adversarial: the object that co-occurs most often with that positive; random when none is left.
///    Popular also falls back to random. The random draws of split s use `SplitMix64(seed + 1 + i)` with
///    i = 0, 1, 2 for random, popular, adversarial, so each split is reproducible on its own.
/// 5. Question ids run from 1 in output order. Text comes from the template (`{}` = object): with
///    `reproduceTypo`, objects starting with a vowel use `template.replace("a", "an")` exactly as POPE
///    did ("Is there an apple in the imange?"); by default only the article is changed.
public struct POPEBuilder: Sendable {
    public var images: Int
    public var positivesPerImage: Int
    public var seed: UInt64
    public var template: String
    public var reproduceTypo: Bool

    public static let defaultTemplate = "Is there a {} in the image?"

    public init(images: Int = 500, positivesPerImage: Int = 3, seed: UInt64 = 0,
                template: String = POPEBuilder.defaultTemplate, reproduceTypo: Bool = false) {
        self.images = images; self.positivesPerImage = positivesPerImage; self.seed = seed
        self.template = template; self.reproduceTypo = reproduceTypo
    }

    /// Per-image objects from COCO instance annotations: images in file order, each with its distinct
    /// category names in the order of their first annotation.
    public static func groundTruth(from instances: COCOInstances) throws -> [POPEImageObjects] {
        let objects = try instances.objectsByImage()
        return instances.images.map { POPEImageObjects(image: $0.fileName, objects: objects[$0.id] ?? []) }
    }

    /// The image pool (steps 1–2).
    public func samplePool(_ groundTruth: [POPEImageObjects]) throws -> [POPEImageObjects] {
        var eligible = groundTruth.filter { $0.objects.count >= positivesPerImage }
        guard eligible.count >= images else {
            throw POPEError.notEnoughImages(eligible: eligible.count, requested: images, minObjects: positivesPerImage)
        }
        var rng = SplitMix64(seed: seed)
        for i in 0..<images {
            let j = i + rng.uniform(eligible.count - i)
            eligible.swapAt(i, j)
        }
        return Array(eligible.prefix(images))
    }

    /// Builds one split from a pool (steps 3–5).
    public func questions(pool: [POPEImageObjects], split: POPESplit) throws -> [POPEQuestion] {
        // Frequencies in first-appearance order, then a stable descending sort.
        var order: [String] = []
        var counts: [String: Int] = [:]
        for image in pool {
            for o in image.objects {
                if counts[o] == nil { order.append(o) }
                counts[o, default: 0] += 1
            }
        }
        let byFrequency = stableDescending(order, counts)

        var coOrder: [String: [String]] = [:]
        var coCounts: [String: [String: Int]] = [:]
        for image in pool {
            for o in image.objects {
                if coCounts[o] == nil { coCounts[o] = [:]; coOrder[o] = [] }
                for other in image.objects where other != o {
                    if coCounts[o]![other] == nil { coOrder[o]!.append(other) }
                    coCounts[o]![other, default: 0] += 1
                }
            }
        }

        let splitIndex = UInt64(POPESplit.allCases.firstIndex(of: split)!)
        var rng = SplitMix64(seed: seed &+ 1 &+ splitIndex)
        var out: [POPEQuestion] = []
        var nextID = 1
        for image in pool {
            var used: [String] = []
            let present = Set(image.objects)
            func available(_ o: String) -> Bool { !present.contains(o) && !used.contains(o) }
            func randomNegative() throws -> String {
                guard order.contains(where: available) else { throw POPEError.noNegativeCandidate(image: image.image) }
                while true {
                    let o = order[rng.uniform(order.count)]
                    if available(o) { return o }
                }
            }
            for i in 0..<positivesPerImage {
                let positive = image.objects[i]
                used.append(positive)
                out.append(POPEQuestion(questionID: nextID, image: image.image, text: text(for: positive), label: .yes))
                nextID += 1
                let negative: String
                switch split {
                case .random:
                    negative = try randomNegative()
                case .popular:
                    negative = try byFrequency.first(where: available) ?? randomNegative()
                case .adversarial:
                    let ranked = stableDescending(coOrder[positive] ?? [], coCounts[positive] ?? [:])
                    negative = try ranked.first(where: available) ?? randomNegative()
                }
                used.append(negative)
                out.append(POPEQuestion(questionID: nextID, image: image.image, text: text(for: negative), label: .no))
                nextID += 1
            }
        }
        return out
    }

    /// All three splits over one pool.
    public func build(_ groundTruth: [POPEImageObjects]) throws -> [POPESplit: [POPEQuestion]] {
        let pool = try samplePool(groundTruth)
        var result: [POPESplit: [POPEQuestion]] = [:]
        for split in POPESplit.allCases { result[split] = try questions(pool: pool, split: split) }
        return result
    }

    /// The question text for an object.
    public func text(for object: String) -> String {
        let vowel = object.first.map { "aeiou".contains($0) } ?? false
        guard vowel else { return template.replacingOccurrences(of: "{}", with: object) }
        if reproduceTypo {
            // Python's str.replace: every "a" becomes "an" ("image" → "imange").
            return template.replacingOccurrences(of: "a", with: "an").replacingOccurrences(of: "{}", with: object)
        }
        return template.replacingOccurrences(of: " a {}", with: " an {}")
            .replacingOccurrences(of: "{}", with: object)
    }

    func stableDescending(_ keys: [String], _ counts: [String: Int]) -> [String] {
        keys.enumerated().sorted { l, r in
            let a = counts[l.element]!, b = counts[r.element]!
            return a != b ? a > b : l.offset < r.offset
        }.map(\.element)
    }
}

extension POPEImageObjects {
    /// Reads POPE's ground-truth format: JSON lines `{"image": "COCO_val2014_….jpg", "objects": [...]}`
    /// (e.g. RUCAIBox/POPE `segmentation/coco_ground_truth_segmentation.json`). Other keys are ignored.
    public static func load(_ url: URL) throws -> [POPEImageObjects] {
        let text = String(decoding: try Data(contentsOf: url), as: UTF8.self)
        var out: [POPEImageObjects] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.allSatisfy(\.isWhitespace) { continue }
            var image: String?, objects: [String]?
            do {
                try JSONScanner.withBytes(Array(line.utf8), source: url.path) { s in
                    try s.forEachMember { key, s in
                        if key == "image" { image = try s.readString() }
                        else if key == "objects" {
                            var list: [String] = []
                            try s.forEachElement { s in list.append(try s.readString()) }
                            objects = list
                        } else { try s.skipValue() }
                    }
                }
            } catch let e as JSONScanError {
                throw POPEError.badLine(file: url.path, line: i + 1, reason: e.message)
            }
            guard let image, let objects else {
                throw POPEError.badLine(file: url.path, line: i + 1, reason: "expected {\"image\": ..., \"objects\": [...]}")
            }
            out.append(POPEImageObjects(image: image, objects: objects))
        }
        return out
    }
}
