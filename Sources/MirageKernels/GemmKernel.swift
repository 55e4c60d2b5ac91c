import CMirageKernels

// The GEMM path (prefill): y = x·Wᵀ for many rows of x, as BLIS schedules it:
//
//   for each depth block of `gemmDepthBlock` inputs (or bf16 pairs):
//     pack W's 64–256 features of the task × the block as 32-feature micro-panels [depth][32]  (≤ 256 KB, L2)
//     for each group of `gemmPanelsPerBlock` x panels (12 rows each; ~200 KB, L2):
//       for each 32-feature micro-panel (32 KB, L1):
//         for each x panel of the group: the 12 × 32 micro-kernel (24 zmm accumulators)
//
// x is packed once per GEMM (shared by every task): for depth block b and panel p, the 12 rows' slices are
// `gemmAStride` elements apart, so the micro-kernel broadcasts x[i][k] from one base at constant offsets.
// Blocks are stored block-major (block b holds every panel), so the slices one block streams through L2
// are adjacent rather than a multiple of 4 KiB apart (which thrashes L2 sets for the 4864-input `down`).
// f32, f16 and q8 weights are widened to f32 when packed, and the micro-kernel is Swift SIMD; fast bf16
// weights where bf16 dot products pay (`Kernels.usesBF16DotProducts`) keep their bf16 pairs and take the C
// micro-kernel (vdpbf16ps); fast f16 weights where AVX512-FP16 pays (`Kernels.usesF16DotProducts`) keep their
// f16 pairs, scaled per micro-panel by a power of two, against x rows scaled likewise and rounded to f16, and
// take the C f16 micro-kernel (`mk_gemm_kernel_f16`).

private let mr = Int(MK_MR)
private let nr = Int(MK_NR)
/// Depth entries (f32 inputs, or bf16 pairs) per block.
private let gemmDepthBlock = Int(MK_KC)
/// Distance between a packed panel's rows, in 32-bit elements (a block plus 16, off the 4 KiB stride).
private let gemmAStride = Int(MK_A_STRIDE)
/// x panels per L2-resident group.
private let gemmPanelsPerBlock = 16

/// Accumulators of one x row against a 32-feature micro-panel.
private struct Pair {
    var lo = F16x16(), hi = F16x16()
}

@inline(__always) private func fma(_ acc: inout Pair, _ a: Float, _ b0: F16x16, _ b1: F16x16) {
    let av = F16x16(repeating: a)
    acc.lo = acc.lo.addingProduct(av, b0)
    acc.hi = acc.hi.addingProduct(av, b1)
}

/// Writes (or adds to) one row of a micro-tile: `width` ≤ 32 columns.
@inline(__always) private func storeRow(_ acc: Pair, _ out: UnsafeMutablePointer<Float>, width: Int,
                                        accumulate: Bool, bias: UnsafePointer<Float>?) {
    if width == nr {
        var lo = acc.lo, hi = acc.hi
        if accumulate {
            lo += load16(out)
            hi += load16(out + 16)
        } else if let bias {
            lo += load16(bias)
            hi += load16(bias + 16)
        }
        store16(lo, out)
        store16(hi, out + 16)
        return
    }
    for j in 0..<width {
        let value = j < 16 ? acc.lo[j] : acc.hi[j - 16]
        out[j] = value + (accumulate ? out[j] : (bias?[j] ?? 0))
    }
}

// 16 × 16 transpose of 32-bit lanes in four rounds of block swaps (8, 4, 2, 1 lanes): in round h, lane j
// of row i (j & h set, i & h clear) trades places with lane j ^ h of row i | h. Each swap lists its lanes
// explicitly, so LLVM emits two-source shuffles.
@inline(__always) private func swap8(_ a: inout F16x16, _ b: inout F16x16) {
    let na = F16x16(lowHalf: a.lowHalf, highHalf: b.lowHalf)
    b = F16x16(lowHalf: a.highHalf, highHalf: b.highHalf)
    a = na
}

@inline(__always) private func swap4(_ a: inout F16x16, _ b: inout F16x16) {
    let na = F16x16(a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3], a[8], a[9], a[10], a[11], b[8], b[9], b[10], b[11])
    b = F16x16(a[4], a[5], a[6], a[7], b[4], b[5], b[6], b[7], a[12], a[13], a[14], a[15], b[12], b[13], b[14], b[15])
    a = na
}

