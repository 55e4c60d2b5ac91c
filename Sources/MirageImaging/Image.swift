import Foundation

/// An 8-bit RGB image, rows top to bottom, pixels interleaved `R G B R G B ...`: what Pillow holds after
/// `Image.open(path)`, `ImageOps.exif_transpose` and `.convert("RGB")` (transformers' `load_image`).
public struct RGBImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    /// `width * height * 3` samples.
    public var pixels: [UInt8]
    /// The one colour a PNG tRNS chunk names transparent, which Pillow keeps in `info["transparency"]`
    /// through `convert("RGB")` and transposes; see `compositedOnWhite()`.
    public var transparentColour: RGBColour?

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && pixels.count == width * height * 3,
                     "RGBImage: \(pixels.count) samples for \(width)x\(height)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// An image filled with one colour.
    public init(width: Int, height: Int, fill: (UInt8, UInt8, UInt8)) {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in stride(from: 0, to: pixels.count, by: 3) {
            pixels[i] = fill.0; pixels[i + 1] = fill.1; pixels[i + 2] = fill.2
        }
        self.init(width: width, height: height, pixels: pixels)
    }

    /// The pixels the image processors' `convert_to_rgb` (transformers image_transforms.py) returns:
    /// when Pillow still records a transparent colour, the image is converted to RGBA (that colour gets
    /// alpha 0, every other pixel alpha 255) and composited onto white, so exactly the pixels of that
    /// colour become white.
    public func compositedOnWhite() -> RGBImage {
        guard let c = transparentColour else { return self }
        var out = RGBImage(width: width, height: height, pixels: pixels)
        out.pixels.withUnsafeMutableBufferPointer { px in
            var i = 0
            while i < px.count {
                if px[i] == c.red, px[i + 1] == c.green, px[i + 2] == c.blue {
                    px[i] = 255; px[i + 1] = 255; px[i + 2] = 255
                }
                i += 3
            }
        }
        return out
    }

    /// The pixel at column `x`, row `y`.
    public subscript(x: Int, y: Int) -> (UInt8, UInt8, UInt8) {
        let i = (y * width + x) * 3
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }
}

/// One 8-bit RGB colour.
public struct RGBColour: Equatable, Hashable, Sendable {
    public var red: UInt8
    public var green: UInt8
    public var blue: UInt8

    public init(red: UInt8, green: UInt8, blue: UInt8) {
        self.red = red
        self.green = green
        self.blue = blue
    }
}

/// Why an image could not be read or preprocessed. Every case says what to do about it.
public enum ImageError: Error, CustomStringConvertible, Equatable {
    /// The file could not be read at all.
    case unreadable(path: String, detail: String)
    /// The bytes are neither JPEG nor PNG.
    case unsupportedFormat(path: String)
    /// The codec rejected the data (bad marker, CRC error, unsupported feature...).
    case corrupt(path: String, format: String, detail: String)
    /// The data ends before the image does.
    case truncated(path: String, format: String)
    /// The header declares more pixels than the decoder's limit (`ImageDecoder.maxPixels`).
    case tooManyPixels(path: String, width: Int, height: Int, limit: Int)
    /// The model folder has no preprocessor configuration.
    case missingConfig(directory: String)
    /// The preprocessor configuration is malformed or asks for something Mirage does not implement.
    case badConfig(file: String, detail: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let detail):
            return "cannot read image \(path): \(detail). Check the path and its permissions."
        case .unsupportedFormat(let path):
            return "\(path) is neither a JPEG nor a PNG file: convert it to one of these (e.g. "
                + "`convert in.webp out.png`)."
        case .corrupt(let path, let format, let detail):
            return "\(path) is not a valid \(format) file (\(detail)): re-download or re-encode the image."
        case .truncated(let path, let format):
            return "\(path) is a truncated \(format) file (the data ends before the image does): "
                + "re-download it; Pillow refuses it too (\"image file is truncated\")."
        case let .tooManyPixels(path, width, height, limit):
            let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
            return "\(path) declares \(width) × \(height) = \(overflow ? "over \(Int.max)" : "\(pixels)") pixels, more than the limit of \(limit) "
                + "(Pillow refuses it too, as a decompression bomb): shrink the image, or raise the limit with "
                + "--max-image-pixels N or \(ImageDecoder.maxPixelsEnvironmentVariable)=N (0 turns the check off) if you trust it."
        case .missingConfig(let directory):
            return "no preprocessor_config.json (or processor_config.json with an image_processor entry) in "
                + "\(directory): point --model at a Hugging Face model folder saved with its processor."
        case .badConfig(let file, let detail):
            return "\(file): \(detail)"
        }
    }
}
