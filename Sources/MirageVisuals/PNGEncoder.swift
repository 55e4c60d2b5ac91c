// PNG writing (PNG specification, 2nd edition / ISO 15948): signature, IHDR, one IDAT holding a zlib
// stream of filtered scanlines, IEND. Truecolour 8-bit, with or without alpha; no interlacing.

/// Encodes 8-bit RGB or RGBA rasters as PNG bytes.
public enum PNGEncoder {
    /// Samples per pixel of the raster handed in.
    public enum Format: Sendable {
        /// `R G B` per pixel (PNG colour type 2).
        case rgb
        /// `R G B A` per pixel, alpha not premultiplied (PNG colour type 6).
        case rgba

        var channels: Int { self == .rgb ? 3 : 4 }
        var colourType: UInt8 { self == .rgb ? 2 : 6 }
    }

    /// The largest side and pixel count encoded (a 16384 x 16384 image); larger rasters are refused.
    public static let maxSide = 16384
    public static let maxPixels = 16384 * 16384

    /// PNG bytes for a `width` x `height` raster, rows top to bottom, samples interleaved.
    /// Each scanline gets the filter (None, Sub or Up) with the smallest sum of absolute filtered bytes,
    /// the heuristic the PNG specification suggests (section 12.8).
    public static func encode(width: Int, height: Int, samples: [UInt8], format: Format = .rgb) throws -> [UInt8] {
        let channels = format.channels
        guard width > 0, height > 0, width <= maxSide, height <= maxSide, width * height <= maxPixels else {
            throw VisualsError.invalidImageSize(width: width, height: height)
        }
        guard samples.count == width * height * channels else {
            throw VisualsError.sampleCountMismatch(expected: width * height * channels, actual: samples.count)
        }
        let stride = width * channels
        var filtered = [UInt8](repeating: 0, count: height * (stride + 1))
        samples.withUnsafeBufferPointer { src in
            filtered.withUnsafeMutableBufferPointer { dst in
                for y in 0..<height {
                    let row = y * stride
                    let out = y * (stride + 1)
                    var sumNone = 0, sumSub = 0, sumUp = 0
                    for x in 0..<stride {
                        let v = src[row + x]
                        let left = x >= channels ? src[row + x - channels] : 0
                        let up = y > 0 ? src[row - stride + x] : 0
                        sumNone += Int(Int8(bitPattern: v).magnitude)
                        sumSub += Int(Int8(bitPattern: v &- left).magnitude)
                        sumUp += Int(Int8(bitPattern: v &- up).magnitude)
                    }
                    let filter: UInt8 = sumUp < sumSub && sumUp < sumNone ? 2 : (sumSub < sumNone ? 1 : 0)
                    dst[out] = filter
                    for x in 0..<stride {
                        let v = src[row + x]
                        switch filter {
                        case 1: dst[out + 1 + x] = v &- (x >= channels ? src[row + x - channels] : 0)
                        case 2: dst[out + 1 + x] = v &- (y > 0 ? src[row - stride + x] : 0)
                        default: dst[out + 1 + x] = v
                        }
                    }
                }
            }
        }
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        var header: [UInt8] = []
        appendBigEndian(UInt32(width), to: &header)
        appendBigEndian(UInt32(height), to: &header)
        header += [8, format.colourType, 0, 0, 0]  // bit depth, colour type, deflate, adaptive filtering, no interlace
        appendChunk("IHDR", header, to: &png)
        appendChunk("IDAT", ZlibCompressor.compress(filtered), to: &png)
        appendChunk("IEND", [], to: &png)
        return png
    }

    static func appendBigEndian(_ value: UInt32, to bytes: inout [UInt8]) {
        bytes += [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    /// Length, type, data, and the CRC-32 of type and data.
    static func appendChunk(_ type: String, _ data: [UInt8], to png: inout [UInt8]) {
        appendBigEndian(UInt32(data.count), to: &png)
        let typeBytes = Array(type.utf8)
        var crc = CRC32()
        crc.update(typeBytes)
        crc.update(data)
        png += typeBytes
        png += data
        appendBigEndian(crc.value, to: &png)
    }
}