@inline(__always) private func swap2(_ a: inout F16x16, _ b: inout F16x16) {
    let na = F16x16(a[0], a[1], b[0], b[1], a[4], a[5], b[4], b[5], a[8], a[9], b[8], b[9], a[12], a[13], b[12], b[13])
    b = F16x16(a[2], a[3], b[2], b[3], a[6], a[7], b[6], b[7], a[10], a[11], b[10], b[11], a[14], a[15], b[14], b[15])
    a = na
}

@inline(__always) private func swap1(_ a: inout F16x16, _ b: inout F16x16) {
    let na = F16x16(a[0], b[0], a[2], b[2], a[4], b[4], a[6], b[6], a[8], b[8], a[10], b[10], a[12], b[12], a[14], b[14])
    b = F16x16(a[1], b[1], a[3], b[3], a[5], b[5], a[7], b[7], a[9], b[9], a[11], b[11], a[13], b[13], a[15], b[15])
    a = na
}

/// 16 rows (r[i] = row i) → 16 columns (r[j] = column j).
@inline(__always) private func transpose16(_ r: inout (F16x16, F16x16, F16x16, F16x16, F16x16, F16x16, F16x16, F16x16,
                                                        F16x16, F16x16, F16x16, F16x16, F16x16, F16x16, F16x16, F16x16)) {
    swap8(&r.0, &r.8); swap8(&r.1, &r.9); swap8(&r.2, &r.10); swap8(&r.3, &r.11)
    swap8(&r.4, &r.12); swap8(&r.5, &r.13); swap8(&r.6, &r.14); swap8(&r.7, &r.15)
    swap4(&r.0, &r.4); swap4(&r.1, &r.5); swap4(&r.2, &r.6); swap4(&r.3, &r.7)
    swap4(&r.8, &r.12); swap4(&r.9, &r.13); swap4(&r.10, &r.14); swap4(&r.11, &r.15)
    swap2(&r.0, &r.2); swap2(&r.1, &r.3); swap2(&r.4, &r.6); swap2(&r.5, &r.7)
    swap2(&r.8, &r.10); swap2(&r.9, &r.11); swap2(&r.12, &r.14); swap2(&r.13, &r.15)
    swap1(&r.0, &r.1); swap1(&r.2, &r.3); swap1(&r.4, &r.5); swap1(&r.6, &r.7)
    swap1(&r.8, &r.9); swap1(&r.10, &r.11); swap1(&r.12, &r.13); swap1(&r.14, &r.15)
}

/// What a packed weight micro-panel holds per (feature, depth) entry.
private protocol PackedEntries {
    /// Row j's 16 entries from depth d as 32-bit lanes, zero beyond the row.
    static func entries(_ w: WeightView, row j: Int, depth d: Int) -> F16x16
}

/// f32 weights (widened from the stored format): depth = inputs.
private enum WidenedEntries<L: WeightLoads>: PackedEntries {
    @inline(__always) static func entries(_ w: WeightView, row j: Int, depth d: Int) -> F16x16 { L.vector16(w, row: j, column: d) }
}

/// bf16 (or f16) weights as stored, for the bf16 dot-product (or f16) kernel: depth = pairs of inputs (2d, 2d + 1),
/// raw bits.
private enum BF16PairEntries: PackedEntries {
    @inline(__always) static func entries(_ w: WeightView, row j: Int, depth d: Int) -> F16x16 {
        let p = w.row(j) + 4 &* d
        let remaining = w.cols &- 2 &* d
        if remaining >= 32 { return p.loadUnaligned(as: F16x16.self) }
        var halves = SIMD32<UInt16>()
        for e in 0..<max(0, remaining) { halves[e] = p.loadUnaligned(fromByteOffset: 2 * e, as: UInt16.self) }
        return unsafeBitCast(halves, to: F16x16.self)
    }
}

extension Kernels {
    /// Most output features per GEMM task (8 micro-panels: their packed weights, 256 KB, stay in L2 with a
    /// 16-panel group of x, 209 KB, which all 8 reuse before the next group is read).
    static let gemmFeaturesPerTask = 256

    /// Output features per task of a GEMM with `rows` output features on `threads` threads: as many as
    /// `gemmFeaturesPerTask` while that leaves at least 4 tasks per thread (both cores finish within a
    /// task of each other), never fewer than 64; a multiple of the micro-panel width.
    static func gemmTaskFeatures(rows: Int, threads: Int) -> Int {
        let even = rows / (4 * max(1, threads)) / nr * nr
        return min(gemmFeaturesPerTask, max(64, even))
    }

