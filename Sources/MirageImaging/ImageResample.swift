import Foundation

/// Pillow's resampling filters, numbered as `PIL.Image.Resampling` (the `resample` field of
/// preprocessor_config.json).
public enum ResampleFilter: Int, Sendable, CustomStringConvertible {
    case nearest = 0, lanczos = 1, bilinear = 2, bicubic = 3, box = 4, hamming = 5

    public var description: String {
        switch self {
        case .nearest: return "nearest"
        case .lanczos: return "lanczos"
        case .bilinear: return "bilinear"
        case .bicubic: return "bicubic"
        case .box: return "box"
        case .hamming: return "hamming"
        }
    }

    /// Half-width of the filter at scale 1 (Pillow's `struct filter` support values).
    var support: Double {
        switch self {
        case .nearest, .box: return 0.5
        case .bilinear, .hamming: return 1
        case .bicubic: return 2
        case .lanczos: return 3
        }
    }

    /// The filter kernels of Pillow's libImaging/Resample.c (same formulas, same double arithmetic).
    func weight(_ v: Double) -> Double {
        switch self {
        case .nearest, .box:
            return v > -0.5 && v <= 0.5 ? 1 : 0
        case .bilinear:
            let x = abs(v)
            return x < 1 ? 1 - x : 0
        case .hamming:
            let x = abs(v)
            if x == 0 { return 1 }
            if x >= 1 { return 0 }
            let px = x * Double.pi
            // Pillow writes the constants as floats (0.54f, 0.46f), promoted to double.
            return sin(px) / px * (Double(Float(0.54)) + Double(Float(0.46)) * cos(px))
        case .bicubic:
            // Keys' cubic convolution with a = -0.5.
            let a = -0.5
            let x = abs(v)
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        case .lanczos:
            func sinc(_ x: Double) -> Double {
                if x == 0 { return 1 }
                let px = x * Double.pi
                return sin(px) / px
            }
            return -3 <= v && v < 3 ? sinc(v) * sinc(v / 3) : 0
        }
    }
}

/// Pillow's `ImagingResample` for 8-bit images (`Image.resize(size, resample)` with no box and no
/// reducing_gap): a horizontal pass over the rows the vertical pass needs, then a vertical pass (or the
/// reverse order, see `verticalFirst`); each pass is skipped when its dimension is unchanged.
/// Coefficients are computed in double, normalised to
/// sum 1, converted to fixed point with `PRECISION_BITS = 22` (rounded half away from zero), and each
/// output is `clip8((1 << 21) + Σ sample·coefficient) = clamp(acc >> 22, 0, 255)`.
public enum ImageResampler {
    static let precisionBits = 32 - 8 - 2

    /// One pass's taps: output `i` reads `count[i]` input samples from `first[i]` with weights
    /// `weights[i * taps ..< i * taps + count[i]]`.
    struct Taps {
        var taps: Int
        var first: [Int]
        var count: [Int]
        var weights: [Int32]
    }

    /// `precompute_coeffs` + `normalize_coeffs_8bpc` of Resample.c, for the box `[0, inSize)`.
    static func taps(inSize: Int, outSize: Int, filter: ResampleFilter) -> Taps {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filter.support * filterScale
        let taps = Int(support.rounded(.up)) * 2 + 1
        var first = [Int](repeating: 0, count: outSize)
        var count = [Int](repeating: 0, count: outSize)
        var weights = [Int32](repeating: 0, count: outSize * taps)
        var k = [Double](repeating: 0, count: taps)
        let ss = 1 / filterScale
        for xx in 0..<outSize {
            let center = (Double(xx) + 0.5) * scale
            // (int)(v + 0.5) truncates toward zero, as C's cast does.
            let xmin = max(Int(center - support + 0.5), 0)
            let xmax = min(Int(center + support + 0.5), inSize) - xmin
            var total = 0.0
            for x in 0..<xmax {
                let w = filter.weight((Double(x + xmin) - center + 0.5) * ss)
                k[x] = w
                total += w
            }
            for x in 0..<xmax {
                let normalised = total != 0 ? k[x] / total : k[x]
                let fixed = normalised * Double(1 << precisionBits)
                weights[xx * taps + x] = Int32(normalised < 0 ? (-0.5 + fixed) : (0.5 + fixed))
            }
            first[xx] = xmin
            count[xx] = max(xmax, 0)
        }
        return Taps(taps: taps, first: first, count: count, weights: weights)
    }

    @inline(__always)
    static func clip8(_ acc: Int32) -> UInt8 {
        let v = acc >> Int32(precisionBits)
        return UInt8(truncatingIfNeeded: min(max(v, 0), 255))
    }

