// Attention inner loops over a run of cached keys/values (added by the engine engineer: one call per KV
// block instead of one `dot`/`axpy` per position, which dominated prefill attention).

extension Kernels {
    /// scores[j] = scale · Σ_d q[d]·rows[j·dim + d] for j < count (rows: count × dim, row-major).
    public static func scaledDots(_ q: UnsafePointer<Float>, rows: UnsafePointer<Float>, count: Int, dim: Int,
                                  scale: Float, into scores: UnsafeMutablePointer<Float>) {
        if dim % 16 == 0 && dim <= 256 {
            for j in 0..<count {
                let row = rows + j * dim
                var acc = F16x16()
                var d = 0
                while d < dim {
                    acc = acc.addingProduct(load16(q + d), load16(row + d))
                    d += 16
                }
                scores[j] = sum16(acc) * scale
            }
        } else {
            for j in 0..<count { scores[j] = dot(q, rows + j * dim, count: dim) * scale }
        }
    }

    /// y[d] += Σ_j weights[j]·rows[j·dim + d] for d < dim (rows: count × dim, row-major).
    public static func accumulateRows(weights: UnsafePointer<Float>, rows: UnsafePointer<Float>, count: Int, dim: Int,
                                      into y: UnsafeMutablePointer<Float>) {
        var d = 0
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
