import CMirageKernels
import Synchronization

// The mid-n path (n = 9…128 rows of x, e.g. OPERA's 25 candidate rows) and the decode path for n = 2…8:
// weights are streamed once, unpacked, and each tile of 4 consecutive weight rows (one sequential
// stream: 4 rows apart is contiguous memory) is dotted with all n inputs while it sits in L1:
//
//   for each 4-row tile of the task:                 weights: from DRAM once (prefetched 2 tiles ahead)
//     for each column block (512 inputs; whole rows ≤ 1024):   q8 (f16/bf16 from 6 groups): block widened once to f32
//       for each group of N ≤ 6 inputs:                x: n rows, from L1/L2 once per tile
//         accumulators: zero, or parked by the previous block
//         for each 16-input chunk (32 for bf16 dot products): 4 weight loads + N x loads → 4·N FMAs
//                                                      (q8 with a single group: widened in registers instead)
//         last block: 4·N horizontal sums + bias → y[i][r…r+3]; else park them
//
// 4 × 6 accumulators + 4 weight vectors + 1 x vector = 29 of 32 zmm registers. The n inputs are split
// into ⌈n/6⌉ groups of nearly equal size (25 = 5+5+5+5+5), so no group runs with a sliver of inputs.
// Every accumulator sums its (row, input) products in the same chunk order whatever the tile, group,
// block or task, so an output does not depend on n, on the row's position in a tile, or on threading.
// bf16 weights with AVX512-BF16 run the same schedule with the C tile (vdpbf16ps, CMirageKernels).

/// Column blocks. A tile's weights for a whole row of `down` (4 × 4864 bf16 = 39 KB) do not stay in L1
/// while x streams past them, so rows longer than `midNWholeRow` inputs run in blocks of `midNBlock`
/// (4 × 512 inputs = 4 KB of bf16 weights, 8 KB of f32), every input group passing over a block before
/// the next; the groups' accumulators are parked in memory between blocks (4·N stores and loads per
/// block), so the summation order, and every result, is the same as without blocks. Single core,
/// n = 25, 896 × 4864 bf16, hot: 280 → 337 GFLOP/s; 20000 × 4864 from DRAM: 200 → 265. Blocks of 512
/// for 896-input rows cost 10% (parking), so those run whole.
private let midNBlock = 512
private let midNWholeRow = 1024
private let tileRows = Int(MK_MIDN_R)
private let groupMax = Int(MK_MIDN_NMAX)

/// f16/bf16 tiles with at least this many input groups (n ≥ 31) widen each column block to f32 once, into
/// L1, and every group reads it from there, instead of widening at every group's load. Measured under load
/// (2026-12-07, `mirage-bench kernels --only midn-ab`, 4 Qwen2-0.5B layers, 1 and 2 threads, CPU time per
/// pass, once / per group): n = 9 (2 groups) 1.07–1.12, 13 (3) 1.03–1.09, 20 (4) 0.96–1.01, 32 (6)
/// 0.875–0.89, 64 (11) 0.78–0.85, 96 (16) 0.83–0.88, f16 and bf16 alike. Below 6 groups the pass's
/// stores and reloads cost as much as the conversions they save.
private let midNWidenOnceGroups = 6

/// Whether f16/bf16 tiles widen once (`midNWidenOnceGroups`); `Kernels.setMidNWidensOnce` turns it off
/// for A/B comparisons.
private let midNWidensOnce = Atomic<Bool>(true)

/// Software prefetch of a later tile's weights. A 4-row tile is one contiguous region but is read as 4
/// streams a row apart, which the hardware prefetcher does not run ahead of, so every call on a tile
/// prefetches its share of the tile `prefetchTiles` ahead, a few lines per chunk, spread evenly over the
/// tile's (column block, input group) calls. Measured single core from DRAM, 100000 × 896 bf16, n = 25:
/// spread over all groups 20.5 → 13.8 ms (219 → 324 GFLOP/s). Distances of 1…16 tiles and the
/// T0/T1/T2/NTA hints were all within ±5%. (The C bf16 tile uses the same plan.)
private let prefetchTiles = 2

/// The accumulators of one input against the tile's 4 rows.
private struct Quad {
    var a0 = F16x16(), a1 = F16x16(), a2 = F16x16(), a3 = F16x16()
}

