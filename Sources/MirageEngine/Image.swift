import Foundation

/// An 8-bit RGB image, rows top to bottom, pixels interleaved `R G B R G B ...`: what Pillow holds after
/// `Image.open(path)`, `ImageOps.exif_transpose` and `.convert("RGB")` (transformers' `load_image`).
public struct RGBImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    /// `width * height * 3` samples.
    public var pixels: [UInt8]

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

    /// The pixel at column `x`, row `y`.
    public subscript(x: Int, y: Int) -> (UInt8, UInt8, UInt8) {
        let i = (y * width + x) * 3
        return (pixels[i], pixels[i + 1], pixels[i + 2])
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
        case .missingConfig(let directory):
            return "no preprocessor_config.json (or processor_config.json with an image_processor entry) in "
                + "\(directory): point --model at a Hugging Face model folder saved with its processor."
        case .badConfig(let file, let detail):
            return "\(file): \(detail)"
        }
    }
}
