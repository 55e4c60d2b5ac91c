import Foundation
import Testing
@testable import MirageData
import MirageTestSupport

@Suite struct COCOReaderTests {
    /// Hand-made instances file: sections out of order, unknown fields and nested polygons to skip,
    /// escapes including a surrogate pair, ids written as 7.0.
    static let instancesJSON = #"""
    {
      "annotations": [
        {"segmentation": [[1.5, 2, 3e2, [4]]], "area": 10.5, "iscrowd": 0, "image_id": 7, "bbox": [1,2,3,4], "category_id": 18, "id": 1},
        {"id": 2, "category_id": 1, "image_id": 7, "extra": {"nested": ["]", "}", "\""]}},
        {"image_id": 12, "category_id": 18, "id": 3},
        {"image_id": 7, "category_id": 18, "id": 4}
      ],
      "info": {"description": "mine", "year": 2024},
      "images": [
        {"id": 7.0, "file_name": "a\/b \"q\" caf\u00e9 \ud83d\ude00.jpg", "width": 640, "height": null},
        {"file_name": "twelve.jpg", "id": 12},
        {"id": 99, "file_name": "empty.jpg"}
      ],
      "categories": [{"supercategory": "animal", "id": 18, "name": "dog"}, {"id": 1, "name": "person"}],
      "licenses": []
    }
    """#

    @Test func readsHandMadeInstances() throws {
        let inst = try COCOReader.instances(data: Data(Self.instancesJSON.utf8))
        #expect(inst.images.count == 3)
        #expect(inst.images[0] == COCOImage(id: 7, fileName: "a/b \"q\" café 😀.jpg", width: 640, height: nil))
        #expect(inst.images[1].id == 12 && inst.images[1].fileName == "twelve.jpg")
        #expect(inst.categories == [COCOCategory(id: 18, name: "dog", supercategory: "animal"), COCOCategory(id: 1, name: "person")])
        #expect(inst.annotations.map(\.imageID) == [7, 7, 12, 7])
        #expect(inst.annotations.map(\.categoryID) == [18, 1, 18, 18])
        let objects = try inst.objectsByImage()
        #expect(objects[7] == ["dog", "person"])
        #expect(objects[12] == ["dog"])
        #expect(objects[99] == [])
    }

    @Test func readsCaptions() throws {
        let json = #"{"images": [{"id": 1, "file_name": "x.jpg"}], "annotations": [{"image_id": 1, "id": 5, "caption": "A dog\nruns \u2014 fast."}, {"caption": "Two\tcats.", "image_id": 1, "id": 6}]}"#
        let caps = try COCOReader.captions(data: Data(json.utf8))
        #expect(caps.captions == [COCOCaption(imageID: 1, caption: "A dog\nruns — fast."), COCOCaption(imageID: 1, caption: "Two\tcats.")])
        #expect(caps.captionsByImage[1]?.count == 2)
    }

    @Test func reportsMalformedInputWithOffset() {
        #expect(throws: JSONScanError.self) { try COCOReader.instances(data: Data(#"{"images": [{"id": 1,}]}"#.utf8)) }
        #expect(throws: JSONScanError.self) { try COCOReader.captions(data: Data(#"{"annotations": [{"caption": "unterminated}]}"#.utf8)) }
        #expect(throws: COCOError.self) { try COCOReader.instances(data: Data(#"{"images": []}"#.utf8)) }
        #expect(throws: JSONScanError.self) { try COCOReader.instances(data: Data(#"{"info": , "images": []}"#.utf8)) }
        #expect(throws: JSONScanError.self) { try COCOReader.instances(data: Data(#"{"info": {"a": [1, 2}"#.utf8)) }
        #expect(throws: COCOError.self) { try COCOReader.captions(data: Data(#"{"annotations": [{"image_id": 1}]}"#.utf8)) }
    }

    @Test func unescapesLoneSurrogateAsReplacement() throws {
        let s = try JSONScanner.withBytes(Data(#""x\ud800y\udc00z""#.utf8)) { try $0.readString() }
        #expect(s == "x\u{FFFD}y\u{FFFD}z")
    }

    /// Real file in the official layout: mmpose's test_coco.json (4 images, 14 person annotations).
    @Test(.enabled(if: SharedData.has("coco/annotations/mmpose-test_coco.json"), SharedData.missingMessage))
    func readsMMPoseTestFile() throws {
        let inst = try COCOReader.instances(at: SharedData.url("coco/annotations/mmpose-test_coco.json"))
        #expect(inst.images.map(\.id) == [785, 40083, 196141, 197388])
        #expect(inst.images.map(\.fileName) == ["000000000785.jpg", "000000040083.jpg", "000000196141.jpg", "000000197388.jpg"])
        #expect(inst.categories.map(\.name) == ["person"])
        #expect(inst.annotations.count == 14)
        #expect(inst.annotations.filter { $0.imageID == 196141 }.count == 5)
        #expect(try inst.objectsByImage() == [785: ["person"], 40083: ["person"], 196141: ["person"], 197388: ["person"]])
    }

    @Test func syntheticSetIsDeterministicAndReadable() throws {
        let dir = TestTemporary.root.appendingPathComponent("mirage-synth-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = SyntheticCOCO(images: 200, seed: 42)
        let a = try config.write(to: dir.appendingPathComponent("a"))
        let b = try config.write(to: dir.appendingPathComponent("b"))
        #expect(try Data(contentsOf: a.instances) == Data(contentsOf: b.instances))
        #expect(try Data(contentsOf: a.captions) == Data(contentsOf: b.captions))
        let other = try SyntheticCOCO(images: 200, seed: 43).write(to: dir.appendingPathComponent("c"))
        #expect(try Data(contentsOf: a.instances) != Data(contentsOf: other.instances))

        let inst = try COCOReader.instances(at: a.instances)
        #expect(inst.images.count == 200)
        #expect(inst.categories.count == 80)
        #expect(inst.annotations.count == a.instanceCount)
        let caps = try COCOReader.captions(at: a.captions)
        #expect(caps.captions.count == 1000 && a.captionCount == 1000)
        let objects = try inst.objectsByImage()
        #expect(objects.count == 200 && objects.values.allSatisfy { !$0.isEmpty })
    }
}

@Suite struct JSONScannerTests {
    /// POPE's caption_data files are pretty-printed JSON objects written one after another (no list):
    /// the scanner reads them value by value.
    @Test(.enabled(if: SharedData.has("captions-extra/pope-Instruction1_llava.json"), SharedData.missingMessage))
    func readsConcatenatedObjects() throws {
        var records: [(Int, String)] = []
        try JSONScanner.withContents(of: SharedData.url("captions-extra/pope-Instruction1_llava.json")) { s in
            while !s.isAtEnd {
                var id = -1, text = ""
                try s.forEachMember { key, s in
                    if key == "image_id" { id = try s.readInt() }
                    else if key == "text" { text = try s.readString() }
                    else { try s.skipValue() }
                }
                records.append((id, text))
            }
        }
        #expect(records.count == 2000)
        #expect(records.first?.0 == 40468)
        #expect(records.first?.1.hasPrefix("The image features a man sitting on a surfboard in the ocean") == true)
        #expect(records.first?.1.contains("\n\nThere are also") == true)
        #expect(records.last?.0 == 177893)
    }

    @Test func readAnyBuildsPlainValues() throws {
        let v = try JSONScanner.withBytes(Data(#"{"a": [1, 2.5, "x", true, null], "b": {"c": -3}}"#.utf8)) { try $0.readAny() }
        let d = try #require(v as? [String: Any])
        let a = try #require(d["a"] as? [Any])
        #expect(a[0] as? Int == 1 && a[1] as? Double == 2.5 && a[2] as? String == "x" && a[3] as? Bool == true)
        #expect(a[4] is NSNull)
        #expect((d["b"] as? [String: Any])?["c"] as? Int == -3)
    }
}