    /// Rows of x per packed panel (the micro-kernel's rows).
    static let gemmPanelRows = mr

    /// Depth entries of x for `cols` inputs: inputs, or bf16 pairs.
    private static func gemmDepth(cols: Int, bf16: Bool) -> Int { bf16 ? (cols + 1) / 2 : cols }

    /// Bytes of x packed for the GEMM path (n rows, `cols` inputs).
    static func gemmPackedBytes(n: Int, cols: Int, bf16: Bool) -> Int {
        let blocks = (gemmDepth(cols: cols, bf16: bf16) + gemmDepthBlock - 1) / gemmDepthBlock
        return blocks * ((n + mr - 1) / mr) * mr * gemmAStride * 4
    }

    /// Bytes of x packed for the f16 GEMM: f16 pairs laid out as bf16 pairs are, then one f32 inverse scale per
    /// panel row.
    static func gemmF16PackedBytes(n: Int, cols: Int) -> Int {
        gemmPackedBytes(n: n, cols: cols, bf16: true) + (n + mr - 1) / mr * mr * 4
    }

    /// Packs panels [p0, p1) of x for `gemmTask(…, f16: true, …)`: each row multiplied by
    /// `mk_f16_row_scale` (a power of two, so |x| < 1) and rounded to f16 in pairs, as `gemmPack` lays out bf16
    /// pairs; the inverse scales follow the panels (rows beyond n: zeros, scale 1).
    static func gemmPackF16(_ x: UnsafePointer<Float>, n: Int, cols: Int, panels p0: Int, _ p1: Int,
                            into destination: UnsafeMutableRawPointer) {
        let depth = gemmDepth(cols: cols, bf16: true)
        let panels = (n + mr - 1) / mr
        let inverse = (destination + gemmPackedBytes(n: n, cols: cols, bf16: true)).assumingMemoryBound(to: Float.self)
        for row in p0 * mr..<p1 * mr {
            let scale = row < n ? mk_f16_row_scale(x + row * cols, cols) : 1
            inverse[row] = 1 / scale
            var block = 0
            for d0 in stride(from: 0, to: depth, by: gemmDepthBlock) {
                let width = min(gemmDepthBlock, depth - d0)
                let out = destination + ((block * panels + row / mr) * mr + row % mr) * gemmAStride * 4
                let halves = out.assumingMemoryBound(to: UInt16.self)
                if row >= n {
                    halves.initialize(repeating: 0, count: 2 * width)
                } else {
                    // Pairs d0…d0+width cover inputs 2·d0 … 2·(d0 + width); an odd last input pairs with 0.
                    let first = 2 * d0
                    mk_f16_pack_row(x + row * cols + first, min(2 * width, cols - first), scale, halves, 2 * width)
                }
                block += 1
            }
        }
    }

    /// Scratch bytes one GEMM task needs (its packed weights, at most `gemmFeaturesPerTask` features).
    static let gemmWorkBytes = gemmWorkBytes(features: gemmFeaturesPerTask)

    /// Scratch bytes of a GEMM task of at most `features` output features.
    static func gemmWorkBytes(features: Int) -> Int { gemmDepthBlock * ((features + nr - 1) / nr) * nr * 4 }

    /// Packs panels [p0, p1) of x (n × cols, row-major) for `gemmTask`: f32, or bf16 values rounded to
    /// nearest even (pairs); rows beyond n zero.
    static func gemmPack(_ x: UnsafePointer<Float>, n: Int, cols: Int, panels p0: Int, _ p1: Int, bf16: Bool,
                         into destination: UnsafeMutableRawPointer) {
        let depth = gemmDepth(cols: cols, bf16: bf16)
        let panels = (n + mr - 1) / mr
        var block = 0
        for d0 in stride(from: 0, to: depth, by: gemmDepthBlock) {
            let width = min(gemmDepthBlock, depth - d0)
            for p in p0..<p1 {
                let panel = destination + ((block * panels + p) * mr * gemmAStride) * 4
                for i in 0..<mr {
                    let row = p * mr + i
                    let out = panel + i * gemmAStride * 4
                    if row >= n {
                        out.initializeMemory(as: UInt32.self, repeating: 0, count: width)
                    } else if bf16 {
                        // Pairs d0…d0+width cover inputs 2·d0 … 2·(d0 + width); an odd last input pairs with 0.
                        let first = 2 * d0, count = min(2 * width, cols - first)
                        let halves = out.assumingMemoryBound(to: UInt16.self)
                        convertF32ToBF16(x + row * cols + first, count: count, into: halves)
                        if count < 2 * width { halves[count] = 0 }
                    } else {
                        out.assumingMemoryBound(to: Float.self).update(from: x + row * cols + d0, count: width)
                    }
                }
            }
            block += 1
        }
    }

