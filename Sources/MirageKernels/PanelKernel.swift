// The small-M path for a few dozen rows of x against weights that stay resident (the BLIP-2 Q-Former's 32–41
// rows against its 768-wide matrices): the weights are widened to f32 once, at load, into panels of 64 output
// features stored input by input (`PanelWeights`), and all of a group's outputs over a panel stay in registers:
//
//   for each panel (64 outputs; tasks split across the pool):
//     for each input block (128 inputs = 32 KB of panel weights, L1):
//       for each group of N ≤ 6 rows of x:          the rows split into ⌈n/6⌉ groups of nearly equal size
//         accumulators: zero (first block) or the parked sums of the previous block
//         for each input k of the block: 4 weight vectors + N broadcasts of x[i, k] → 4·N FMAs
//         park the 4·N accumulators (or, last block: + bias → y)
//
// 6 × 4 accumulators + 4 weight vectors + 1 broadcast = 29 of 32 zmm registers; no horizontal sums (each lane
// is one output). y[i, r] = (Σ_k x[i, k]·W[r, k], one fused multiply-add at a time in k order from 0) + bias[r],
// whatever the group, block, panel or thread: the same sum as a scalar loop of `addingProduct`s.
// Compared with the mid-n path (16 partial sums per output, reduced by a shuffle tree) the order differs, so
// results differ from it by f32 rounding.

/// Output features per panel (4 vectors of 16).
private let panelWidth = 64
/// Inputs per block: 128 × 64 f32 = 32 KB of panel weights, which stay in L1 while every row group passes.
private let panelBlock = 128
/// Rows of x per register group.
private let panelGroupMax = 6

/// A weight matrix widened to f32 and re-laid for `Kernels.linear(_:n:panels:…)`: panel p holds output features
/// 64p ..< 64p + 64 as `cols` runs of 64 floats (input k's 64 weights contiguous), zero past `rows`.
public final class PanelWeights: @unchecked Sendable {
    /// Output features (the source matrix's rows).
    public let rows: Int
    /// Inputs (the source matrix's columns).
    public let cols: Int
    let panels: Int
    let buffer: AlignedBuffer

    /// Widens `weight` (any format; q8 dequantized to the values its kernels use) into panels, split by panels
    /// across `pool`. Costs 4 bytes per weight.
    public init(_ weight: WeightMatrix, pool: WorkerPool) {
        rows = weight.rows
        cols = weight.cols
        panels = (weight.rows + panelWidth - 1) / panelWidth
        buffer = AlignedBuffer(byteCount: panels * weight.cols * panelWidth * 4)
        let base = buffer.pointer.assumingMemoryBound(to: Float.self)
        let rows = self.rows, cols = self.cols
        pool.parallelFor(panels) { p in
            let panel = base + p * cols * panelWidth
            let row = UnsafeMutablePointer<Float>.allocate(capacity: cols)
            defer { row.deallocate() }
            for j in 0..<panelWidth {
                let r = p * panelWidth + j
                if r < rows {
                    weight.copyRow(r, into: row)
                    for k in 0..<cols { panel[k * panelWidth + j] = row[k] }
                } else {
                    for k in 0..<cols { panel[k * panelWidth + j] = 0 }
                }
            }
        }
    }

    /// Bytes the panels take.
    public var byteCount: Int { buffer.byteCount }
}

/// Rows per group, as a type: the group kernel is specialised per count, so unused accumulators fold away.
private protocol PanelRows { static var count: Int { get } }
private enum PanelRows1: PanelRows { static var count: Int { 1 } }
private enum PanelRows2: PanelRows { static var count: Int { 2 } }
private enum PanelRows3: PanelRows { static var count: Int { 3 } }
private enum PanelRows4: PanelRows { static var count: Int { 4 } }
private enum PanelRows5: PanelRows { static var count: Int { 5 } }
private enum PanelRows6: PanelRows { static var count: Int { 6 } }

/// One row of x against a panel: 64 outputs in 4 vectors.
private struct PanelRow {
    var a0 = F16x16(), a1 = F16x16(), a2 = F16x16(), a3 = F16x16()

    @inline(__always) init() {}

    @inline(__always) init(_ p: UnsafeMutablePointer<Float>) {
        a0 = load16(p); a1 = load16(p + 16); a2 = load16(p + 32); a3 = load16(p + 48)
    }

    @inline(__always) mutating func step(_ x: Float, _ w0: F16x16, _ w1: F16x16, _ w2: F16x16, _ w3: F16x16) {
        let xv = F16x16(repeating: x)
        a0 = a0.addingProduct(w0, xv)
        a1 = a1.addingProduct(w1, xv)
        a2 = a2.addingProduct(w2, xv)
        a3 = a3.addingProduct(w3, xv)
    }

    @inline(__always) func store(_ p: UnsafeMutablePointer<Float>) {
        store16(a0, p); store16(a1, p + 16); store16(a2, p + 32); store16(a3, p + 48)
    }
}

/// Where a group's sums go: `save` (64 floats per row, parked between blocks) and, on the last block, y.
private struct PanelCall {
    var x: UnsafePointer<Float>       // row 0 of the group, at the block's first input
    var ldx: Int
    var w: UnsafePointer<Float>       // the panel at the block's first input
    var count: Int                    // inputs in the block
    var save: UnsafeMutablePointer<Float>
    var first: Bool, last: Bool
    var bias: UnsafePointer<Float>?   // at the panel's first output
    var y: UnsafeMutablePointer<Float> // row 0 of the group, at the panel's first output
    var ldy: Int
    var valid: Int                    // outputs of this panel inside the matrix (64, or fewer on the last)
}