@inline(__always) private func step(_ acc: inout Quad, _ w: Quad, _ x: UnsafePointer<Float>) {
    let xv = load16(x)
    acc.a0 = acc.a0.addingProduct(w.a0, xv)
    acc.a1 = acc.a1.addingProduct(w.a1, xv)
    acc.a2 = acc.a2.addingProduct(w.a2, xv)
    acc.a3 = acc.a3.addingProduct(w.a3, xv)
}

/// Inputs per group, as a type: the tile is specialised per count, so its unused accumulators fold away.
private protocol InputCount { static var count: Int { get } }
private enum Inputs1: InputCount { static var count: Int { 1 } }
private enum Inputs2: InputCount { static var count: Int { 2 } }
private enum Inputs3: InputCount { static var count: Int { 3 } }
private enum Inputs4: InputCount { static var count: Int { 4 } }
private enum Inputs5: InputCount { static var count: Int { 5 } }
private enum Inputs6: InputCount { static var count: Int { 6 } }

/// Where a tile's weight vectors come from. The main loop walks a cursor over the 4 rows one 32-input
/// group at a time (pointers advanced, no index arithmetic per load); the ragged end of a row
/// (cols not a multiple of 32) takes `quad`, with bounds checks.
private protocol TileWeights {
    associatedtype Cursor
    /// A cursor at input c0 (a multiple of 32) of rows r0…r3.
    /// Rows r … r + 3 (`rowStep` 1) or row r four times (`rowStep` 0, a tile of one row): one base pointer
    /// and a row stride, so the cursor needs few general registers next to the inputs' pointers.
    static func cursor(_ w: WeightView, row r: Int, rowStep: Int, at c0: Int, _ deq: UnsafePointer<Float>?) -> Cursor
    /// The cursor's 16 inputs (all inside the rows).
    static func quad(_ cursor: Cursor) -> Quad
    /// Moves the cursor 16 inputs on, from input c (a multiple of 16).
    static func advance(_ cursor: inout Cursor, from c: Int)
    /// Inputs c…c+15 of rows r0…r3, zero beyond `w.cols`.
    static func quad(_ w: WeightView, _ r0: Int, _ r1: Int, _ r2: Int, _ r3: Int, _ c: Int, _ deq: UnsafePointer<Float>?) -> Quad
}

/// f32, f16, bf16 weights widened as they are loaded.
private enum StoredWeights<L: PlainLoads>: TileWeights {
    struct Cursor {
        var p: UnsafeRawPointer
        let stride: Int
    }

    @inline(__always)
    static func cursor(_ w: WeightView, row r: Int, rowStep: Int, at c0: Int, _ deq: UnsafePointer<Float>?) -> Cursor {
        Cursor(p: w.row(r) + c0 &* L.elementBytes, stride: rowStep &* w.rowStride)
    }

    @inline(__always) static func quad(_ cursor: Cursor) -> Quad {
        let p = cursor.p, s = cursor.stride
        return Quad(a0: L.load16(p), a1: L.load16(p + s), a2: L.load16(p + 2 &* s), a3: L.load16(p + 3 &* s))
    }

    @inline(__always) static func advance(_ cursor: inout Cursor, from c: Int) { cursor.p += 16 &* L.elementBytes }

    @inline(__always)
    static func quad(_ w: WeightView, _ r0: Int, _ r1: Int, _ r2: Int, _ r3: Int, _ c: Int, _ deq: UnsafePointer<Float>?) -> Quad {
        Quad(a0: L.vector16(w, row: r0, column: c), a1: L.vector16(w, row: r1, column: c),
             a2: L.vector16(w, row: r2, column: c), a3: L.vector16(w, row: r3, column: c))
    }
}

/// q8 weights widened and scaled in registers (one input group: each weight is widened once anyway).
private enum Q8Weights: TileWeights {
    struct Cursor {
        var values: UnsafeRawPointer
        var scales: UnsafeRawPointer
        let stride: Int
        let scaleStride: Int
        let groupStride: Int
        let scaleGroupStride: Int
    }

    @inline(__always)
    static func cursor(_ w: WeightView, row r: Int, rowStep: Int, at c0: Int, _ deq: UnsafePointer<Float>?) -> Cursor {
        let g = c0 >> 5
        return Cursor(values: w.row(r) + g * w.groupStride, scales: w.scaleRow(r) + g * w.scaleGroupStride,
                      stride: rowStep &* w.rowStride, scaleStride: rowStep &* w.scaleRowStride,
                      groupStride: w.groupStride, scaleGroupStride: w.scaleGroupStride)
    }

