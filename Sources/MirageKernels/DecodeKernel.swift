// The decode path for one input (n = 1): y[r] = Σ_c x[c]·W[r, c] (+ bias[r]), one weight row at a time,
// each row streamed from memory once. (n = 2…8 run the mid-n tiles, MidNKernel.swift.)

extension Kernels {
    /// Rows [r0, r1) of y for one input x (`w.cols` floats, not padded).
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

    /// x[c…c+15], lanes at or beyond `cols` zero.
    @inline(__always)
    private static func loadInputs(_ x: UnsafePointer<Float>, _ c: Int, _ cols: Int) -> F16x16 {
        cols &- c >= 16 ? load16(x + c) : tailLoad(x + c, count: cols &- c, fill: 0)
    }
}
