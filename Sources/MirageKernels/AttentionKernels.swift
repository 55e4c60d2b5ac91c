// Attention inner loops over a run of cached keys/values (added by the engine engineer: one call per KV
// block instead of one `dot`/`axpy` per position, which dominated prefill attention).
//
// Both kernels keep several independent FMA chains in flight (four keys at a time in `scaledDots`, four
// 16-lane column groups at a time in `accumulateRows`): a single chain is bound by FMA latency, which made
// prefill attention run at a fraction of peak. Each output element is still summed in the same order as
// the one-chain version, so results are bitwise unchanged.

extension Kernels {
    /// scores[j] = scale · Σ_d q[d]·rows[j·dim + d] for j < count (rows: count × dim, row-major).
    public static func scaledDots(_ q: UnsafePointer<Float>, rows: UnsafePointer<Float>, count: Int, dim: Int,
                                  scale: Float, into scores: UnsafeMutablePointer<Float>) {
        guard dim % 16 == 0 && dim <= 256 else {
            for j in 0..<count { scores[j] = dot(q, rows + j * dim, count: dim) * scale }
            return
        }
        var j = 0
        while j + 4 <= count {
            let r0 = rows + j * dim, r1 = r0 + dim, r2 = r1 + dim, r3 = r2 + dim
            var a0 = F16x16(), a1 = F16x16(), a2 = F16x16(), a3 = F16x16()
            var d = 0
            while d < dim {
                let qv = load16(q + d)
                a0 = a0.addingProduct(qv, load16(r0 + d))
                a1 = a1.addingProduct(qv, load16(r1 + d))
                a2 = a2.addingProduct(qv, load16(r2 + d))
                a3 = a3.addingProduct(qv, load16(r3 + d))
                d += 16
            }
            let sums = sum16x4(a0, a1, a2, a3) * scale
            scores[j] = sums[0]; scores[j + 1] = sums[1]; scores[j + 2] = sums[2]; scores[j + 3] = sums[3]
            j += 4
        }
        while j < count {
            let row = rows + j * dim
            var acc = F16x16()
            var d = 0
            while d < dim {
                acc = acc.addingProduct(load16(q + d), load16(row + d))
                d += 16
            }
            scores[j] = sum16(acc) * scale
            j += 1
        }
    }

    /// `scaledDots` for two queries against the same rows (two heads sharing a KV head): each key row is
    /// loaded once for both, halving the loads per multiply-add. Bitwise equal to two `scaledDots` calls.
    public static func scaledDots(_ q0: UnsafePointer<Float>, _ q1: UnsafePointer<Float>, rows: UnsafePointer<Float>,
                                  count: Int, dim: Int, scale: Float,
                                  into scores0: UnsafeMutablePointer<Float>, _ scores1: UnsafeMutablePointer<Float>) {
        guard dim % 16 == 0 && dim <= 256 else {
            scaledDots(q0, rows: rows, count: count, dim: dim, scale: scale, into: scores0)
            scaledDots(q1, rows: rows, count: count, dim: dim, scale: scale, into: scores1)
            return
        }
        var j = 0
        while j + 4 <= count {
            let r0 = rows + j * dim, r1 = r0 + dim, r2 = r1 + dim, r3 = r2 + dim
            var a0 = F16x16(), a1 = F16x16(), a2 = F16x16(), a3 = F16x16()
            var b0 = F16x16(), b1 = F16x16(), b2 = F16x16(), b3 = F16x16()
            var d = 0
            while d < dim {
                let x = load16(q0 + d), y = load16(q1 + d)
                let k0 = load16(r0 + d), k1 = load16(r1 + d), k2 = load16(r2 + d), k3 = load16(r3 + d)
                a0 = a0.addingProduct(x, k0); b0 = b0.addingProduct(y, k0)
                a1 = a1.addingProduct(x, k1); b1 = b1.addingProduct(y, k1)
                a2 = a2.addingProduct(x, k2); b2 = b2.addingProduct(y, k2)
                a3 = a3.addingProduct(x, k3); b3 = b3.addingProduct(y, k3)
                d += 16
            }
            let sums0 = sum16x4(a0, a1, a2, a3) * scale, sums1 = sum16x4(b0, b1, b2, b3) * scale
            for t in 0..<4 { scores0[j + t] = sums0[t]; scores1[j + t] = sums1[t] }
            j += 4
        }
        if j < count {
            let tail = rows + j * dim
            scaledDots(q0, rows: tail, count: count - j, dim: dim, scale: scale, into: scores0 + j)
            scaledDots(q1, rows: tail, count: count - j, dim: dim, scale: scale, into: scores1 + j)
        }
    }

