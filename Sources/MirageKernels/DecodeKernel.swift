import CMirageKernels
import Synchronization

// The decode path for one input (n = 1): y[r] = Σ_c x[c]·W[r, c] (+ bias[r]), each weight row streamed
// from memory once. (n = 2…8 run the mid-n tiles, MidNKernel.swift.)
//
// Every row sums its products on 4 chains of 16 lanes (chain j takes the 16-input chunks j, j + 4, …; the
// ragged tail goes to chain 0), then adds the chains in order and reduces the lanes pairwise (`sum16`).
// `decodeRowQuads` runs 4 consecutive rows at once with that same per-row order (16 chains in flight, each
// x chunk loaded once for the 4 rows, the tile 2 ahead prefetched), so its outputs are bit-identical to
// `decodeRows`, which runs one row at a time and takes the rows left over.

/// The earlier one-row-at-a-time kernel for every row when true (benchmarks compare the two in one
/// process: `mirage-bench kernels --only decode-ab`). Results are identical either way.
private let decodeOneRowAtATime = Atomic<Bool>(false)

extension Kernels {
    /// Selects the n = 1 decode kernel for benchmarks: `true` runs every row alone (the kernel before
    /// 2026-12-07), `false` (the default) runs 4-row quads. Outputs are bit-identical; only speed differs.
    public static func setDecodeOneRowAtATime(_ enabled: Bool) {
        decodeOneRowAtATime.store(enabled, ordering: .relaxed)
    }

    /// Rows [r0, r1) of y for one input x (`w.cols` floats, not padded): 4-row quads, then single rows.
    static func decodeRowBlock(_ w: WeightView, _ x: UnsafePointer<Float>, _ r0: Int, _ r1: Int,
                               _ bias: UnsafePointer<Float>?, _ y: UnsafeMutablePointer<Float>) {
        let quadEnd = decodeOneRowAtATime.load(ordering: .relaxed) ? r0 : r0 + (r1 - r0) / 4 * 4
        if quadEnd > r0 {
            switch w.format {
            case .f32: decodeRowQuads(F32Loads.self, w, x, r0, quadEnd, bias, y)
            case .f16: decodeRowQuads(F16Loads.self, w, x, r0, quadEnd, bias, y)
            case .bf16: decodeRowQuads(BF16Loads.self, w, x, r0, quadEnd, bias, y)
            case .q8: decodeRowQuadsQ8(w, x, r0, quadEnd, bias, y)
            }
        }
        if quadEnd < r1 { decodeRows(w, x, quadEnd, r1, bias, y) }
    }

    /// Rows [r0, r1) of y for one input x, one row at a time.
    static func decodeRows(_ w: WeightView, _ x: UnsafePointer<Float>, _ r0: Int, _ r1: Int,
                           _ bias: UnsafePointer<Float>?, _ y: UnsafeMutablePointer<Float>) {
        switch w.format {
        case .f32: decodeRows(F32Loads.self, w, x, r0, r1, bias, y)
        case .f16: decodeRows(F16Loads.self, w, x, r0, r1, bias, y)
        case .bf16: decodeRows(BF16Loads.self, w, x, r0, r1, bias, y)
        case .q8: decodeRowsQ8(w, x, r0, r1, bias, y)
        }
    }

    /// f32/f16/bf16 rows: 4 column chunks of 16 in flight on 4 independent FMA chains; the row's ragged
    /// tail accumulates into the first chain, then the chains are added in order.
    private static func decodeRows<L: PlainLoads>(_ loads: L.Type, _ w: WeightView, _ x: UnsafePointer<Float>, _ r0: Int,
                                   _ r1: Int, _ bias: UnsafePointer<Float>?, _ y: UnsafeMutablePointer<Float>) {
        let cols = w.cols
        for r in r0..<r1 {
            var a0 = F16x16(), a1 = F16x16(), a2 = F16x16(), a3 = F16x16()
            var c = 0
            while c &+ 64 <= cols {
                a0 = a0.addingProduct(L.full16(w, row: r, column: c), load16(x + c))
                a1 = a1.addingProduct(L.full16(w, row: r, column: c &+ 16), load16(x + (c &+ 16)))
                a2 = a2.addingProduct(L.full16(w, row: r, column: c &+ 32), load16(x + (c &+ 32)))
                a3 = a3.addingProduct(L.full16(w, row: r, column: c &+ 48), load16(x + (c &+ 48)))
                c &+= 64
            }
            while c < cols {
                a0 = a0.addingProduct(L.vector16(w, row: r, column: c), loadInputs(x, c, cols))
                c &+= 16
            }
            y[r] = sum16(((a0 + a1) + a2) + a3) + (bias?[r] ?? 0)
        }
    }