    /// The values pointer walks 16 inputs at a time: +16 within a group, then on to the next group.
    @inline(__always) static func quad(_ cursor: Cursor) -> Quad {
        let v = cursor.values, s = cursor.scales, vs = cursor.stride, ss = cursor.scaleStride
        return Quad(a0: loadI8x16(v) * F16x16(repeating: s.load(as: Float.self)),
                    a1: loadI8x16(v + vs) * F16x16(repeating: (s + ss).load(as: Float.self)),
                    a2: loadI8x16(v + 2 &* vs) * F16x16(repeating: (s + 2 &* ss).load(as: Float.self)),
                    a3: loadI8x16(v + 3 &* vs) * F16x16(repeating: (s + 3 &* ss).load(as: Float.self)))
    }

    @inline(__always) static func advance(_ cursor: inout Cursor, from c: Int) {
        if c & 16 == 0 {
            cursor.values += 16
        } else {
            cursor.values += cursor.groupStride &- 16
            cursor.scales += cursor.scaleGroupStride
        }
    }

    @inline(__always)
    static func quad(_ w: WeightView, _ r0: Int, _ r1: Int, _ r2: Int, _ r3: Int, _ c: Int, _ deq: UnsafePointer<Float>?) -> Quad {
        Quad(a0: Q8Loads.vector16(w, row: r0, column: c), a1: Q8Loads.vector16(w, row: r1, column: c),
             a2: Q8Loads.vector16(w, row: r2, column: c), a3: Q8Loads.vector16(w, row: r3, column: c))
    }
}

/// From the tile's q8 block dequantized once to f32 (`mk_midn_call.deq`: column c0 of row 0, rows
/// `midNWholeRow` apart, zero beyond cols). `quad` gets `deq` shifted so that column c is at deq + c.
private enum DequantizedWeights: TileWeights {
    typealias Cursor = UnsafePointer<Float>

    @inline(__always)
    static func cursor(_ w: WeightView, row r: Int, rowStep: Int, at c0: Int, _ deq: UnsafePointer<Float>?) -> Cursor { deq! }

    @inline(__always) static func quad(_ cursor: Cursor) -> Quad { quadAt(cursor) }
    @inline(__always) static func advance(_ cursor: inout Cursor, from c: Int) { cursor += 16 }

    @inline(__always)
    static func quad(_ w: WeightView, _ r0: Int, _ r1: Int, _ r2: Int, _ r3: Int, _ c: Int, _ deq: UnsafePointer<Float>?) -> Quad {
        quadAt(deq! + c)
    }

    @inline(__always) private static func quadAt(_ d: UnsafePointer<Float>) -> Quad {
        Quad(a0: load16(d), a1: load16(d + midNWholeRow), a2: load16(d + 2 * midNWholeRow), a3: load16(d + 3 * midNWholeRow))
    }
}

/// One chunk (16 inputs of the 4 rows) against the first n inputs: x at `x`, rows `xs` apart.
@inline(__always) private func stepAll(_ n: Int, _ q0: inout Quad, _ q1: inout Quad, _ q2: inout Quad, _ q3: inout Quad,
                                       _ q4: inout Quad, _ q5: inout Quad, _ wq: Quad, _ x: UnsafePointer<Float>, _ xs: Int) {
    step(&q0, wq, x)
    if n > 1 { step(&q1, wq, x + xs) }
    if n > 2 { step(&q2, wq, x + 2 &* xs) }
    if n > 3 { step(&q3, wq, x + 3 &* xs) }
    if n > 4 { step(&q4, wq, x + 4 &* xs) }
    if n > 5 { step(&q5, wq, x + 5 &* xs) }
}

/// Parked accumulators: vector q·n + i holds row q of the tile against input i.
@inline(__always) private func unpark(_ acc: inout Quad, _ save: UnsafeMutablePointer<F16x16>, _ i: Int, _ n: Int) {
    acc = Quad(a0: save[i], a1: save[n &+ i], a2: save[2 &* n &+ i], a3: save[3 &* n &+ i])
}

