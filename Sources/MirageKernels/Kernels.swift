import Foundation

/// Which GELU formula to apply (they differ by up to ~1e-3, so the model config decides).
public enum GeluKind: String, Sendable, CaseIterable {
    /// x·Φ(x) with the exact error function (torch `gelu`, HF "gelu").
    case erf
    /// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (HF "gelu_pytorch_tanh", "gelu_new").
    case tanh
    /// x·σ(1.702·x) (HF "quick_gelu", CLIP).
    case quick
}

/// Stateless SIMD kernels on f32 vectors. Pointers may not alias unless a kernel says so.
public enum Kernels {
    /// Σ a[i]·b[i] with f32 accumulation.
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var acc0 = F16x16(), acc1 = F16x16()
        var i = 0
        while i + 32 <= count {
            acc0 = acc0.addingProduct(load16(a + i), load16(b + i))
            acc1 = acc1.addingProduct(load16(a + i + 16), load16(b + i + 16))
            i += 32
        }
        if i + 16 <= count {
            acc0 = acc0.addingProduct(load16(a + i), load16(b + i))
            i += 16
        }
        var total = sum16(acc0 + acc1)
        while i < count {
            total = total.addingProduct(a[i], b[i])
            i += 1
        }
        return total
    }

    /// y += alpha·x.
    public static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        let a = F16x16(repeating: alpha)
        var i = 0
        while i + 16 <= count {
            store16(load16(y + i).addingProduct(a, load16(x + i)), y + i)
            i += 16
        }
        while i < count {
            y[i] = y[i].addingProduct(alpha, x[i])
            i += 1
        }
    }

    /// into = a + b (`into` may alias `a` or `b`).
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int,
                           into y: UnsafeMutablePointer<Float>) {
        var i = 0
        while i + 16 <= count {
            store16(load16(a + i) + load16(b + i), y + i)
            i += 16
        }
        while i < count {
            y[i] = a[i] + b[i]
            i += 1
        }
    }

    /// y = x / sqrt(mean(x²) + eps) · weight (Llama/Qwen2 RMSNorm; `y` may alias `x`).
    public static func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, count: Int,
                               eps: Float, into y: UnsafeMutablePointer<Float>) {
        let meanSquare = dot(x, x, count: count) / Float(count)
        let scale = 1 / (meanSquare + eps).squareRoot()
        let s = F16x16(repeating: scale)
        var i = 0
        while i + 16 <= count {
            store16(load16(x + i) * s * load16(weight + i), y + i)
            i += 16
        }
        while i < count {
            y[i] = x[i] * scale * weight[i]
            i += 1
        }
    }

    /// y = (x − mean) / sqrt(var + eps) · weight + bias (biased variance, as torch LayerNorm;
    /// `y` may alias `x`).
    public static func layerNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                 count: Int, eps: Float, into y: UnsafeMutablePointer<Float>) {
        var acc = F16x16()
        var i = 0
        while i + 16 <= count {
            acc += load16(x + i)
            i += 16
        }
        var total = sum16(acc)
        while i < count {
            total += x[i]
            i += 1
        }
        let mean = total / Float(count)
        // Two-pass variance: exact for inputs with a large common offset.
        let m = F16x16(repeating: mean)
        var squares = F16x16()
        i = 0
        while i + 16 <= count {
            let d = load16(x + i) - m
            squares = squares.addingProduct(d, d)
            i += 16
        }
        var variance = sum16(squares)
        while i < count {
            let d = x[i] - mean
            variance = variance.addingProduct(d, d)
            i += 1
        }
        variance /= Float(count)
        let scale = 1 / (variance + eps).squareRoot()
        let s = F16x16(repeating: scale)
        i = 0
        while i + 16 <= count {
            store16((load16(x + i) - m) * s * load16(weight + i) + load16(bias + i), y + i)
            i += 16
        }
        while i < count {
            y[i] = (x[i] - mean) * scale * weight[i] + bias[i]
            i += 1
        }
    }

    /// In-place softmax: x = exp(x − max) / Σ exp(x − max). −inf entries become 0.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        guard count > 0 else { return }
        var maximum = maximumIgnoringNaN(x, count: count)
        if maximum == -.infinity { maximum = 0 } // all masked: keep exp finite (all zeros → NaN, as torch)
        let m = F16x16(repeating: maximum)
        var sums = F16x16()
        var i = 0
        while i + 16 <= count {
            let e = exp16(load16(x + i) - m)
            store16(e, x + i)
            sums += e
            i += 16
        }
        if i < count {
            let tail = tailLoad(x + i, count: count - i, fill: -.infinity)
            let e = exp16(tail - m)
            tailStore(e, x + i, count: count - i)
            sums += e
        }
        let inverse = F16x16(repeating: 1 / sum16(sums))
        i = 0
        while i + 16 <= count {
            store16(load16(x + i) * inverse, x + i)
            i += 16
        }
        while i < count {
            x[i] *= inverse[0]
            i += 1
        }
    }

    /// into = silu(gate) · up, silu(g) = g / (1 + e^−g) (`into` may alias either input).
    public static func siluMul(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int,
                               into y: UnsafeMutablePointer<Float>) {
        var i = 0
        while i < count {
            let n = min(16, count - i)
            let g = n == 16 ? load16(gate + i) : tailLoad(gate + i, count: n, fill: 0)
            let u = n == 16 ? load16(up + i) : tailLoad(up + i, count: n, fill: 0)
            let r = g / (1 + exp16(-g)) * u
            if n == 16 { store16(r, y + i) } else { tailStore(r, y + i, count: n) }
            i += 16
        }
    }

    /// In-place GELU of the given kind.
    public static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int, approximation: GeluKind) {
        var i = 0
        while i < count {
            let n = min(16, count - i)
            let v = n == 16 ? load16(x + i) : tailLoad(x + i, count: n, fill: 0)
            let r: F16x16
            switch approximation {
            case .erf: r = v * normalCDF16(v)
            case .tanh:
                // √(2/π) and 0.044715: the tanh approximation of Hendrycks & Gimpel (2016).
                let inner = 0.797_884_560_802_865_4 * v.addingProduct(0.044_715 * v * v, v)
                r = 0.5 * v * (1 + tanh16(inner))
            case .quick: r = v / (1 + exp16(-1.702 * v))
            }
            if n == 16 { store16(r, x + i) } else { tailStore(r, x + i, count: n) }
            i += 16
        }
    }

    /// Non-interleaved ("rotate_half") RoPE on one head vector in place: for j < d = headDim/2,
    /// (x[j], x[j+d]) is rotated by angle position·inverseFrequencies[j].
    public static func ropeRotateHalf(_ x: UnsafeMutablePointer<Float>, headDim: Int, position: Int,
                                      inverseFrequencies: UnsafePointer<Float>) {
        let half = headDim / 2
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * half) { table in
            let cosines = table.baseAddress!, sines = cosines + half
            ropeAngles(position: position, inverseFrequencies: inverseFrequencies, count: half,
                       cosines: cosines, sines: sines)
            ropeRotateHalf(x, headDim: headDim, cosines: cosines, sines: sines)
        }
    }

    /// cosines[j], sines[j] of the RoPE angle position·inverseFrequencies[j] for j < count: computed once
    /// per position and shared by every head and layer (the cos/sin calls dominated RoPE otherwise).
    public static func ropeAngles(position: Int, inverseFrequencies: UnsafePointer<Float>, count: Int,
                                  cosines: UnsafeMutablePointer<Float>, sines: UnsafeMutablePointer<Float>) {
        let p = Float(position)
        for j in 0..<count {
            // The angle is formed in f32 exactly as transformers does (position · inv_freq in f32).
            let angle = p * inverseFrequencies[j]
            cosines[j] = cos(angle)
            sines[j] = sin(angle)
        }
    }

    /// `ropeRotateHalf` with the per-position cosines/sines (headDim/2 each) from `ropeAngles`.
    public static func ropeRotateHalf(_ x: UnsafeMutablePointer<Float>, headDim: Int,
                                      cosines: UnsafePointer<Float>, sines: UnsafePointer<Float>) {
        let half = headDim / 2
        for j in 0..<half {
            let c = cosines[j], s = sines[j]
            let a = x[j], b = x[j + half]
            x[j] = a * c - b * s
            x[j + half] = b * c + a * s
        }
    }

    /// Widens `count` binary16 values at `source` to f32.
    public static func convertF16ToF32(_ source: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        widen(source, count: count, into: y, vector: loadF16x16) {
            Float($0.loadUnaligned(fromByteOffset: 2 * $1, as: Float16.self))
        }
    }

    /// Widens `count` bfloat16 values at `source` to f32 (exact).
    public static func convertBF16ToF32(_ source: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        widen(source, count: count, into: y, vector: loadBF16x16) {
            bf16ToFloat($0.loadUnaligned(fromByteOffset: 2 * $1, as: UInt16.self))
        }
    }

    /// 16-bit → f32 widening: 16 lanes at a time, then the tail one by one.
    @inline(__always)
    private static func widen(_ source: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>,
                              vector: (UnsafeRawPointer) -> F16x16, scalar: (UnsafeRawPointer, Int) -> Float) {
        var i = 0
        while i + 16 <= count {
            store16(vector(source + 2 * i), y + i)
            i += 16
        }
        while i < count {
            y[i] = scalar(source, i)
            i += 1
        }
    }

    /// Rounds `count` f32 values to bfloat16 (round to nearest even), as torch `.to(torch.bfloat16)`.
    public static func convertF32ToBF16(_ x: UnsafePointer<Float>, count: Int, into destination: UnsafeMutableRawPointer) {
        let out = destination.assumingMemoryBound(to: UInt16.self)
        var i = 0
        while i + 16 <= count {
            UnsafeMutableRawPointer(out + i).storeBytes(of: roundBF16x16(load16(x + i)), as: SIMD16<UInt16>.self)
            i += 16
        }
        while i < count {
            out[i] = floatToBF16(x[i])
            i += 1
        }
    }

    /// Rounds `count` f32 values to binary16 (round to nearest even).
    public static func convertF32ToF16(_ x: UnsafePointer<Float>, count: Int, into destination: UnsafeMutableRawPointer) {
        let out = destination.assumingMemoryBound(to: Float16.self)
        for i in 0..<count { out[i] = Float16(x[i]) }
    }
}