    /// One GEMM task: y[i·ldy + j] = Σ_c x[i, c]·W[j, c] (+ bias[j]) for all i < n and j in [j0, j1),
    /// j1 − j0 ≤ `gemmFeaturesPerTask`, from x packed by `gemmPack`. `work`: `gemmWorkBytes(features:
    /// j1 − j0)`, 64-byte aligned.
    static func gemmTask(_ w: WeightView, _ packed: UnsafeRawPointer, n: Int, features j0: Int, _ j1: Int,
                         bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>, ldy: Int, bf16: Bool,
                         f16: Bool = false, work: UnsafeMutableRawPointer) {
        let depth = gemmDepth(cols: w.cols, bf16: bf16 || f16)
        // f16: the rows' inverse scales after the packed panels, and each micro-panel's (≤ 8 per task).
        let rowScales = f16 ? (packed + gemmPackedBytes(n: n, cols: w.cols, bf16: true)).assumingMemoryBound(to: Float.self) : nil
        var panelScales = SIMD8<Float>(repeating: 1)
        let panels = (n + mr - 1) / mr
        var block = 0
        for d0 in stride(from: 0, to: depth, by: gemmDepthBlock) {
            let kc = min(gemmDepthBlock, depth - d0)
            gemmPackWeights(w, features: j0, j1, depth: d0, kc, bf16: bf16 || f16, into: work.assumingMemoryBound(to: Float.self))
            if f16 {
                for panel in 0..<(j1 - j0 + nr - 1) / nr {
                    panelScales[panel] = mk_f16_scale_panel((work + panel * kc * nr * 4).assumingMemoryBound(to: UInt32.self), kc)
                }
            }
            for pm in stride(from: 0, to: panels, by: gemmPanelsPerBlock) {
                for jj in stride(from: j0, to: j1, by: nr) {
                    let width = min(nr, j1 - jj)
                    let b = work + ((jj - j0) / nr) * kc * nr * 4
                    for p in pm..<min(panels, pm + gemmPanelsPerBlock) {
                        let rows = min(mr, n - p * mr)
                        let a = packed + ((block * panels + p) * mr * gemmAStride) * 4
                        let c = y + p * mr * ldy + jj
                        let tileBias = bias.map { $0 + jj }
                        if let rowScales {
                            mk_gemm_kernel_f16(kc, a.assumingMemoryBound(to: UInt32.self), b.assumingMemoryBound(to: UInt32.self),
                                               c, ldy, Int32(rows), Int32(width), d0 > 0 ? 1 : 0, tileBias, rowScales + p * mr,
                                               panelScales[(jj - j0) / nr])
                        } else if bf16 {
                            mk_gemm_kernel_bf16(kc, a.assumingMemoryBound(to: UInt32.self), b.assumingMemoryBound(to: UInt32.self),
                                                c, ldy, Int32(rows), Int32(width), d0 > 0 ? 1 : 0, tileBias)
                        } else {
                            gemmKernel(kc, a.assumingMemoryBound(to: Float.self), UnsafePointer(b.assumingMemoryBound(to: Float.self)),
                                       c, ldc: ldy, rows: rows, width: width, accumulate: d0 > 0, bias: tileBias)
                        }
                    }
                }
            }
            block += 1
        }
    }

    /// Packs features [j0, j1) (≤ `gemmFeaturesPerTask`) × depth [d0, d0 + kc) as micro-panels
    /// [⌈(j1 − j0)/32⌉][kc][32] of 32-bit lanes: f32 (widened from the stored format) or, with `bf16`, the stored bf16 pairs. Features
    /// beyond j1 and inputs beyond cols are zero.
    private static func gemmPackWeights(_ w: WeightView, features j0: Int, _ j1: Int, depth d0: Int, _ kc: Int,
                                        bf16: Bool, into destination: UnsafeMutablePointer<Float>) {
        if bf16 { return gemmPackWeights(BF16PairEntries.self, w, j0, j1, d0, kc, destination) }
        switch w.format {
        case .f32: gemmPackWeights(WidenedEntries<F32Loads>.self, w, j0, j1, d0, kc, destination)
        case .f16: gemmPackWeights(WidenedEntries<F16Loads>.self, w, j0, j1, d0, kc, destination)
        case .bf16: gemmPackWeights(WidenedEntries<BF16Loads>.self, w, j0, j1, d0, kc, destination)
        case .q8: gemmPackWeights(WidenedEntries<Q8Loads>.self, w, j0, j1, d0, kc, destination)
        }
    }