    /// q8 rows: two 32-input groups in flight, one accumulator per 16-lane half (4 chains); groups left
    /// over (one full, the ragged one) go to the first two, then the chains are added in order.
    private static func decodeRowsQ8(_ w: WeightView, _ x: UnsafePointer<Float>, _ r0: Int, _ r1: Int,
                                     _ bias: UnsafePointer<Float>?, _ y: UnsafeMutablePointer<Float>) {
        let cols = w.cols
        let groups = (cols &+ 31) &>> 5, fullGroups = cols &>> 5
        for r in r0..<r1 {
            var a0 = F16x16(), a1 = F16x16(), a2 = F16x16(), a3 = F16x16()
            // Group g's values at `values`, its scale at `scale`, both advanced group by group.
            var values = w.row(r), scale = w.scaleRow(r)
            var g = 0
            while g &+ 2 <= fullGroups {
                let c = g &<< 5
                let s0 = F16x16(repeating: scale.load(as: Float.self))
                let s1 = F16x16(repeating: scale.load(fromByteOffset: w.scaleGroupStride, as: Float.self))
                let next = values + w.groupStride
                a0 = a0.addingProduct(loadI8x16(values) * s0, load16(x + c))
                a1 = a1.addingProduct(loadI8x16(values + 16) * s0, load16(x + (c &+ 16)))
                a2 = a2.addingProduct(loadI8x16(next) * s1, load16(x + (c &+ 32)))
                a3 = a3.addingProduct(loadI8x16(next + 16) * s1, load16(x + (c &+ 48)))
                values = next + w.groupStride
                scale += 2 &* w.scaleGroupStride
                g &+= 2
            }
            while g < groups {
                let c = g &<< 5
                a0 = a0.addingProduct(Q8Loads.vector16(w, row: r, column: c), loadInputs(x, c, cols))
                if c &+ 16 < cols {
                    a1 = a1.addingProduct(Q8Loads.vector16(w, row: r, column: c &+ 16), loadInputs(x, c &+ 16, cols))
                }
                g &+= 1
            }
            y[r] = sum16(((a0 + a1) + a2) + a3) + (bias?[r] ?? 0)
        }
    }

    /// Rows [r0, r1) (a multiple of 4 rows) 4 at a time: each row keeps `decodeRows`' 4 chains and their
    /// order, so the results are bit-identical to it; the 16 chains hide the FMA latency that 4 leave
    /// exposed, and each x chunk is loaded once for 4 rows. The 4 rows are 4 streams a row apart, which the
    /// hardware prefetcher does not run ahead of, so each 64-input step also prefetches its share of the
    /// quad 2 quads ahead (as the mid-n tiles do, MidNKernel.swift).
    private static func decodeRowQuads<L: PlainLoads>(_ loads: L.Type, _ w: WeightView, _ x: UnsafePointer<Float>,
                                                      _ r0: Int, _ r1: Int, _ bias: UnsafePointer<Float>?,
                                                      _ y: UnsafeMutablePointer<Float>) {
        let cols = w.cols, stride = w.rowStride
        let prefetch = QuadPrefetch(w, cols: cols)
        var r = r0
        while r < r1 {
            var c0 = RowChains(), c1 = RowChains(), c2 = RowChains(), c3 = RowChains()
            var p = w.row(r)
            var ahead = prefetch.start(r)
            var c = 0
            while c &+ 64 <= cols {
                prefetch.step(&ahead)
                let x0 = load16(x + c), x1 = load16(x + (c &+ 16)), x2 = load16(x + (c &+ 32)), x3 = load16(x + (c &+ 48))
                c0.add64(L.self, p, x0, x1, x2, x3)
                c1.add64(L.self, p + stride, x0, x1, x2, x3)
                c2.add64(L.self, p + 2 &* stride, x0, x1, x2, x3)
                c3.add64(L.self, p + 3 &* stride, x0, x1, x2, x3)
                p += 64 &* L.elementBytes
                c &+= 64
            }
            while c < cols {
                let xv = loadInputs(x, c, cols)
                c0.a0 = c0.a0.addingProduct(L.vector16(w, row: r, column: c), xv)
                c1.a0 = c1.a0.addingProduct(L.vector16(w, row: r &+ 1, column: c), xv)
                c2.a0 = c2.a0.addingProduct(L.vector16(w, row: r &+ 2, column: c), xv)
                c3.a0 = c3.a0.addingProduct(L.vector16(w, row: r &+ 3, column: c), xv)
                c &+= 16
            }
            storeQuad(c0, c1, c2, c3, r, bias, y)
            r &+= 4
        }
    }