@inline(__always) func tailLoad(_ p: UnsafePointer<Float>, count: Int, fill: Float) -> F16x16 {
    var v = F16x16(repeating: fill)
    for j in 0..<count { v[j] = p[j] }
    return v
}

@inline(__always) func tailLoad(_ p: UnsafeMutablePointer<Float>, count: Int, fill: Float) -> F16x16 {
    tailLoad(UnsafePointer(p), count: count, fill: fill)
}

@inline(__always) func tailStore(_ v: F16x16, _ p: UnsafeMutablePointer<Float>, count: Int) {
    for j in 0..<count { p[j] = v[j] }
}

/// tanh(x) = 1 − 2 / (e^{2x} + 1), saturating correctly at ±1.
@inline(__always) func tanh16(_ x: F16x16) -> F16x16 {
    let c = clamp16(x, -10, 10)
    let small = abs16(c) .< 0.004
    let r = 1 - 2 / (exp16(2 * c) + 1)
    // For tiny |x| the subtraction cancels; tanh(x) ≈ x − x³/3 is exact to f32 there.
    return r.replacing(with: c - c * c * c / 3, where: small)
}

/// Φ(x) = (1 + erf(x/√2)) / 2 for 16 lanes. erfc(a) for a = |x|/√2 ≥ 0 comes from Abramowitz & Stegun
/// 7.1.26 (constants p and a1…a5 from that formula, |error| ≤ 1.5e-7), then Φ = erfc/2 for x < 0 and
/// 1 − erfc/2 otherwise, so the left tail is not lost to cancellation.
@inline(__always) func normalCDF16(_ x: F16x16) -> F16x16 {
    let a = abs16(x) * 0.707_106_781_186_547_5
    let t = 1 / (1 + 0.327_591_1 * a)
    var poly = F16x16(repeating: 1.061_405_429)
    poly = F16x16(repeating: -1.453_152_027).addingProduct(poly, t)
    poly = F16x16(repeating: 1.421_413_741).addingProduct(poly, t)
    poly = F16x16(repeating: -0.284_496_736).addingProduct(poly, t)
    poly = F16x16(repeating: 0.254_829_592).addingProduct(poly, t)
    let halfErfc = 0.5 * poly * t * exp16(-a * a)
    return halfErfc.replacing(with: 1 - halfErfc, where: x .>= 0)
}

extension Kernels {
    /// Index of the largest of x[0..<count]: the first one on ties, NaNs skipped, 0 when nothing is
    /// above −inf (the same answer as a scalar `if x[i] > best` scan). Two vector passes: the maximum,
    /// then its first occurrence.
    public static func argmax(_ x: UnsafePointer<Float>, count: Int) -> Int {
        guard count > 0 else { return 0 }
        let maximum = maximumIgnoringNaN(x, count: count)
        if maximum == -.infinity { return 0 }
        let m = F16x16(repeating: maximum)
        var i = 0
        while i + 16 <= count {
            if any(load16(x + i) .== m) { break }
            i += 16
        }
        while x[i] != maximum { i += 1 }
        return i
    }
}

extension Kernels {
    /// The largest of x[0..<count], NaNs skipped; −inf when there is none above it.
    static func maximumIgnoringNaN(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var maxVector = F16x16(repeating: -.infinity)
        var i = 0
        while i + 16 <= count {
            maxVector = max16(maxVector, load16(x + i))
            i += 16
        }
        var maximum = maxVector.max()
        while i < count {
            if x[i] > maximum { maximum = x[i] }
            i += 1
        }
        return maximum
    }
}
