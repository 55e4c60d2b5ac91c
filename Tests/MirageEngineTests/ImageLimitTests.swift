import Foundation
import Testing
import MirageData
@testable import MirageEngine
@testable import MirageImaging
import MirageTestSupport

/// The decoded-pixel limit: a small file declaring a huge image is refused from its header, before the
/// codec allocates anything (a 40000 × 40000 RGB image would need 4.8 GB).
@Suite struct ImageLimitTests {
    /// A real 8 × 8 baseline JPEG whose SOF0 frame header is patched to declare `width` × `height`.
    static func jpegDeclaring(width: Int, height: Int) throws -> Data {
        var bytes = [UInt8](try JPEGEncoder.encode(rgb: [UInt8](repeating: 128, count: 8 * 8 * 3), width: 8, height: 8))
        let sof = try #require((0..<(bytes.count - 1)).first { bytes[$0] == 0xFF && bytes[$0 + 1] == 0xC0 })
        // FF C0, length (2), precision (1), height (2), width (2).
        bytes[sof + 5] = UInt8(height >> 8); bytes[sof + 6] = UInt8(height & 0xFF)
        bytes[sof + 7] = UInt8(width >> 8); bytes[sof + 8] = UInt8(width & 0xFF)
        return Data(bytes)
    }

    static func expectRefused(_ data: Data, width: Int, height: Int, limit: Int?) {
        do {
            _ = try ImageDecoder.decode(data, name: "bomb", maxPixels: limit)
            Issue.record("a \(width)×\(height) image was decoded")
        } catch let error as ImageError {
            #expect(error == .tooManyPixels(path: "bomb", width: width, height: height, limit: limit ?? ImageDecoder.defaultMaxPixels))
            #expect(error.description.contains("--max-image-pixels"))
            #expect(error.description.contains(ImageDecoder.maxPixelsEnvironmentVariable))
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func defaultIsPillowsDecompressionBombThreshold() {
        #expect(ImageDecoder.defaultMaxPixels == 2 * 89_478_485)
    }

    @Test func hugePNGHeaderIsRefusedBeforeDecoding() throws {
        let png = PNGHeader.declaring(width: 40000, height: 40000)
        #expect(png.count < 100)
        Self.expectRefused(png, width: 40000, height: 40000, limit: nil)
        // The limit is inclusive, as Pillow's `pixels > 2 * MAX_IMAGE_PIXELS`: 10 × 10 passes the check with
        // a limit of 100 (and then fails on its empty pixel data), 10 × 11 does not.
        Self.expectRefused(PNGHeader.declaring(width: 10, height: 11), width: 10, height: 11, limit: 100)
        do {
            _ = try ImageDecoder.decode(PNGHeader.declaring(width: 10, height: 10), name: "ok", maxPixels: 100)
            Issue.record("a PNG without pixel data decoded")
        } catch let error as ImageError {
            if case .tooManyPixels = error { Issue.record("100 pixels are within a limit of 100") }
        }
    }

    @Test func hugeJPEGHeaderIsRefusedBeforeDecoding() throws {
        let jpeg = try Self.jpegDeclaring(width: 40000, height: 40000)
        Self.expectRefused(jpeg, width: 40000, height: 40000, limit: nil)
    }

    /// Sizes from preprocessor_config.json are bounded integers, and a resize may not make more pixels
    /// than the decoder accepts (a 1 × 10000 image resized to a shortest edge of 336 would be 336 × 3.36 M).
    @Test func preprocessorSizesAndResizeAreBounded() throws {
        for json: [String: Any] in [["size": 1e300], ["size": ["shortest_edge": 1 << 40]], ["crop_size": 100_000],
                                    ["size": ["height": 0, "width": 4]], ["resample": 1e300], ["resample": 2.5]] {
            #expect(throws: ImageError.self, "\(json)") { _ = try ImagePreprocessorConfig.parse(json) }
        }
        #expect(try ImagePreprocessorConfig.parse(["size": 336, "crop_size": 336]).cropHeight == 336)
        let thin = RGBImage(width: 1, height: 10000, fill: (10, 20, 30))
        do {
            _ = try ImageResampler.resize(thin, width: 336, height: 3_360_000, filter: .bicubic)
            Issue.record("a 1.1-gigapixel resize ran")
        } catch let error as ImageError {
            #expect(error.description.contains("more than \(ImageDecoder.defaultMaxPixels) pixels"))
        }
        #expect(throws: ImageError.self) { _ = try ImageResampler.resize(thin, width: Int.max, height: 2, filter: .bicubic) }
    }

    @Test func limitIsConfigurable() throws {
        let small = try JPEGEncoder.encode(rgb: [UInt8](repeating: 90, count: 16 * 8 * 3), width: 16, height: 8)
        #expect(try ImageDecoder.decode(small, maxPixels: 128).width == 16)
        Self.expectRefused(small, width: 16, height: 8, limit: 127)
        // 0 turns the check off (the bytes then fail as a truncated or corrupt image, not as too large).
        do {
            _ = try ImageDecoder.decode(PNGHeader.declaring(width: 10, height: 11), name: "x", maxPixels: 0)
        } catch let error as ImageError {
            if case .tooManyPixels = error { Issue.record("maxPixels 0 still refused the image") }
        }
        // The process-wide setting starts at the default (the command line changes it, tested there).
        #expect(ImageDecoder.maxPixels == ImageDecoder.defaultMaxPixels)
    }
}