@inline(__always) private func park(_ acc: Quad, _ save: UnsafeMutablePointer<F16x16>, _ i: Int, _ n: Int) {
    save[i] = acc.a0
    save[n &+ i] = acc.a1
    save[2 &* n &+ i] = acc.a2
    save[3 &* n &+ i] = acc.a3
}

/// Lane q = the horizontal sum of a_q, in a fixed order: pairs within each 128-bit lane (two 2-source
/// shuffles per pair of accumulators), then the four 128-bit lanes: 6 shuffles, 5 full adds and 2 narrowing
/// adds for 4 sums.
@inline(__always) private func horizontalSums(_ a0: F16x16, _ a1: F16x16, _ a2: F16x16, _ a3: F16x16) -> SIMD4<Float> {
    let t0 = F16x16(a0[0], a1[0], a0[1], a1[1], a0[4], a1[4], a0[5], a1[5], a0[8], a1[8], a0[9], a1[9], a0[12], a1[12], a0[13], a1[13])
        + F16x16(a0[2], a1[2], a0[3], a1[3], a0[6], a1[6], a0[7], a1[7], a0[10], a1[10], a0[11], a1[11], a0[14], a1[14], a0[15], a1[15])
    let t1 = F16x16(a2[0], a3[0], a2[1], a3[1], a2[4], a3[4], a2[5], a3[5], a2[8], a3[8], a2[9], a3[9], a2[12], a3[12], a2[13], a3[13])
        + F16x16(a2[2], a3[2], a2[3], a3[3], a2[6], a3[6], a2[7], a3[7], a2[10], a3[10], a2[11], a3[11], a2[14], a3[14], a2[15], a3[15])
    // Per 128-bit lane, t0 holds partial sums (a0, a1, a0, a1) and t1 (a2, a3, a2, a3).
    let u = F16x16(t0[0], t0[1], t1[0], t1[1], t0[4], t0[5], t1[4], t1[5], t0[8], t0[9], t1[8], t1[9], t0[12], t0[13], t1[12], t1[13])
        + F16x16(t0[2], t0[3], t1[2], t1[3], t0[6], t0[7], t1[6], t1[7], t0[10], t0[11], t1[10], t1[11], t0[14], t0[15], t1[14], t1[15])
    let h = u.lowHalf + u.highHalf
    return h.lowHalf + h.highHalf
}

/// The last column block's sums: for each of the n inputs, its 4 parked accumulators reduced
/// (`horizontalSums`), + bias, to y[i·ldy + r + q] for q < valid. Out of line, so the tile loop's
/// registers are not shared with the reduction's shuffle indices (inlined, LLVM kept those in vector
/// registers across the loop and spilled accumulators: f16 n = 25, 57 → 76 ms).
@inline(never) private func finish(_ save: UnsafeMutablePointer<F16x16>, _ n: Int, _ k: mk_midn_call) {
    let bias = k.bias.map { UnsafeRawPointer($0 + k.r) }
    for i in 0..<n {
        let out = k.y! + (i &* k.ldy &+ k.r)
        var sums = horizontalSums(save[i], save[n &+ i], save[2 &* n &+ i], save[3 &* n &+ i])
        if k.valid == 4 {
            if let bias { sums += bias.loadUnaligned(as: SIMD4<Float>.self) }
            UnsafeMutableRawPointer(out).storeBytes(of: sums, as: SIMD4<Float>.self)
        } else {
            for q in 0..<Int(k.valid) { out[q] = sums[q] + (k.bias?[k.r &+ q] ?? 0) }
        }
    }
}

extension Kernels {
    /// For benchmarks: `true` (the default) widens f16/bf16 weight blocks to f32 once per tile (as q8 is)
    /// when a tile has at least 6 input groups (n ≥ 31), `false` widens them at every group's load. The
    /// results are identical either way.
    public static func setMidNWidensOnce(_ enabled: Bool) {
        midNWidensOnce.store(enabled, ordering: .relaxed)
    }

    /// Row stride of x packed for the mid-n path, in 32-bit elements (f32 values or bf16 pairs): cols
    /// padded to 32 inputs.
    static func midNStride(cols: Int, bf16: Bool) -> Int { bf16 ? (cols + 31) / 32 * 16 : (cols + 31) / 32 * 32 }

    /// Bytes of x packed for the mid-n path (n rows).
    static func midNPackedBytes(n: Int, cols: Int, bf16: Bool) -> Int { n * midNStride(cols: cols, bf16: bf16) * 4 }