/// The 4·N accumulators of one group over one block.
@inline(never)
private func panelGroup<N: PanelRows>(_ rows: N.Type, _ k: PanelCall) {
    let n = N.count
    var r0 = PanelRow(), r1 = PanelRow(), r2 = PanelRow(), r3 = PanelRow(), r4 = PanelRow(), r5 = PanelRow()
    let s = k.save
    if !k.first {
        r0 = PanelRow(s)
        if n > 1 { r1 = PanelRow(s + panelWidth) }
        if n > 2 { r2 = PanelRow(s + 2 * panelWidth) }
        if n > 3 { r3 = PanelRow(s + 3 * panelWidth) }
        if n > 4 { r4 = PanelRow(s + 4 * panelWidth) }
        if n > 5 { r5 = PanelRow(s + 5 * panelWidth) }
    }
    let ldx = k.ldx
    var x = k.x, w = k.w
    for _ in 0..<k.count {
        let w0 = load16(w), w1 = load16(w + 16), w2 = load16(w + 32), w3 = load16(w + 48)
        r0.step(x[0], w0, w1, w2, w3)
        if n > 1 { r1.step(x[ldx], w0, w1, w2, w3) }
        if n > 2 { r2.step(x[2 &* ldx], w0, w1, w2, w3) }
        if n > 3 { r3.step(x[3 &* ldx], w0, w1, w2, w3) }
        if n > 4 { r4.step(x[4 &* ldx], w0, w1, w2, w3) }
        if n > 5 { r5.step(x[5 &* ldx], w0, w1, w2, w3) }
        x += 1
        w += panelWidth
    }
    r0.store(s)
    if n > 1 { r1.store(s + panelWidth) }
    if n > 2 { r2.store(s + 2 * panelWidth) }
    if n > 3 { r3.store(s + 3 * panelWidth) }
    if n > 4 { r4.store(s + 4 * panelWidth) }
    if n > 5 { r5.store(s + 5 * panelWidth) }
    if k.last { panelFinish(n, k) }
}

/// y[i, j] = save[i, j] + bias[j] for the group's rows and the panel's valid outputs.
@inline(never)
private func panelFinish(_ n: Int, _ k: PanelCall) {
    for i in 0..<n {
        let sums = k.save + i * panelWidth, out = k.y + i * k.ldy
        if let bias = k.bias {
            for j in 0..<k.valid { out[j] = sums[j] + bias[j] }
        } else {
            out.update(from: sums, count: k.valid)
        }
    }
}

extension Kernels {
    /// y[i, r] = Σ_c x[i, c]·W[r, c] (+ bias[r]) for i < n from weights widened into panels (`PanelWeights`);
    /// x is n×cols, y n×rows (f32, row-major), `y` must not overlap `x`. Each output is one chain of fused
    /// multiply-adds over the inputs in order from 0, then the bias: the same value for any n, threading or row
    /// position. Panels of 64 outputs are split across the pool; meant for a few dozen rows of x against
    /// weights kept resident (the Q-Former), where the mid-n path re-reads x from L2 for every 4 weight rows
    /// and reduces 16 partial sums per output.
    public static func linear(_ x: UnsafePointer<Float>, n: Int, panels weight: PanelWeights, bias: UnsafePointer<Float>?,
                              into y: UnsafeMutablePointer<Float>, pool: WorkerPool) {
        precondition(n >= 0, "linear: n must be non-negative")
        if n == 0 { return }
        let groups = (n + panelGroupMax - 1) / panelGroupMax
        let base = n / groups, extra = n % groups // the first `extra` groups take base + 1 rows
        let cols = weight.cols, rows = weight.rows
        let panels = UnsafePointer(weight.buffer.pointer.assumingMemoryBound(to: Float.self))
        pool.parallelFor(weight.panels) { p in
            // The group sums parked between blocks: 256 bytes per row of x (on the heap: n is not bounded).
            let save = UnsafeMutablePointer<Float>.allocate(capacity: n * panelWidth)
            defer { save.deallocate() }
            do {
                let panel = panels + p * cols * panelWidth
                var call = PanelCall(x: x, ldx: cols, w: panel, count: 0, save: save, first: true, last: false,
                                     bias: bias.map { $0 + p * panelWidth }, y: y + p * panelWidth, ldy: rows,
                                     valid: min(panelWidth, rows - p * panelWidth))
                var c0 = 0
                while c0 < cols {
                    call.count = min(panelBlock, cols - c0)
                    call.first = c0 == 0
                    call.last = c0 + call.count == cols
                    call.w = panel + c0 * panelWidth
                    var i0 = 0
                    for g in 0..<groups {
                        let size = base + (g < extra ? 1 : 0)
                        call.x = x + i0 * cols + c0
                        call.save = save + i0 * panelWidth
                        call.y = y + i0 * rows + p * panelWidth
                        switch size {
                        case 1: panelGroup(PanelRows1.self, call)
                        case 2: panelGroup(PanelRows2.self, call)
                        case 3: panelGroup(PanelRows3.self, call)
                        case 4: panelGroup(PanelRows4.self, call)
                        case 5: panelGroup(PanelRows5.self, call)
                        default: panelGroup(PanelRows6.self, call)
                        }
                        i0 += size
                    }
                    c0 += call.count
                }
            }
        }
    }
}