    private static func gemmPackWeights<E: PackedEntries>(_ entries: E.Type, _ w: WeightView, _ j0: Int, _ j1: Int,
                                                          _ d0: Int, _ kc: Int, _ destination: UnsafeMutablePointer<Float>) {
        /// Row j's 16 depth entries from d (zero when j ≥ j1).
        @inline(__always) func entries(_ j: Int, _ d: Int) -> F16x16 { j < j1 ? E.entries(w, row: j, depth: d) : F16x16() }
        for jj in stride(from: j0, to: j1, by: 16) {
            let panel = (jj - j0) / nr, half = ((jj - j0) / 16) % 2
            let out = destination + panel * kc * nr + half * 16
            var c = 0
            while c < kc {
                let d = d0 + c
                var r = (entries(jj, d), entries(jj + 1, d), entries(jj + 2, d), entries(jj + 3, d),
                         entries(jj + 4, d), entries(jj + 5, d), entries(jj + 6, d), entries(jj + 7, d),
                         entries(jj + 8, d), entries(jj + 9, d), entries(jj + 10, d), entries(jj + 11, d),
                         entries(jj + 12, d), entries(jj + 13, d), entries(jj + 14, d), entries(jj + 15, d))
                transpose16(&r)
                let valid = min(16, kc - c)
                withUnsafeBytes(of: &r) { columns in
                    for t in 0..<valid {
                        store16(columns.load(fromByteOffset: t * 64, as: F16x16.self), out + (c + t) * nr)
                    }
                }
                c += 16
            }
        }
        // A trailing half panel (j1 − j0 not a multiple of 32) that no feature reached is zero-filled.
        let width = j1 - j0
        if width % nr != 0 && width % nr <= 16 {
            let out = destination + (width / nr) * kc * nr + 16
            for c in 0..<kc { store16(F16x16(), out + c * nr) }
        }
    }

    /// The f32 micro-kernel: C[i·ldc + j] (+)= Σ_k A[i·gemmAStride + k]·B[k·32 + j] for i < rows,
    /// j < width; 12 × 2 accumulators, each step two B vectors and 12 broadcasts of A.
    private static func gemmKernel(_ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                   _ c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, width: Int,
                                   accumulate: Bool, bias: UnsafePointer<Float>?) {
        var c0 = Pair(), c1 = Pair(), c2 = Pair(), c3 = Pair(), c4 = Pair(), c5 = Pair()
        var c6 = Pair(), c7 = Pair(), c8 = Pair(), c9 = Pair(), c10 = Pair(), c11 = Pair()
        var a = a, b = b
        for _ in 0..<kc {
            let b0 = load16(b), b1 = load16(b + 16)
            fma(&c0, a[0], b0, b1)
            fma(&c1, a[gemmAStride], b0, b1)
            fma(&c2, a[2 * gemmAStride], b0, b1)
            fma(&c3, a[3 * gemmAStride], b0, b1)
            fma(&c4, a[4 * gemmAStride], b0, b1)
            fma(&c5, a[5 * gemmAStride], b0, b1)
            fma(&c6, a[6 * gemmAStride], b0, b1)
            fma(&c7, a[7 * gemmAStride], b0, b1)
            fma(&c8, a[8 * gemmAStride], b0, b1)
            fma(&c9, a[9 * gemmAStride], b0, b1)
            fma(&c10, a[10 * gemmAStride], b0, b1)
            fma(&c11, a[11 * gemmAStride], b0, b1)
            a += 1
            b += nr
        }
        @inline(__always) func store(_ acc: Pair, _ i: Int) {
            if i < rows { storeRow(acc, c + i * ldc, width: width, accumulate: accumulate, bias: bias) }
        }
        store(c0, 0); store(c1, 1); store(c2, 2); store(c3, 3); store(c4, 4); store(c5, 5)
        store(c6, 6); store(c7, 7); store(c8, 8); store(c9, 9); store(c10, 10); store(c11, 11)
    }
}