    /// Resizes `image` to `width` × `height` exactly as Pillow 13's `Image.resize` does for RGB images.
    public static func resize(_ image: RGBImage, width: Int, height: Int, filter: ResampleFilter) throws -> RGBImage {
        guard width > 0, height > 0 else {
            throw ImageError.badConfig(file: "resize", detail: "target size \(width)x\(height) must be positive")
        }
        // The decoder's pixel limit bounds the resized image too (a very thin image resized to a shortest
        // edge grows its long side in proportion).
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        let limit = ImageDecoder.maxPixels
        if limit > 0, overflow || pixels > limit {
            throw ImageError.badConfig(file: "resize", detail: "resizing a \(image.width)x\(image.height) image to \(width)x\(height) "
                + "would make more than \(limit) pixels (the decoded-image limit): crop the image to a less extreme aspect "
                + "ratio, or raise the limit with --max-image-pixels")
        }
        guard filter != .nearest else {
            throw ImageError.badConfig(file: "resize", detail: "resample 0 (nearest) is not implemented: use "
                + "2 (bilinear) or 3 (bicubic) in preprocessor_config.json")
        }
        if width == image.width && height == image.height { return image }
        let horizontal = taps(inSize: image.width, outSize: width, filter: filter)
        let vertical = taps(inSize: image.height, outSize: height, filter: filter)
        if width == image.width { return verticalPass(image, taps: vertical, outHeight: height) }
        if height == image.height {
            return horizontalPass(image, rows: 0..<image.height, taps: horizontal, outWidth: width)
        }
        if verticalFirst(inWidth: image.width, inHeight: image.height, outWidth: width, outHeight: height) {
            let shrunk = verticalPass(image, taps: vertical, outHeight: height)
            return horizontalPass(shrunk, rows: 0..<height, taps: horizontal, outWidth: width)
        }
        // Only rows [first used, last used) of the source feed the vertical pass.
        let rowFirst = vertical.first[0]
        let rowEnd = vertical.first[height - 1] + vertical.count[height - 1]
        let wide = horizontalPass(image, rows: rowFirst..<rowEnd, taps: horizontal, outWidth: width)
        var shifted = vertical
        for i in 0..<height { shifted.first[i] -= rowFirst }
        return verticalPass(wide, taps: shifted, outHeight: height)
    }

    /// Pillow 13 runs the vertical pass first when the height shrinks by more than twice as many pixels
    /// as the width does (python-pillow/Pillow#9549, "If height is scaled down significantly more than
    /// width, resize vertically first"); the 8-bit intermediate makes the order visible in the result.
    /// The condition `2 * (inWidth - outWidth) < inHeight - outHeight` was established against Pillow
    /// 13.0.0 on 384 random size pairs (Scripts/fixtures/make_image_fixtures.py checks it too).
    static func verticalFirst(inWidth: Int, inHeight: Int, outWidth: Int, outHeight: Int) -> Bool {
        outHeight < inHeight && 2 * (inWidth - outWidth) < inHeight - outHeight
    }

    static func horizontalPass(_ image: RGBImage, rows: Range<Int>, taps: Taps, outWidth: Int) -> RGBImage {
        var out = [UInt8](repeating: 0, count: rows.count * outWidth * 3)
        let inStride = image.width * 3, outStride = outWidth * 3
        let half = Int32(1) << Int32(precisionBits - 1)
        image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                taps.weights.withUnsafeBufferPointer { kk in
                    for (row, y) in rows.enumerated() {
                        let line = src.baseAddress! + y * inStride
                        let target = dst.baseAddress! + row * outStride
                        for xx in 0..<outWidth {
                            var r = half, g = half, b = half
                            let k = kk.baseAddress! + xx * taps.taps
                            var p = line + taps.first[xx] * 3
                            for x in 0..<taps.count[xx] {
                                let w = k[x]
                                r = r &+ Int32(p[0]) &* w
                                g = g &+ Int32(p[1]) &* w
                                b = b &+ Int32(p[2]) &* w
                                p += 3
                            }
                            target[xx * 3] = clip8(r)
                            target[xx * 3 + 1] = clip8(g)
                            target[xx * 3 + 2] = clip8(b)
                        }
                    }
                }
            }
        }
        return RGBImage(width: outWidth, height: rows.count, pixels: out)
    }

    static func verticalPass(_ image: RGBImage, taps: Taps, outHeight: Int) -> RGBImage {
        let stride = image.width * 3
        var out = [UInt8](repeating: 0, count: outHeight * stride)
        var acc = [Int32](repeating: 0, count: stride)
        let half = Int32(1) << Int32(precisionBits - 1)
        image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                acc.withUnsafeMutableBufferPointer { acc in
                    for yy in 0..<outHeight {
                        for i in 0..<stride { acc[i] = half }
                        // Integer sums wrap identically in any order, so summing row by row (vectorisable)
                        // gives Pillow's per-pixel result exactly.
                        for y in 0..<taps.count[yy] {
                            let w = taps.weights[yy * taps.taps + y]
                            let line = src.baseAddress! + (taps.first[yy] + y) * stride
                            for i in 0..<stride { acc[i] = acc[i] &+ Int32(line[i]) &* w }
                        }
                        let target = dst.baseAddress! + yy * stride
                        for i in 0..<stride { target[i] = clip8(acc[i]) }
                    }
                }
            }
        }
        return RGBImage(width: image.width, height: outHeight, pixels: out)
    }
}
