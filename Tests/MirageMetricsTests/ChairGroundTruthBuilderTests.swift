import Foundation
import MirageTestSupport
import Testing
import MirageMetrics

/// A hand-made annotation set in the official COCO 2014 layout (text written for this test).
enum TinyCOCO {
    static let categories = """
    "categories": [{"supercategory": "person", "id": 1, "name": "person"},
                   {"supercategory": "animal", "id": 18, "name": "dog"},
                   {"supercategory": "furniture", "id": 62, "name": "chair"},
                   {"supercategory": "furniture", "id": 70, "name": "toilet"},
                   {"supercategory": "vehicle", "id": 7, "name": "train"}]
    """
    static let files: [String: String] = [
        "instances_train2014.json": """
        {"info": {"description": "tiny"}, "licenses": [],
         "images": [{"id": 10, "file_name": "a.jpg", "width": 640, "height": 480},
                    {"id": 20, "file_name": "b.jpg", "width": 640, "height": 480}],
         "annotations": [
           {"segmentation": [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]], "area": 10.5, "iscrowd": 0, "image_id": 10,
            "bbox": [1, 2, 3, 4], "category_id": 1, "id": 1},
           {"segmentation": {"counts": [1, 2, 3], "size": [480, 640]}, "area": 3, "iscrowd": 1, "image_id": 10,
            "bbox": [1, 2, 3, 4], "category_id": 18, "id": 2},
           {"segmentation": [[1, 2, 3, 4, 5, 6]], "area": 1, "iscrowd": 0, "image_id": 10,
            "bbox": [0, 0, 1, 1], "category_id": 1, "id": 3}],
         \(categories)}
        """,
        "instances_val2014.json": """
        {"images": [{"id": 30, "file_name": "c.jpg"}, {"id": 40, "file_name": "d.jpg"}],
         "annotations": [{"image_id": 30, "category_id": 62, "id": 4, "bbox": [0, 0, 2, 2],
                          "segmentation": [[0, 0, 1, 1, 2, 2]]}],
         \(categories)}
        """,
        "captions_train2014.json": """
        {"images": [{"id": 10, "file_name": "a.jpg"}, {"id": 20, "file_name": "b.jpg"}],
         "annotations": [
           {"image_id": 10, "id": 100, "caption": "A man with two puppies"},
           {"image_id": 20, "id": 101, "caption": "A passenger train at the station"},
           {"image_id": 20, "id": 102, "caption": "the seat of the toilet"}]}
        """,
        "captions_val2014.json": """
        {"annotations": [
           {"image_id": 30, "id": 103, "caption": "A baby elephant near a hot dog stand"},
           {"image_id": 40, "id": 104, "caption": "nothing to see here"},
           {"image_id": 50, "id": 105, "caption": "A jet in the \\"sky\\""}],
         "images": [{"id": 30, "file_name": "c.jpg"}, {"id": 40, "file_name": "d.jpg"}, {"id": 50, "file_name": "e.jpg"}]}
        """,
    ]

    /// Hand-derived: instance categories ∪ caption objects (puppies→dog, passenger train→train, the toilet
    /// rule drops "seat", baby elephant→elephant, hot dog, jet→airplane); image 40 has nothing.
    static let expected: [Int: Set<String>] = [
        10: ["person", "dog"], 20: ["train", "toilet"], 30: ["chair", "elephant", "hot dog"], 40: [], 50: ["airplane"],
    ]

    static func write() throws -> URL {
        let dir = TestTemporary.root
            .appendingPathComponent("mirage-chair-tiny-coco-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (name, text) in files { try Data(text.utf8).write(to: dir.appendingPathComponent(name)) }
        return dir
    }
}

@Suite struct ChairGroundTruthBuilderTests {
    let builder = ChairGroundTruthBuilder(
        vocabulary: try! ChairVocabulary(synonymsText: miniSynonyms),
        analyzer: TableAnalyzer(lemmas: ["puppies": "puppy"]), threads: 2)

