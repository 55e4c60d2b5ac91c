import CMirageImage
import Foundation

/// Reads JPEG and PNG files into the RGB pixels Pillow 13 gives transformers' `load_image`
/// (`Image.open` → `ImageOps.exif_transpose` → `convert("RGB")`). A colour that a PNG tRNS chunk names
/// transparent is recorded in `transparentColour`, as Pillow keeps it in `info["transparency"]`.
public enum ImageDecoder {
    /// The largest image (width × height, read from the header before anything is allocated) decoded by
    /// default: the size at which Pillow raises `DecompressionBombError`, twice its `MAX_IMAGE_PIXELS` of
    /// 89,478,485 (python-pillow/Pillow, src/PIL/Image.py, `_decompression_bomb_check`). A 4.6 MB PNG can
    /// declare 40000 × 40000 pixels, which would need 4.8 GB for its RGB samples alone.
    public static let defaultMaxPixels = 178_956_970

    /// The environment variable the command line reads the limit from (a pixel count; 0 turns it off).
    public static let maxPixelsEnvironmentVariable = "MIRAGE_MAX_IMAGE_PIXELS"

    private static let limit = PixelLimit(defaultMaxPixels)

    /// The process-wide limit `load` and `decode` apply when not given one: images declaring more pixels
    /// are refused with `ImageError.tooManyPixels`. 0 disables the check (as Pillow's `MAX_IMAGE_PIXELS = None`).
    public static var maxPixels: Int {
        get { limit.value }
        set { limit.value = max(0, newValue) }
    }

