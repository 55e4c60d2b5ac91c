import Foundation
import Testing
@testable import MirageEngine

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