    /// Packs x (n × cols, row-major) for `midN`: f32 rows, or bf16 values rounded to nearest even (read
    /// as pairs by the dot-product tile); zero padding to 32 inputs.
    static func midNPack(_ x: UnsafePointer<Float>, n: Int, cols: Int, bf16: Bool, into destination: UnsafeMutableRawPointer) {
        let stride = midNStride(cols: cols, bf16: bf16)
        for i in 0..<n {
            let source = x + i * cols
            if bf16 {
                let out = (destination + i * stride * 4).assumingMemoryBound(to: UInt16.self)
                convertF32ToBF16(source, count: cols, into: out)
                (out + cols).initialize(repeating: 0, count: 2 * stride - cols)
            } else {
                let out = (destination + i * stride * 4).assumingMemoryBound(to: Float.self)
                out.update(from: source, count: cols)
                (out + cols).initialize(repeating: 0, count: stride - cols)
            }
        }
    }

    /// y[i·ldy + r] = Σ_c x[i, c]·W[r, c] (+ bias[r]) for r in [r0, r1), i < n ≤ `midNRowLimit`, from x
    /// packed by `midNPack` (bf16 pairs when `bf16`: bf16 weights on AVX512-BF16).
    static func midN(_ w: WeightView, _ packed: UnsafeRawPointer, n: Int, rows r0: Int, _ r1: Int,
                     bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>, ldy: Int, bf16: Bool) {
        guard n >= 1, n <= midNRowLimit, r0 < r1 else { return }
        let xs = midNStride(cols: w.cols, bf16: bf16)
        let groups = (n + groupMax - 1) / groupMax
        let base = n / groups, extra = n % groups // the first `extra` groups take base + 1 inputs
        let kc = w.cols <= midNWholeRow ? w.cols : midNBlock
        let blocks = (w.cols + kc - 1) / kc
        // q8: the tile's block dequantized to f32 once (≤ 16 KB, L1). With one input group (n ≤ 6) each
        // weight is widened once anyway, in registers, which skips the store and reload (24 layers + LM
        // head, n = 5: 22.2 → 16.2 ms).
        // f16/bf16 with at least `midNWidenOnceGroups` input groups: widened to f32 once per tile too (the
        // widened values, and so the results, are the same either way).
        let dequantize = groups > 1 && !bf16
            && (w.format == .q8 || (w.format != .f32 && groups >= midNWidenOnceGroups
                                    && midNWidensOnce.load(ordering: .relaxed)))
        let saveBytes = midNRowLimit * tileRows * 64, deqBytes = tileRows * midNWholeRow * 4
        withUnsafeTemporaryAllocation(byteCount: saveBytes + deqBytes, alignment: 64) { scratch in
            let save = scratch.baseAddress!.assumingMemoryBound(to: Float.self)
            let deq = (scratch.baseAddress! + saveBytes).assumingMemoryBound(to: Float.self)
            var k = mk_midn_call(r: 0, c0: 0, c1: 0, valid: 0, first: 0, last: 0, part: 0, parts: Int32(blocks * groups),
                                 save: save, deq: dequantize ? UnsafePointer(deq) : nil, bias: bias, y: y, ldy: ldy)
            /// All column blocks and input groups of the tile at row r with `valid` rows (4, or 1).
            func runTile(_ r: Int, valid: Int) {
                k.r = r
                k.valid = Int32(valid)
                for b in 0..<blocks {
                    k.c0 = b * kc
                    k.c1 = min(k.c0 + kc, w.cols)
                    k.first = b == 0 ? 1 : 0
                    k.last = b == blocks - 1 ? 1 : 0
                    if dequantize { dequantizeTile(w, k, into: deq) }
                    var i0 = 0
                    for g in 0..<groups {
                        let size = base + (g < extra ? 1 : 0)
                        k.part = Int32(b * groups + g)
                        k.save = save + i0 * tileRows * 16
                        k.y = y + i0 * ldy
                        let x = packed + i0 * xs * 4
                        if bf16 {
                            withUnsafePointer(to: k) {
                                mk_midn_bf16(w.data, w.rowStride, w.cols, x.assumingMemoryBound(to: UInt32.self), xs, Int32(size), $0)
                            }
                        } else {
                            midNGroup(size, w, x.assumingMemoryBound(to: Float.self), xs, k)
                        }
                        i0 += size
                    }
                }
            }
            // Whole 4-row tiles; the last rows of a matrix whose row count is not a multiple of 4 run as
            // tiles of one row (their summation order is the same).
            var r = r0
            while r + tileRows <= r1 {
                runTile(r, valid: tileRows)
                r += tileRows
            }
            while r < r1 {
                runTile(r, valid: 1)
                r += 1
            }
        }
    }

