import Foundation
import Testing
@testable import MirageEngine
@testable import MirageImaging

/// Decoding parity with transformers' `load_image` (Pillow 13: open, exif_transpose, convert("RGB")) and
/// the PIL-backend processors' `convert_to_rgb`, on committed synthetic files.
@Suite struct ImageDecodingTests {
    static let decodedNames = (ImageFixtures.manifest["decoded"] as! [String: Any]).keys.sorted()

    @Test(arguments: decodedNames)
    func decodesLikePillow(name: String) throws {
        let info = (ImageFixtures.manifest["decoded"] as! [String: [String: Int]])[name]!
        // The fixture holds what the processors' convert_to_rgb returns after load_image.
        let image = try ImageDecoder.load(path: ImageFixtures.url(name).path).compositedOnWhite()
        #expect(image.width == info["width"] && image.height == info["height"], "\(name): size")
        let expected = try ImageFixtures.bytes(name + ".rgb")
        let mismatches = zip(image.pixels, expected).filter { $0 != $1 }.count
        #expect(image.pixels.count == expected.count && mismatches == 0,
                "\(name): \(mismatches) of \(expected.count) samples differ from Pillow")
    }

    @Test func everyOrientationIsCovered() {
        for o in 1...8 { #expect(Self.decodedNames.contains("orient\(o).jpg")) }
        #expect(Self.decodedNames.contains("orient6.png"))
    }

    @Test func orientationSwapsAxes() throws {
        let upright = try ImageDecoder.load(path: ImageFixtures.url("orient1.jpg").path)
        let rotated = try ImageDecoder.load(path: ImageFixtures.url("orient6.jpg").path)
        #expect(rotated.width == upright.height && rotated.height == upright.width)
        // ROTATE_270 (clockwise): the top-left output pixel is the bottom-left source pixel.
        #expect(rotated[0, 0] == upright[0, upright.height - 1])
    }

    static let brokenNames = (ImageFixtures.manifest["broken"] as! [[String: String]]).map { $0["file"]! }

    @Test(arguments: brokenNames)
    func brokenFilesThrowTypedErrors(name: String) throws {
        let path = ImageFixtures.url(name).path
        #expect(throws: ImageError.self) { _ = try ImageDecoder.load(path: path) }
        do {
            _ = try ImageDecoder.load(path: path)
        } catch let error as ImageError {
            switch error {
            case .truncated: #expect(name.hasPrefix("truncated"), "\(name): \(error)")
            case .corrupt: #expect(name.hasPrefix("corrupt"), "\(name): \(error)")
            case .unsupportedFormat: #expect(name.hasPrefix("not_an_image"), "\(name): \(error)")
            default: Issue.record("\(name): unexpected \(error)")
            }
            #expect(error.description.contains(name))
        }
    }

    @Test func truncatedAtEveryLengthNeverCrashes() throws {
        // Any prefix of a valid file must decode or throw; never crash or exit the process.
        for name in ["progressive.jpg", "rgb420.jpg", "rgb.png", "palette.png"] {
            let data = try ImageFixtures.bytes(name)
            for length in stride(from: 0, to: data.count, by: 7) {
                do {
                    _ = try ImageDecoder.decode(Data(data[0..<length]), name: name)
                } catch is ImageError {
                }
            }
        }
    }

    @Test func missingFileSaysSo() {
        #expect(throws: ImageError.self) { _ = try ImageDecoder.load(path: "/nonexistent/x.jpg") }
    }

    @Test func cmykFormulaMatchesPillowCorners() {
        // Pillow cmyk2rgb: pure white, pure black, and a mid-grey key.
        #expect(ImageDecoder.cmykToRGB(c: 0, m: 0, y: 0, k: 0) == [255, 255, 255])
        #expect(ImageDecoder.cmykToRGB(c: 0, m: 0, y: 0, k: 255) == [0, 0, 0])
        #expect(ImageDecoder.cmykToRGB(c: 255, m: 128, y: 0, k: 128) == [0, 63, 127])
    }
}

