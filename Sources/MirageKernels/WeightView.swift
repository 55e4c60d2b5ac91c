// The view of a weight matrix the linear kernels read: plain pointers and strides copied out of a
// `WeightMatrix`, plus loads of 16 consecutive weights of a row as f32 in any storage format.

/// A weight matrix as the linear kernels see it (a value, so inner loops touch no class fields).
/// q8 (all strides in bytes): group g (32 inputs) of row r holds its values at `data + r·rowStride +
/// g·groupStride` and its f32 scale at `scales + r·scaleRowStride + g·scaleGroupStride`.
struct WeightView {
    let data: UnsafeRawPointer
    let scales: UnsafeRawPointer
    let rows: Int
    let cols: Int
    let rowStride: Int
    let groupStride: Int
    let scaleRowStride: Int
    let scaleGroupStride: Int
    let format: WeightFormat

    init(_ w: WeightMatrix) {
        data = w.data
        scales = w.scales.map { UnsafeRawPointer($0) } ?? w.data
        rows = w.rows
        cols = w.cols
        rowStride = w.rowStride
        groupStride = w.groupStride
        scaleRowStride = w.scaleRowStride
        scaleGroupStride = w.scaleGroupStride
        format = w.format
    }

    /// The first element of row r.
    @inline(__always) func row(_ r: Int) -> UnsafeRawPointer { data + r &* rowStride }

    /// The q8 scales of row r: group g's scale is at `scaleRow(r) + g·scaleGroupStride`.
    @inline(__always) func scaleRow(_ r: Int) -> UnsafeRawPointer { scales + r &* scaleRowStride }
}

/// How 16 consecutive weights of a row are loaded as f32, one conforming type per storage format. Kernels
/// are generic over it: each gets a specialised copy per format with the load inlined (a `WeightFormat`
/// switch inside a kernel loop would not fold away, since the optimiser does not inline large kernels
/// into a dispatcher several times).
protocol WeightLoads {
    /// Weights (r, c…c+15) as f32, lanes at or beyond `w.cols` zero. c is a multiple of 16 (for q8, 16
    /// inputs then never straddle a 32-input group).
    static func vector16(_ w: WeightView, row r: Int, column c: Int) -> F16x16
}

/// Formats whose row elements are contiguous and equally sized (f32, f16, bf16).
protocol PlainLoads: WeightLoads {
    static var elementBytes: Int { get }
    /// 16 elements at `p` as f32.
    static func load16(_ p: UnsafeRawPointer) -> F16x16
    /// The first `count` (< 16) elements at `p` as f32, the other lanes zero.
    static func partial16(_ p: UnsafeRawPointer, count: Int) -> F16x16
}

extension PlainLoads {
    /// `vector16` where c + 16 ≤ `w.cols` (no bounds check: the main loops' loads).
    @inline(__always) static func full16(_ w: WeightView, row r: Int, column c: Int) -> F16x16 {
        load16(w.row(r) + c &* elementBytes)
    }

    @inline(__always) static func vector16(_ w: WeightView, row r: Int, column c: Int) -> F16x16 {
        let p = w.row(r) + c &* elementBytes
        let remaining = w.cols &- c
        return remaining >= 16 ? load16(p) : partial16(p, count: remaining)
    }
}

enum F32Loads: PlainLoads {
    static var elementBytes: Int { 4 }
    @inline(__always) static func load16(_ p: UnsafeRawPointer) -> F16x16 { p.loadUnaligned(as: F16x16.self) }
    static func partial16(_ p: UnsafeRawPointer, count: Int) -> F16x16 {
        tailLoad(p.assumingMemoryBound(to: Float.self), count: count, fill: 0)
    }
}

enum F16Loads: PlainLoads {
    static var elementBytes: Int { 2 }
    @inline(__always) static func load16(_ p: UnsafeRawPointer) -> F16x16 { loadF16x16(p) }
    static func partial16(_ p: UnsafeRawPointer, count: Int) -> F16x16 {
        loadPartial(p, count: count, as: Float16.self, zero: 0, widen: widenF16)
    }
}

enum BF16Loads: PlainLoads {
    static var elementBytes: Int { 2 }
    @inline(__always) static func load16(_ p: UnsafeRawPointer) -> F16x16 { loadBF16x16(p) }
    static func partial16(_ p: UnsafeRawPointer, count: Int) -> F16x16 {
        loadPartial(p, count: count, as: UInt16.self, zero: 0, widen: widenBF16)
    }
}

/// q8: the 16 values widened and multiplied by their group's scale.
enum Q8Loads: WeightLoads {
    @inline(__always) static func vector16(_ w: WeightView, row r: Int, column c: Int) -> F16x16 {
        let g = c &>> 5
        let p = w.row(r) + (g &* w.groupStride &+ (c & 31))
        let scale = F16x16(repeating: w.scaleRow(r).load(fromByteOffset: g &* w.scaleGroupStride, as: Float.self))
        let remaining = w.cols &- c
        let values = remaining >= 16 ? loadI8x16(p) : loadPartial(p, count: remaining, as: Int8.self, zero: 0, widen: widenI8)
        return values * scale
    }
}