    /// The tile's q8 weights over [c0, c1) widened and scaled to f32 (the values the decode path forms):
    /// row q at deq + q·`midNWholeRow`, column c at offset c − c0. Converting inside the group loop
    /// repeats it for every input group (5 times for n = 25), and for q8 that costs nearly as many
    /// instructions as the FMAs (24 n = 25 layers: 55.7 → 51.0 ms). For f16 at n = 25 the same pass made it
    /// slower (52.2 → 64.8 ms, 2026-11): one vcvtph2ps per weight vector hides behind the FMAs, a
    /// store-and-reload does not; with 6 or more groups it pays (`midNWidenOnceGroups`).
    private static func dequantizeTile(_ w: WeightView, _ k: mk_midn_call, into deq: UnsafeMutablePointer<Float>) {
        switch w.format {
        case .q8: dequantizeTileQ8(w, k, into: deq)
        case .f16: widenTile(F16Loads.self, w, k, into: deq)
        case .bf16: widenTile(BF16Loads.self, w, k, into: deq)
        case .f32: widenTile(F32Loads.self, w, k, into: deq)
        }
    }

    /// `dequantizeTile` for f16/bf16 (exact widening: the values the tile's loads would form).
    private static func widenTile<L: PlainLoads>(_ loads: L.Type, _ w: WeightView, _ k: mk_midn_call,
                                                 into deq: UnsafeMutablePointer<Float>) {
        let fullEnd = k.c0 + (min(k.c1, w.cols) - k.c0) / 16 * 16
        for q in 0..<tileRows {
            let row = k.r + min(q, Int(k.valid) - 1)
            let out = deq + q * midNWholeRow - k.c0 // column c at out + c
            var p = w.row(row) + k.c0 * L.elementBytes
            var c = k.c0
            while c < fullEnd {
                store16(L.load16(p), out + c)
                p += 16 * L.elementBytes
                c &+= 16
            }
            while c < k.c1 {
                store16(L.vector16(w, row: row, column: c), out + c)
                c &+= 16
            }
        }
    }

    private static func dequantizeTileQ8(_ w: WeightView, _ k: mk_midn_call, into deq: UnsafeMutablePointer<Float>) {
        let cols = w.cols, groupStride = w.groupStride, scaleGroupStride = w.scaleGroupStride
        let fullEnd = k.c0 + (min(k.c1, cols) - k.c0) / 32 * 32
        for q in 0..<tileRows {
            let row = k.r + min(q, Int(k.valid) - 1)
            let out = deq + q * midNWholeRow - k.c0 // column c at out + c
            var values = w.row(row) + (k.c0 >> 5) * groupStride
            var scale = w.scaleRow(row) + (k.c0 >> 5) * scaleGroupStride
            var c = k.c0
            while c < fullEnd {
                let s = F16x16(repeating: scale.load(as: Float.self))
                store16(loadI8x16(values) * s, out + c)
                store16(loadI8x16(values + 16) * s, out + (c &+ 16))
                values += groupStride
                scale += scaleGroupStride
                c &+= 32
            }
            while c < k.c1 {
                store16(Q8Loads.vector16(w, row: row, column: c), out + c)
                c &+= 16
            }
        }
    }

    /// One call for a group of n ≤ 6 inputs: dispatches to a tile specialised for n and the weights' source.
    private static func midNGroup(_ n: Int, _ w: WeightView, _ x: UnsafePointer<Float>, _ xs: Int, _ k: mk_midn_call) {
        if k.deq != nil { return midNGroup(n, DequantizedWeights.self, w, x, xs, k) }
        switch w.format {
        case .f32: midNGroup(n, StoredWeights<F32Loads>.self, w, x, xs, k)
        case .f16: midNGroup(n, StoredWeights<F16Loads>.self, w, x, xs, k)
        case .bf16: midNGroup(n, StoredWeights<BF16Loads>.self, w, x, xs, k)
        case .q8: midNGroup(n, Q8Weights.self, w, x, xs, k)
        }
    }