    @Test func buildsInstancesUnionCaptionObjects() throws {
        let dir = try TinyCOCO.write()
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try builder.build(annotationsDirectory: dir, cacheDirectory: nil, pipelineVersion: "test")
        #expect(result.groundTruth.objectsByImage == TinyCOCO.expected)
        #expect(!result.cacheHit)
    }

    @Test func secondBuildHitsTheCacheAndAChangedFileMissesIt() throws {
        let dir = try TinyCOCO.write()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cache = dir.appendingPathComponent("cache")
        let first = try builder.build(annotationsDirectory: dir, cacheDirectory: cache, pipelineVersion: "test")
        #expect(!first.cacheHit)
        let second = try builder.build(annotationsDirectory: dir, cacheDirectory: cache, pipelineVersion: "test")
        #expect(second.cacheHit)
        #expect(second.groundTruth == first.groundTruth)
        #expect(second.groundTruth.objectsByImage == TinyCOCO.expected)
        // The cached JSON is read through its binary image from the second build on (ChairResourceCache).
        let images = try FileManager.default.contentsOfDirectory(atPath: cache.path).filter { $0.hasPrefix("ground-truth-") && $0.hasSuffix(".bin") }
        #expect(images.count == 1)
        let third = try builder.build(annotationsDirectory: dir, cacheDirectory: cache, pipelineVersion: "test")
        #expect(third.cacheHit && third.groundTruth.objectsByImage == TinyCOCO.expected)
        for id in TinyCOCO.expected.keys { #expect(third.groundTruth.objects(for: id) == TinyCOCO.expected[id]) }
        #expect(third.groundTruth.objects(for: -1) == nil && third.groundTruth.imageCount == TinyCOCO.expected.count)
        // Another pipeline version or changed input content → rebuilt.
        let otherVersion = try builder.build(annotationsDirectory: dir, cacheDirectory: cache, pipelineVersion: "v2")
        #expect(!otherVersion.cacheHit)
        let captions = dir.appendingPathComponent("captions_val2014.json")
        try (String(contentsOf: captions, encoding: .utf8) + "\n").write(to: captions, atomically: true, encoding: .utf8)
        let changed = try builder.build(annotationsDirectory: dir, cacheDirectory: cache, pipelineVersion: "test")
        #expect(!changed.cacheHit)
    }

    @Test func missingFileAndUnknownCategoryAreTypedErrors() throws {
        let dir = try TinyCOCO.write()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("captions_train2014.json"))
        #expect {
            try builder.build(annotationsDirectory: dir, cacheDirectory: nil, pipelineVersion: "test")
        } throws: { error in
            "\(error)".contains("captions_train2014.json") && "\(error)".contains("does not exist")
        }
        let zebra = try TinyCOCO.write()
        defer { try? FileManager.default.removeItem(at: zebra) }
        // A declared but unused category outside the vocabulary is fine (the reference never looks it up);
        // one that an annotation uses is an error.
        let url = zebra.appendingPathComponent("instances_val2014.json")
        let unused = try String(contentsOf: url, encoding: .utf8).replacingOccurrences(of: "\"train\"", with: "\"zebra\"")
        try unused.write(to: url, atomically: true, encoding: .utf8)
        #expect(try builder.build(annotationsDirectory: zebra, cacheDirectory: nil, pipelineVersion: "test")
            .groundTruth.objectsByImage == TinyCOCO.expected)
        let text = unused.replacingOccurrences(of: "\"category_id\": 62", with: "\"category_id\": 7")
        try text.write(to: url, atomically: true, encoding: .utf8)
        #expect(throws: ChairError.unknownCategory("zebra", file: url.path)) {
            try builder.build(annotationsDirectory: zebra, cacheDirectory: nil, pipelineVersion: "test")
        }
    }
}