    /// q8 rows 4 at a time, each with `decodeRowsQ8`' chains and order (bit-identical results), prefetching
    /// as `decodeRowQuads` does.
    private static func decodeRowQuadsQ8(_ w: WeightView, _ x: UnsafePointer<Float>, _ r0: Int, _ r1: Int,
                                         _ bias: UnsafePointer<Float>?, _ y: UnsafeMutablePointer<Float>) {
        let cols = w.cols
        let groups = (cols &+ 31) &>> 5, fullGroups = cols &>> 5
        let stride = w.rowStride, scaleStride = w.scaleRowStride
        let prefetch = QuadPrefetch(w, cols: cols)
        var r = r0
        while r < r1 {
            var c0 = RowChains(), c1 = RowChains(), c2 = RowChains(), c3 = RowChains()
            // Group g of row r + q: values at values + q·stride, scale at scale + q·scaleStride.
            var values = w.row(r), scale = w.scaleRow(r)
            var ahead = prefetch.start(r)
            var g = 0
            while g &+ 2 <= fullGroups {
                prefetch.step(&ahead)
                let c = g &<< 5
                let x0 = load16(x + c), x1 = load16(x + (c &+ 16)), x2 = load16(x + (c &+ 32)), x3 = load16(x + (c &+ 48))
                c0.addQ8(values, scale, w, x0, x1, x2, x3)
                c1.addQ8(values + stride, scale + scaleStride, w, x0, x1, x2, x3)
                c2.addQ8(values + 2 &* stride, scale + 2 &* scaleStride, w, x0, x1, x2, x3)
                c3.addQ8(values + 3 &* stride, scale + 3 &* scaleStride, w, x0, x1, x2, x3)
                values += 2 &* w.groupStride
                scale += 2 &* w.scaleGroupStride
                g &+= 2
            }
            while g < groups {
                let c = g &<< 5
                let xa = loadInputs(x, c, cols)
                c0.a0 = c0.a0.addingProduct(Q8Loads.vector16(w, row: r, column: c), xa)
                c1.a0 = c1.a0.addingProduct(Q8Loads.vector16(w, row: r &+ 1, column: c), xa)
                c2.a0 = c2.a0.addingProduct(Q8Loads.vector16(w, row: r &+ 2, column: c), xa)
                c3.a0 = c3.a0.addingProduct(Q8Loads.vector16(w, row: r &+ 3, column: c), xa)
                if c &+ 16 < cols {
                    let xb = loadInputs(x, c &+ 16, cols)
                    c0.a1 = c0.a1.addingProduct(Q8Loads.vector16(w, row: r, column: c &+ 16), xb)
                    c1.a1 = c1.a1.addingProduct(Q8Loads.vector16(w, row: r &+ 1, column: c &+ 16), xb)
                    c2.a1 = c2.a1.addingProduct(Q8Loads.vector16(w, row: r &+ 2, column: c &+ 16), xb)
                    c3.a1 = c3.a1.addingProduct(Q8Loads.vector16(w, row: r &+ 3, column: c &+ 16), xb)
                }
                g &+= 1
            }
            storeQuad(c0, c1, c2, c3, r, bias, y)
            r &+= 4
        }
    }