    private static func midNGroup<S: TileWeights>(_ n: Int, _ source: S.Type, _ w: WeightView, _ x: UnsafePointer<Float>,
                                                  _ xs: Int, _ k: mk_midn_call) {
        switch n {
        case 1: midNTile(Inputs1.self, source, w, x, xs, k)
        case 2: midNTile(Inputs2.self, source, w, x, xs, k)
        case 3: midNTile(Inputs3.self, source, w, x, xs, k)
        case 4: midNTile(Inputs4.self, source, w, x, xs, k)
        case 5: midNTile(Inputs5.self, source, w, x, xs, k)
        default: midNTile(Inputs6.self, source, w, x, xs, k)
        }
    }

    /// One tile call: a specialisation per (input count, weight source) keeps its 4·n accumulators in
    /// registers.
    @inline(never)
    private static func midNTile<N: InputCount, S: TileWeights>(_ inputs: N.Type, _ source: S.Type, _ w: WeightView,
                                                                _ x: UnsafePointer<Float>, _ xs: Int, _ k: mk_midn_call) {
        let n = N.count
        // Rows past the end repeat the last valid row (their sums are computed and dropped).
        let last = Int(k.valid) - 1
        let row0 = k.r, row1 = k.r + min(1, last), row2 = k.r + min(2, last), row3 = k.r + min(3, last)
        let save = UnsafeMutableRawPointer(k.save!).assumingMemoryBound(to: F16x16.self)
        var q0 = Quad(), q1 = Quad(), q2 = Quad(), q3 = Quad(), q4 = Quad(), q5 = Quad()
        if k.first == 0 {
            unpark(&q0, save, 0, n)
            if n > 1 { unpark(&q1, save, 1, n) }
            if n > 2 { unpark(&q2, save, 2, n) }
            if n > 3 { unpark(&q3, save, 3, n) }
            if n > 4 { unpark(&q4, save, 4, n) }
            if n > 5 { unpark(&q5, save, 5, n) }
        }
        // This call's share of the prefetch of the tile `prefetchTiles` ahead.
        let lines = (tileRows * w.rowStride + 63) / 64
        let ahead = w.data + (k.r + prefetchTiles * tileRows) &* w.rowStride
        var next = ahead + lines * Int(k.part) / Int(k.parts) * 64
        let end = ahead + lines * (Int(k.part) + 1) / Int(k.parts) * 64
        let chunks = (k.c1 - k.c0 + 15) / 16
        let perChunk = (next.distance(to: end) / 64 + chunks - 1) / chunks
        // Whole 32-input groups by cursor, then (cols not a multiple of 32) the ragged end, 16 at a time.
        let groupsEnd = k.c0 + (min(k.c1, w.cols) - k.c0) / 32 * 32
        var cursor = S.cursor(w, row: k.r, rowStep: k.valid == 1 ? 0 : 1, at: k.c0, k.deq)
        @inline(__always) func prefetchShare() {
            var j = 0
            while j < perChunk && next < end {
                mk_prefetch(next)
                next += 64
                j &+= 1
            }
        }
        // x rows are zero-padded to a multiple of 32 inputs: full loads are safe.
        var c = k.c0
        var xc = x + c
        while c < groupsEnd {
            prefetchShare()
            stepAll(n, &q0, &q1, &q2, &q3, &q4, &q5, S.quad(cursor), xc, xs)
            S.advance(&cursor, from: c)
            c &+= 16
            xc += 16
        }
        if c < k.c1 {
            // The ragged end; `quad` takes absolute columns, and the dequantized block starts at c0.
            let deq = k.deq.map { $0 - k.c0 }
            while c < k.c1 {
                prefetchShare()
                stepAll(n, &q0, &q1, &q2, &q3, &q4, &q5, S.quad(w, row0, row1, row2, row3, c, deq), x + c, xs)
                c &+= 16
            }
        }
        park(q0, save, 0, n)
        if n > 1 { park(q1, save, 1, n) }
        if n > 2 { park(q2, save, 2, n) }
        if n > 3 { park(q3, save, 3, n) }
        if n > 4 { park(q4, save, 4, n) }
        if n > 5 { park(q5, save, 5, n) }
        if k.last != 0 { finish(save, n, k) }
    }
}