/// EXIF parsing details the committed Pillow-written (little-endian) files do not exercise.
@Suite struct ImageOrientationTests {
    /// A TIFF-structured EXIF block with one IFD0 entry: tag 0x0112, the given type, value `v`.
    static func exif(bigEndian: Bool, type: UInt16 = 3, value v: UInt32) -> [UInt8] {
        func u16(_ x: UInt16) -> [UInt8] { bigEndian ? [UInt8(x >> 8), UInt8(x & 0xFF)] : [UInt8(x & 0xFF), UInt8(x >> 8)] }
        func u32(_ x: UInt32) -> [UInt8] {
            let b = [UInt8(x >> 24), UInt8((x >> 16) & 0xFF), UInt8((x >> 8) & 0xFF), UInt8(x & 0xFF)]
            return bigEndian ? b : b.reversed()
        }
        let value: [UInt8] = type == 3 ? u16(UInt16(v)) + [0, 0] : u32(v)
        return (bigEndian ? Array("MM".utf8) : Array("II".utf8)) + u16(42) + u32(8) + u16(1)
            + u16(0x0112) + u16(type) + u32(1) + value + u32(0)
    }

    @Test func readsBothByteOrdersAndLongValues() {
        #expect(ImageOrientation.orientation(exif: Self.exif(bigEndian: true, value: 6)) == 6)
        #expect(ImageOrientation.orientation(exif: Self.exif(bigEndian: false, value: 8)) == 8)
        #expect(ImageOrientation.orientation(exif: Self.exif(bigEndian: true, type: 4, value: 3)) == 3)
        #expect(ImageOrientation.orientation(exif: Array("garbage!".utf8)) == nil)
        #expect(ImageOrientation.orientation(exif: Array(Self.exif(bigEndian: true, value: 6).prefix(12))) == nil)
    }

    @Test func firstExifSegmentWinsInJPEG() {
        func app1(_ exif: [UInt8]) -> [UInt8] {
            let body = Array("Exif\0\0".utf8) + exif
            return [0xFF, 0xE1, UInt8((body.count + 2) >> 8), UInt8((body.count + 2) & 0xFF)] + body
        }
        let jpeg: [UInt8] = [0xFF, 0xD8] + app1(Self.exif(bigEndian: true, value: 6))
            + app1(Self.exif(bigEndian: false, value: 3)) + [0xFF, 0xDA, 0x00, 0x02]
        #expect(ImageOrientation.jpegOrientation(jpeg) == 6)
    }

    @Test func everyTransposeMatchesPillowsDefinition() {
        // 3x2 image whose pixel (x, y) has red = 10x + y; expected rows are Pillow 13.0.0's
        // `Image.transpose` output for the same image.
        var pixels = [UInt8]()
        for y in 0..<2 { for x in 0..<3 { pixels += [UInt8(10 * x + y), 0, 0] } }
        let image = RGBImage(width: 3, height: 2, pixels: pixels)
        func reds(_ o: Int) -> [UInt8] { stride(from: 0, to: ImageOrientation.apply(o, to: image).pixels.count, by: 3).map { ImageOrientation.apply(o, to: image).pixels[$0] } }
        #expect(reds(1) == [0, 10, 20, 1, 11, 21])
        #expect(reds(2) == [20, 10, 0, 21, 11, 1])        // FLIP_LEFT_RIGHT
        #expect(reds(3) == [21, 11, 1, 20, 10, 0])        // ROTATE_180
        #expect(reds(4) == [1, 11, 21, 0, 10, 20])        // FLIP_TOP_BOTTOM
        #expect(reds(5) == [0, 1, 10, 11, 20, 21])        // TRANSPOSE
        #expect(reds(6) == [1, 0, 11, 10, 21, 20])        // ROTATE_270
        #expect(reds(7) == [21, 20, 11, 10, 1, 0])        // TRANSVERSE
        #expect(reds(8) == [20, 21, 10, 11, 0, 1])        // ROTATE_90
    }
}