    /// Decodes the file at `path`. Throws `ImageError` for unreadable, unsupported, corrupt, truncated or
    /// too large (`maxPixels`, default the process-wide `ImageDecoder.maxPixels`) files.
    public static func load(path: String, maxPixels: Int? = nil) throws -> RGBImage {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ImageError.unreadable(path: path, detail: (error as NSError).localizedDescription)
        }
        return try decode(data, name: path, maxPixels: maxPixels)
    }

    /// Decodes JPEG or PNG bytes; `name` appears in error messages. Images whose header declares more
    /// than `maxPixels` pixels (default: `ImageDecoder.maxPixels`; 0: no limit) are refused before decoding.
    public static func decode(_ data: Data, name: String = "image", maxPixels: Int? = nil) throws -> RGBImage {
        let bytes = [UInt8](data)
        let limit = max(0, maxPixels ?? Self.maxPixels)
        if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF {
            return try decodeJPEG(bytes, name: name, maxPixels: limit)
        }
        if bytes.count >= 8, bytes[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            return try decodePNG(bytes, name: name, maxPixels: limit)
        }
        throw ImageError.unsupportedFormat(path: name)
    }

    // MARK: JPEG

    static func decodeJPEG(_ bytes: [UInt8], name: String, maxPixels: Int) throws -> RGBImage {
        let raw = try runCodec(bytes, name: name, format: "JPEG", maxPixels: maxPixels, mirage_jpeg_decode)
        defer { mirage_image_free(raw.pixels) }
        let count = Int(raw.width) * Int(raw.height)
        let samples = UnsafeBufferPointer(start: raw.pixels, count: count * Int(raw.channels))
        var rgb = [UInt8](repeating: 0, count: count * 3)
        switch raw.channels {
        case 1:
            greyToRGB(samples, into: &rgb)
        case 3:
            rgb.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: samples.baseAddress!, count: count * 3) }
        default:
            // Pillow decodes every 4-component JPEG with raw mode "CMYK;I" ("assume adobe conventions",
            // JpegImagePlugin.py), i.e. it inverts the samples libjpeg returns whether or not the file
            // has an Adobe marker, then converts CMYK to RGB.
            for i in 0..<count {
                let nk = Int(samples[i * 4 + 3])  // 255 - k, with k = 255 - raw
                for c in 0..<3 { rgb[i * 3 + c] = cmykChannel(255 - samples[i * 4 + c], nk: nk) }
            }
        }
        let image = RGBImage(width: Int(raw.width), height: Int(raw.height), pixels: rgb)
        return ImageOrientation.apply(ImageOrientation.jpegOrientation(bytes), to: image)
    }

    /// Pillow's `cmyk2rgb` (libImaging/Convert.c): with `nk = 255 - k`, each channel is
    /// `nk - muldiv255(v, nk)` where `muldiv255(a, b) = (t + (t >> 8)) >> 8` for `t = a * b + 128`.
    @inline(__always)
    static func cmykChannel(_ v: UInt8, nk: Int) -> UInt8 {
        let t = Int(v) * nk + 128
        return UInt8(clamping: nk - (((t >> 8) + t) >> 8))
    }

    static func cmykToRGB(c: UInt8, m: UInt8, y: UInt8, k: UInt8) -> [UInt8] {
        let nk = 255 - Int(k)
        return [cmykChannel(c, nk: nk), cmykChannel(m, nk: nk), cmykChannel(y, nk: nk)]
    }

    // MARK: PNG

    static func decodePNG(_ bytes: [UInt8], name: String, maxPixels: Int) throws -> RGBImage {
        let chunks = PNGChunks(bytes)
        let raw = try runCodec(bytes, name: name, format: "PNG", maxPixels: maxPixels, mirage_png_decode)
        defer { mirage_image_free(raw.pixels) }
        let count = Int(raw.width) * Int(raw.height)
        let channels = Int(raw.channels)
        var rgb = [UInt8](repeating: 0, count: count * 3)
        let sampleCount = count * channels
        if raw.bitDepth == 16 {
            let data = UnsafeBufferPointer(start: raw.pixels, count: sampleCount * 2)
            if channels == 1 {
                // 16-bit grey opens as Pillow mode "I;16"; its conversion to RGB clips at 255 (I16_RGB),
                // it does not scale.
                for i in 0..<count {
                    let v = Int(data[i * 2]) << 8 | Int(data[i * 2 + 1])
                    let g = UInt8(min(v, 255))
                    rgb[i * 3] = g; rgb[i * 3 + 1] = g; rgb[i * 3 + 2] = g
                }
            } else {
                // 16-bit LA/RGB/RGBA unpack to 8 bits by keeping the high byte ("RGB;16B" etc.).
                for i in 0..<count {
                    for c in 0..<3 {
                        let source = channels <= 2 ? 0 : c
                        rgb[i * 3 + c] = data[(i * channels + source) * 2]
                    }
                }
            }
        } else {
            let data = UnsafeBufferPointer(start: raw.pixels, count: sampleCount)
            switch channels {
            case 1:
                greyToRGB(data, into: &rgb)
            case 2:
                for i in 0..<count {
                    let g = data[i * 2]
                    rgb[i * 3] = g; rgb[i * 3 + 1] = g; rgb[i * 3 + 2] = g
                }
            case 3:
                rgb.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: data.baseAddress!, count: count * 3) }
            default:
                for i in 0..<count {
                    rgb[i * 3] = data[i * 4]; rgb[i * 3 + 1] = data[i * 4 + 1]; rgb[i * 3 + 2] = data[i * 4 + 2]
                }
            }
        }
        var image = RGBImage(width: Int(raw.width), height: Int(raw.height), pixels: rgb)
        image.transparentColour = chunks.transparentColour(bitDepth: Int(raw.bitDepth))
        return ImageOrientation.apply(ImageOrientation.orientation(exif: chunks.exif), to: image)
    }

    // MARK: Shared

    static func greyToRGB(_ grey: UnsafeBufferPointer<UInt8>, into rgb: inout [UInt8]) {
        rgb.withUnsafeMutableBufferPointer { out in
            for i in 0..<grey.count {
                let g = grey[i]
                out[i * 3] = g; out[i * 3 + 1] = g; out[i * 3 + 2] = g
            }
        }
    }

    typealias Codec = (UnsafePointer<UInt8>?, Int, UInt64, UnsafeMutablePointer<mirage_decoded_image>?) -> Int32

    static func runCodec(_ bytes: [UInt8], name: String, format: String, maxPixels: Int,
                         _ codec: Codec) throws -> mirage_decoded_image {
        var raw = mirage_decoded_image()
        let status = bytes.withUnsafeBufferPointer { codec($0.baseAddress, $0.count, UInt64(max(0, maxPixels)), &raw) }
        guard status == 0 else {
            if status == 2 { throw ImageError.truncated(path: name, format: format) }
            if status == 3 {
                throw ImageError.tooManyPixels(path: name, width: Int(UInt32(bitPattern: raw.width)),
                                               height: Int(UInt32(bitPattern: raw.height)), limit: maxPixels)
            }
            let message = withUnsafeBytes(of: raw.message) { buffer in
                String(decoding: buffer.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            throw ImageError.corrupt(path: name, format: format, detail: message)
        }
        return raw
    }
}

/// The PNG chunks Pillow reads beside the pixels: PLTE/tRNS (a transparent colour) and eXIf.
struct PNGChunks {
    var colourType = 0
    var palette: [UInt8] = []
    var transparency: [UInt8]?
    var exif: [UInt8]?

    init(_ bytes: [UInt8]) {
        var offset = 8
        while offset + 8 <= bytes.count {
            let length = Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8
                | Int(bytes[offset + 3])
            let type = String(decoding: bytes[offset + 4 ..< offset + 8], as: UTF8.self)
            let start = offset + 8
            guard length >= 0, start + length <= bytes.count else { break }
            let body = Array(bytes[start ..< start + length])
            switch type {
            case "IHDR" where length >= 10: colourType = Int(body[9])
            case "PLTE": palette = body
            case "tRNS": transparency = body
            case "eXIf" where exif == nil:
                // PngImagePlugin strips a leading "Exif\0\0" if present.
                exif = body.starts(with: Array("Exif\0\0".utf8)) ? Array(body.dropFirst(6)) : body
            default: break
            }
            if type == "IEND" { break }
            offset = start + length + 4
        }
    }

    /// The single transparent colour Pillow records in `info["transparency"]`, as 8-bit RGB, or nil.
    /// Grey and RGB tRNS name one colour; a palette tRNS counts only when it is one fully transparent
    /// entry among fully opaque ones (PngImagePlugin's `_simple_palette`), otherwise Pillow keeps a
    /// per-entry alpha table that `convert("RGB")` drops.
    func transparentColour(bitDepth: Int) -> RGBColour? {
        guard let t = transparency else { return nil }
        func u16(_ i: Int) -> Int { Int(t[i]) << 8 | Int(t[i + 1]) }
        switch colourType {
        case 0 where t.count >= 2:
            let v = u16(0)
            // 8-bit "L" keeps the value; 16-bit "I;16" converts like its pixels (clipped at 255).
            guard bitDepth == 16 || v <= 255 else { return nil }
            let g = UInt8(min(v, 255))
            return RGBColour(red: g, green: g, blue: g)
        case 2 where t.count >= 6:
            let (r, g, b) = (u16(0), u16(2), u16(4))
            guard r <= 255, g <= 255, b <= 255 else { return nil }
            return RGBColour(red: UInt8(r), green: UInt8(g), blue: UInt8(b))
        case 3:
            guard t.filter({ $0 == 0 }).count == 1, t.allSatisfy({ $0 == 0 || $0 == 255 }),
                  let index = t.firstIndex(of: 0), index * 3 + 2 < palette.count else { return nil }
            return RGBColour(red: palette[index * 3], green: palette[index * 3 + 1], blue: palette[index * 3 + 2])
        default:
            return nil
        }
    }
}

/// The process-wide pixel limit behind `ImageDecoder.maxPixels` (read and set from any thread).
private final class PixelLimit: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Int

    init(_ value: Int) { stored = value }

    var value: Int {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
    }
}