    /// y[d] += Σ_j weights[j]·rows[j·dim + d] for d < dim (rows: count × dim, row-major).
    public static func accumulateRows(weights: UnsafePointer<Float>, rows: UnsafePointer<Float>, count: Int, dim: Int,
                                      into y: UnsafeMutablePointer<Float>) {
        var d = 0
        while d + 64 <= dim {
            var a0 = load16(y + d), a1 = load16(y + d + 16), a2 = load16(y + d + 32), a3 = load16(y + d + 48)
            for j in 0..<count {
                let w = F16x16(repeating: weights[j])
                let row = rows + j * dim + d
                a0 = a0.addingProduct(w, load16(row))
                a1 = a1.addingProduct(w, load16(row + 16))
                a2 = a2.addingProduct(w, load16(row + 32))
                a3 = a3.addingProduct(w, load16(row + 48))
            }
            store16(a0, y + d); store16(a1, y + d + 16); store16(a2, y + d + 32); store16(a3, y + d + 48)
            d += 64
        }
        while d + 16 <= dim {
            var acc = load16(y + d)
            for j in 0..<count {
                acc = acc.addingProduct(F16x16(repeating: weights[j]), load16(rows + j * dim + d))
            }
            store16(acc, y + d)
            d += 16
        }
        while d < dim {
            var acc = y[d]
            for j in 0..<count { acc = acc.addingProduct(weights[j], rows[j * dim + d]) }
            y[d] = acc
            d += 1
        }
    }
}

/// [sum16(a0), sum16(a1), sum16(a2), sum16(a3)] with the same pairwise order per vector (bitwise equal),
/// but each tree level done for all four at once in full-width adds instead of 4 × 3 narrowing steps.
@inline(__always) private func sum16x4(_ a0: F16x16, _ a1: F16x16, _ a2: F16x16, _ a3: F16x16) -> SIMD4<Float> {
    // Level 1: lanes 0–7 of x01 are a0.low + a0.high, lanes 8–15 are a1's.
    let x01 = F16x16(lowHalf: a0.lowHalf, highHalf: a1.lowHalf) + F16x16(lowHalf: a0.highHalf, highHalf: a1.highHalf)
    let x23 = F16x16(lowHalf: a2.lowHalf, highHalf: a3.lowHalf) + F16x16(lowHalf: a2.highHalf, highHalf: a3.highHalf)
    // Level 2: four lanes per vector.
    let lows = F16x16(lowHalf: SIMD8(lowHalf: x01.lowHalf.lowHalf, highHalf: x01.highHalf.lowHalf),
                      highHalf: SIMD8(lowHalf: x23.lowHalf.lowHalf, highHalf: x23.highHalf.lowHalf))
    let highs = F16x16(lowHalf: SIMD8(lowHalf: x01.lowHalf.highHalf, highHalf: x01.highHalf.highHalf),
                       highHalf: SIMD8(lowHalf: x23.lowHalf.highHalf, highHalf: x23.highHalf.highHalf))
    let y = lows + highs
    // Level 3: two lanes per vector; then the final pair.
    let z = SIMD8(y[0], y[1], y[4], y[5], y[8], y[9], y[12], y[13])
          + SIMD8(y[2], y[3], y[6], y[7], y[10], y[11], y[14], y[15])
    return z.evenHalf + z.oddHalf
}
