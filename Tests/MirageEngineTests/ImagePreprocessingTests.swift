import Foundation
import MirageTestSupport
import Testing
@testable import MirageEngine
@testable import MirageImaging

/// Resampling and preprocessing parity with Pillow 13 + transformers 5.24 (PIL backend).
@Suite struct ImagePreprocessingTests {
    static let resampleCases = ImageFixtures.manifest["resample"] as! [[String: Any]]

    @Test func resampleMatchesPillowForEveryFilter() throws {
        let source = RGBImage(width: 45, height: 31, pixels: try ImageFixtures.bytes("resample_source_45x31.rgb"))
        #expect(Self.resampleCases.count == 55)
        for c in Self.resampleCases {
            let filter = ResampleFilter(rawValue: c["filter"] as! Int)!
            let (w, h) = (c["width"] as! Int, c["height"] as! Int)
            let out = try ImageResampler.resize(source, width: w, height: h, filter: filter)
            #expect(ImageFixtures.sha256(out.pixels) == c["sha256"] as! String, "\(filter) to \(w)x\(h)")
        }
    }

    static let pixelCases = (ImageFixtures.manifest["pixels"] as! [[String: Any]]).map {
        "\($0["image"]!)|\($0["config"]!)|\($0["pad"] as! Bool)|\($0["file"]!)"
    }

    @Test(arguments: pixelCases)
    func pixelValuesMatchTransformers(spec: String) throws {
        let parts = spec.split(separator: "|").map(String.init)
        let image = try ImageDecoder.load(path: ImageFixtures.url(parts[0]).path)
        let processor = ImagePreprocessor(config: try ImageFixtures.config(parts[1]))
        let tensor = try processor.process(image, padToSquare: parts[2] == "true")
        let expected = try ImageFixtures.floats(parts[3])
        #expect(tensor.values.count == expected.count)
        let mismatches = zip(tensor.values, expected).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(mismatches == 0, "\(spec): \(mismatches) of \(expected.count) values differ")
    }

    @Test func shortestEdgeSizeTruncatesLikeTransformers() throws {
        let p = ImagePreprocessor(config: .clip)
        // int(224 * 640 / 427) = int(335.737...) = 335; portrait swaps.
        #expect(p.resizedSize(width: 640, height: 427) == (335, 224))
        #expect(p.resizedSize(width: 427, height: 640) == (224, 335))
        #expect(p.resizedSize(width: 500, height: 500) == (224, 224))
    }

    @Test func llavaPadColourTruncates() {
        // tuple(int(x * 255) for x in OPENAI_CLIP_MEAN) = (122, 116, 104)
        let c = ImagePreprocessor(config: .clip).padColour
        #expect(c.0 == 122 && c.1 == 116 && c.2 == 104)
    }

    @Test func configParsingDefaultsAndErrors() throws {
        let siglip = try ImagePreprocessorConfig.parse(["image_processor_type": "SiglipImageProcessor"])
        #expect(siglip == .siglip)
        let legacy = try ImagePreprocessorConfig.parse(["image_processor_type": "CLIPImageProcessor", "size": 336, "crop_size": 336])
        #expect(legacy.size == .shortestEdge(336) && legacy.cropHeight == 336 && legacy.cropWidth == 336)
        #expect(throws: ImageError.self) { _ = try ImagePreprocessorConfig.parse(["image_processor_type": "ViTImageProcessor"]) }
        #expect(throws: ImageError.self) { _ = try ImagePreprocessorConfig.parse(["resample": 9]) }
        #expect(throws: ImageError.self) { _ = try ImagePreprocessorConfig.parse(["size": ["longest_edge": 3]]) }
        #expect(throws: ImageError.self) { _ = try ImagePreprocessorConfig.load(modelDirectory: "/nonexistent") }
    }

    @Test func loadsProcessorConfigFromModelFolder() throws {
        let dir = TestTemporary.root.appendingPathComponent("mirage-img-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let nested: [String: Any] = ["image_processor": ["image_processor_type": "SiglipImageProcessor",
                                                         "size": ["height": 384, "width": 384]]]
        try JSONSerialization.data(withJSONObject: nested).write(to: dir.appendingPathComponent("processor_config.json"))
        let config = try ImagePreprocessorConfig.load(modelDirectory: dir.path)
        #expect(config.size == .fixed(height: 384, width: 384) && config.processorType == "SiglipImageProcessor")
    }

    static let cocoCases = ImageFixtures.manifest["coco"] as! [[String: Any]]

    @Test(.enabled(if: SharedData.has("coco/images"), SharedData.missingMessage))
    func cocoImagesMatchTransformersExactly() throws {
        #expect(!Self.cocoCases.isEmpty)
        let clip = ImagePreprocessor(config: try ImageFixtures.config("clip_336"))
        let siglip = ImagePreprocessor(config: try ImageFixtures.config("siglip_384"))
        for entry in Self.cocoCases {
            let name = entry["file"] as! String
            let image = try ImageDecoder.load(path: SharedData.url("coco/images/\(name)").path)
            #expect(ImageFixtures.sha256(image.pixels) == entry["rgb_sha256"] as! String, "\(name): decoded RGB")
            for (key, processor, pad) in [("clip_336", clip, false), ("clip_336_pad", clip, true),
                                          ("siglip_384", siglip, false), ("siglip_384_pad", siglip, true)] {
                let expected = entry[key] as! [String: Any]
                let tensor = try processor.process(image, padToSquare: pad)
                #expect([tensor.channels, tensor.height, tensor.width] == expected["shape"] as! [Int], "\(name) \(key)")
                #expect(ImageFixtures.sha256(tensor.values) == expected["sha256"] as! String, "\(name) \(key): float32 bytes")
                for sample in expected["samples"] as! [[Double]] {
                    #expect(tensor.values[Int(sample[0])] == Float(sample[1]), "\(name) \(key) value \(Int(sample[0]))")
                }
            }
        }
    }
}