    /// y[r…r+3] = the quad's row sums (+ bias).
    @inline(__always)
    private static func storeQuad(_ c0: RowChains, _ c1: RowChains, _ c2: RowChains, _ c3: RowChains, _ r: Int,
                                  _ bias: UnsafePointer<Float>?, _ y: UnsafeMutablePointer<Float>) {
        y[r] = c0.total + (bias?[r] ?? 0)
        y[r &+ 1] = c1.total + (bias?[r &+ 1] ?? 0)
        y[r &+ 2] = c2.total + (bias?[r &+ 2] ?? 0)
        y[r &+ 3] = c3.total + (bias?[r &+ 3] ?? 0)
    }

    /// x[c…c+15], lanes at or beyond `cols` zero.
    @inline(__always)
    private static func loadInputs(_ x: UnsafePointer<Float>, _ c: Int, _ cols: Int) -> F16x16 {
        cols &- c >= 16 ? load16(x + c) : tailLoad(x + c, count: cols &- c, fill: 0)
    }
}

/// One row's 4 accumulator chains on the n = 1 decode path.
private struct RowChains {
    var a0 = F16x16(), a1 = F16x16(), a2 = F16x16(), a3 = F16x16()

    /// The row's dot product: the chains added in order, then the lanes (`sum16`).
    var total: Float { sum16(((a0 + a1) + a2) + a3) }

    /// 64 inputs of a plain-format row at `p` against x chunks x0…x3 (chunk j to chain j).
    @inline(__always)
    mutating func add64<L: PlainLoads>(_ loads: L.Type, _ p: UnsafeRawPointer, _ x0: F16x16, _ x1: F16x16,
                                       _ x2: F16x16, _ x3: F16x16) {
        a0 = a0.addingProduct(L.load16(p), x0)
        a1 = a1.addingProduct(L.load16(p + 16 &* L.elementBytes), x1)
        a2 = a2.addingProduct(L.load16(p + 32 &* L.elementBytes), x2)
        a3 = a3.addingProduct(L.load16(p + 48 &* L.elementBytes), x3)
    }

    /// Two q8 groups (64 inputs) of a row, values at `values`, scales at `scale`, as `decodeRowsQ8` forms them.
    @inline(__always)
    mutating func addQ8(_ values: UnsafeRawPointer, _ scale: UnsafeRawPointer, _ w: WeightView, _ x0: F16x16,
                        _ x1: F16x16, _ x2: F16x16, _ x3: F16x16) {
        let s0 = F16x16(repeating: scale.load(as: Float.self))
        let s1 = F16x16(repeating: scale.load(fromByteOffset: w.scaleGroupStride, as: Float.self))
        let next = values + w.groupStride
        a0 = a0.addingProduct(loadI8x16(values) * s0, x0)
        a1 = a1.addingProduct(loadI8x16(values + 16) * s0, x1)
        a2 = a2.addingProduct(loadI8x16(next) * s1, x2)
        a3 = a3.addingProduct(loadI8x16(next + 16) * s1, x3)
    }
}

/// The software prefetch of `decodeRowQuads`: while a quad of rows is read, the quad 2 ahead (4 rows =
/// one contiguous region) is prefetched in equal shares per 64-input step, never past the matrix's rows.
private struct QuadPrefetch {
    let w: WeightView
    /// 64-byte lines per 64-input step.
    let linesPerStep: Int

    init(_ w: WeightView, cols: Int) {
        self.w = w
        let lines = (4 * w.rowStride + 63) / 64
        let steps = max(1, cols / 64)
        linesPerStep = (lines + steps - 1) / steps
    }

    /// The prefetch window of the quad at row r: (next line, end).
    @inline(__always) func start(_ r: Int) -> (UnsafeRawPointer, UnsafeRawPointer) {
        let first = min(w.rows, r &+ 8), last = min(w.rows, r &+ 12)
        return (w.row(first), w.row(last))
    }

    @inline(__always) func step(_ window: inout (UnsafeRawPointer, UnsafeRawPointer)) {
        var j = 0
        while j < linesPerStep && window.0 < window.1 {
            mk_prefetch(window.0)
            window.0 += 64
            j &+= 1
        }
    }
}
