/// EXIF orientation as transformers' `load_image` applies it: `PIL.ImageOps.exif_transpose` reads tag
/// 0x0112 from IFD0 of the image's EXIF block (JPEG: the first APP1 segment starting "Exif\0\0";
/// PNG: the eXIf chunk) and transposes for values 2...8; any other value leaves the image as it is.
public enum ImageOrientation {
    /// The orientation tag of a JPEG file's first EXIF segment, or nil.
    static func jpegOrientation(_ bytes: [UInt8]) -> Int? {
        var offset = 2
        while offset + 4 <= bytes.count {
            guard bytes[offset] == 0xFF else { return nil }
            let marker = bytes[offset + 1]
            if marker == 0xFF { offset += 1; continue }  // fill byte
            if marker == 0xD8 || (0xD0...0xD7).contains(marker) || marker == 0x01 { offset += 2; continue }
            if marker == 0xDA || marker == 0xD9 { return nil }  // start of scan: no more metadata
            let length = Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            let start = offset + 4, end = offset + 2 + length
            guard length >= 2, end <= bytes.count else { return nil }
            if marker == 0xE1, bytes[start ..< end].starts(with: Array("Exif\0\0".utf8)) {
                return orientation(exif: Array(bytes[start + 6 ..< end]))
            }
            offset = end
        }
        return nil
    }

    /// Tag 0x0112 of IFD0 in a TIFF-structured EXIF block ("II*\0" or "MM\0*" header), or nil.
    static func orientation(exif: [UInt8]?) -> Int? {
        guard let b = exif, b.count >= 8 else { return nil }
        let little: Bool
        switch (b[0], b[1]) {
        case (0x49, 0x49): little = true
        case (0x4D, 0x4D): little = false
        default: return nil
        }
        func u16(_ i: Int) -> Int? {
            guard i >= 0, i + 2 <= b.count else { return nil }
            return little ? Int(b[i]) | Int(b[i + 1]) << 8 : Int(b[i]) << 8 | Int(b[i + 1])
        }
        func u32(_ i: Int) -> Int? {
            guard let lo = u16(little ? i : i + 2), let hi = u16(little ? i + 2 : i) else { return nil }
            return hi << 16 | lo
        }
        guard let ifd = u32(4), let count = u16(ifd) else { return nil }
        for entry in 0..<count {
            let e = ifd + 2 + entry * 12
            guard let tag = u16(e), let type = u16(e + 2) else { return nil }
            guard tag == 0x0112 else { continue }
            switch type {
            case 3: return u16(e + 8)   // SHORT
            case 4: return u32(e + 8)   // LONG
            default: return nil
            }
        }
        return nil
    }

    /// The image as `exif_transpose` returns it for `orientation` (nil or 1: unchanged).
    public static func apply(_ orientation: Int?, to image: RGBImage) -> RGBImage {
        guard let o = orientation, (2...8).contains(o) else { return image }
        let w = image.width, h = image.height
        let swaps = o >= 5
        let outW = swaps ? h : w, outH = swaps ? w : h
        var out = [UInt8](repeating: 0, count: image.pixels.count)
        image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<outH {
                    for x in 0..<outW {
                        // Source pixel of output (x, y) for each of Pillow's Transpose methods.
                        let (sx, sy): (Int, Int)
                        switch o {
                        case 2: (sx, sy) = (w - 1 - x, y)              // FLIP_LEFT_RIGHT
                        case 3: (sx, sy) = (w - 1 - x, h - 1 - y)      // ROTATE_180
                        case 4: (sx, sy) = (x, h - 1 - y)              // FLIP_TOP_BOTTOM
                        case 5: (sx, sy) = (y, x)                      // TRANSPOSE
                        case 6: (sx, sy) = (y, h - 1 - x)              // ROTATE_270 (clockwise 90)
                        case 7: (sx, sy) = (w - 1 - y, h - 1 - x)      // TRANSVERSE
                        default: (sx, sy) = (w - 1 - y, x)             // 8: ROTATE_90
                        }
                        let s = (sy * w + sx) * 3, d = (y * outW + x) * 3
                        dst[d] = src[s]; dst[d + 1] = src[s + 1]; dst[d + 2] = src[s + 2]
                    }
                }
            }
        }
        var result = RGBImage(width: outW, height: outH, pixels: out)
        result.transparentColour = image.transparentColour  // transpose keeps Pillow's info
        return result
    }
}
