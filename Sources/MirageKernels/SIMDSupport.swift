// Unaligned SIMD16 loads and stores plus vectorised exp, the building blocks of every kernel.

typealias F16x16 = SIMD16<Float>

@inline(__always) func load16(_ p: UnsafePointer<Float>) -> F16x16 {
    UnsafeRawPointer(p).loadUnaligned(as: F16x16.self)
}

@inline(__always) func load16(_ p: UnsafeMutablePointer<Float>) -> F16x16 {
    UnsafeRawPointer(p).loadUnaligned(as: F16x16.self)
}

@inline(__always) func store16(_ v: F16x16, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F16x16.self)
}

// Widening is written lane by lane: LLVM turns each loop into one instruction (vcvtph2ps, vpmovzxwd +
// vpslld, vpmovsxbd + vcvtdq2ps), whereas the stdlib's generic SIMD conversion initialisers stay
// outlined calls in the middle of a kernel loop.

/// 16 binary16 values widened to f32.
@inline(__always) func widenF16(_ h: SIMD16<Float16>) -> F16x16 {
    var v = F16x16()
    for i in 0..<16 { v[i] = Float(h[i]) }
    return v
}

/// 16 bfloat16 values (as bits) widened to f32 by a 16-bit left shift.
@inline(__always) func widenBF16(_ h: SIMD16<UInt16>) -> F16x16 {
    var bits = SIMD16<UInt32>()
    for i in 0..<16 { bits[i] = UInt32(h[i]) &<< 16 }
    return unsafeBitCast(bits, to: F16x16.self)
}

/// 16 int8 values widened to f32.
@inline(__always) func widenI8(_ q: SIMD16<Int8>) -> F16x16 {
    var v = F16x16()
    for i in 0..<16 { v[i] = Float(q[i]) }
    return v
}

/// 16 binary16 values at byte address `p` widened to f32.
@inline(__always) func loadF16x16(_ p: UnsafeRawPointer) -> F16x16 {
    widenF16(p.loadUnaligned(as: SIMD16<Float16>.self))
}

/// 16 bfloat16 values at byte address `p` widened to f32.
@inline(__always) func loadBF16x16(_ p: UnsafeRawPointer) -> F16x16 {
    widenBF16(p.loadUnaligned(as: SIMD16<UInt16>.self))
}

/// 16 int8 values at byte address `p` widened to f32.
@inline(__always) func loadI8x16(_ p: UnsafeRawPointer) -> F16x16 {
    widenI8(p.loadUnaligned(as: SIMD16<Int8>.self))
}

/// The first `count` (0…16) elements of type `T` at `p` widened by `widen`, the other lanes zero: the
/// ragged end of a row, where a full 16-lane load could read past the buffer.
@inline(__always) func loadPartial<T: SIMDScalar>(_ p: UnsafeRawPointer, count: Int, as type: T.Type,
                                                  zero: T, widen: (SIMD16<T>) -> F16x16) -> F16x16 {
    var v = SIMD16<T>(repeating: zero)
    for i in 0..<min(max(count, 0), 16) { v[i] = p.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.stride, as: T.self) }
    return widen(v)
}

@inline(__always) func bf16ToFloat(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

/// Round-to-nearest-even f32 → bfloat16 (NaN stays NaN), as torch's `.to(torch.bfloat16)`.
@inline(__always) func floatToBF16(_ x: Float) -> UInt16 {
    let bits = x.bitPattern
    if x.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x40) }
    let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: rounded >> 16)
}

/// e^x for 16 lanes, within ~2 ulp of the correctly rounded result; exactly 0 below -87.3 (so -inf → 0).
/// Cody–Waite reduction x = k·ln2 + r, |r| ≤ ln2/2, then a degree-7 Taylor polynomial of e^r
/// (truncation error |r|^8/8! < 3e-9) and scaling by 2^k through the exponent bits.
@inline(__always) func exp16(_ x: F16x16) -> F16x16 {
    let clamped = clamp16(x, -87.3, 88.3)
    // k = round(x / ln 2) via the 1.5·2²³ trick: adding it rounds to an integer (ties to even) and
    // leaves k + 2²² in the low mantissa bits. (Swift's generic SIMD float↔int conversions are
    // outlined scalar loops; this stays in registers.)
    let shifter = F16x16(repeating: 12_582_912) // 1.5·2²³
    let shifted = clamped * 1.442_695_04 + shifter
    let k = shifted - shifter
    // ln 2 split into a high part exact in f32 and the remainder (Cody & Waite).
    var r = clamped.addingProduct(k, F16x16(repeating: -0.693_145_751_953_125))
    r = r.addingProduct(k, F16x16(repeating: -1.428_606_765_330_187e-06))
    var p = F16x16(repeating: 1.0 / 5040)
    p = F16x16(repeating: 1.0 / 720).addingProduct(p, r)
    p = F16x16(repeating: 1.0 / 120).addingProduct(p, r)
    p = F16x16(repeating: 1.0 / 24).addingProduct(p, r)
    p = F16x16(repeating: 1.0 / 6).addingProduct(p, r)
    p = F16x16(repeating: 0.5).addingProduct(p, r)
    p = F16x16(repeating: 1).addingProduct(p, r)
    p = F16x16(repeating: 1).addingProduct(p, r)
    // 2^k: the low bits of `shifted` hold k + 0x40_0000 (above 0x4B40_0000); move k + 127 into the exponent.
    let bits = unsafeBitCast(shifted, to: SIMD16<UInt32>.self) &- 0x4B40_0000 &+ 127
    let result = p * unsafeBitCast(bits &<< 23, to: F16x16.self)
    return result.replacing(with: 0, where: x .< -87.3)
}

/// Horizontal sum in a fixed order (pairwise), so results do not depend on the code path.
@inline(__always) func sum16(_ v: F16x16) -> Float {
    let a = v.lowHalf + v.highHalf
    let b = a.lowHalf + a.highHalf
    let c = b.lowHalf + b.highHalf
    return c[0] + c[1]
}

/// |x| lane-wise (clears the sign bit).
@inline(__always) func abs16(_ x: F16x16) -> F16x16 {
    unsafeBitCast(unsafeBitCast(x, to: SIMD16<UInt32>.self) & 0x7FFF_FFFF, to: F16x16.self)
}

/// Lane-wise maximum (the generic `pointwiseMax` is an outlined scalar loop).
@inline(__always) func max16(_ a: F16x16, _ b: F16x16) -> F16x16 { a.replacing(with: b, where: b .> a) }

/// Lane-wise clamp to [lower, upper] (NaN stays NaN).
@inline(__always) func clamp16(_ x: F16x16, _ lower: Float, _ upper: Float) -> F16x16 {
    x.replacing(with: lower, where: x .< lower).replacing(with: upper, where: x .> upper)
}

/// Round-to-nearest-even f32 → bfloat16 for 16 lanes (NaN stays NaN), as `floatToBF16`.
@inline(__always) func roundBF16x16(_ v: F16x16) -> SIMD16<UInt16> {
    let bits = unsafeBitCast(v, to: SIMD16<UInt32>.self)
    var rounded = (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) &>> 16
    rounded.replace(with: (bits &>> 16) | 0x40, where: v .!= v)
    var halves = SIMD16<UInt16>()
    for i in 0..<16 { halves[i] = UInt16(truncatingIfNeeded: rounded[i]) }
    return halves
}
