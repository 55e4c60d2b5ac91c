import Foundation

/// OPERA's column score (reference-opera-chair-pope.md §1.4 steps 5–7), one response row at a time.
///
/// For the response row i (query = response token i) with last-layer max-over-heads attention `m` over
/// keys `0...R+i`, the window entries are `W[i][j] = m[R+j] / Σ_k m[k]` (the row re-normalised over **all**
/// keys), and the column score of response column j is `1e-7 · Π_{k=j}^{i} σ·W[k][j]`. Each row multiplies
/// one factor into every column's running product, so a lineage keeps `products` and a new row costs O(i).
/// Shared by the OPERA decoder and the over-trust analysis (`SummaryTokenDetector`).
public struct OperaColumnScore: Sendable, Equatable {
    /// `products[j] = Π_{k=j}^{i} σ·W[k][j]` for j in 0...i.
    public var products: [Float]
    /// The largest column score among the window's columns (fp16-stored in `reference` precision).
    public var maxScore: Float
    /// Its column, the first one on ties (torch.max); a NaN score wins at its first index.
    public var argmax: Int

    /// The reference's factor in front of the product (`1e-7 * prod`).
    public static let factor: Float = 1e-7

    /// Extends `parent` (the previous row's products, `nil` for response row 0) by a new row.
    /// - Parameters:
    ///   - responseColumns: the row's un-normalised attention on the response keys, columns 0...i
    ///     (`parent.count + 1` values).
    ///   - rowSum: the row's sum over all keys (the re-normalisation divisor).
    ///   - scale: σ (`scale_factor`, 50 in the paper).
    ///   - fp16Scores: store each score as Float16 (the reference: saturates to +inf, flushes tiny values).
    ///   - firstColumn: the window's first column; earlier columns keep their products but do not compete
    ///     for the maximum (0: the reference's window is the whole response).
    public init<C: RandomAccessCollection>(parent: [Float]?, responseColumns: C, rowSum: Float, scale: Float,
                                           fp16Scores: Bool, firstColumn: Int = 0) where C.Element == Float, C.Index == Int {
        let n = responseColumns.count
        precondition((parent?.count ?? 0) == n - 1, "a row of \(n) response columns needs the products of \(n - 1)")
        var products = [Float](repeating: 0, count: n)
        var best: Float = -.infinity, bestIndex = min(max(firstColumn, 0), n - 1), haveNaN = false
        let base = responseColumns.startIndex
        for j in 0..<n {
            let w = scale * (responseColumns[base + j] / rowSum)
            let p = j < n - 1 ? parent![j] * w : w
            products[j] = p
            guard j >= firstColumn else { continue }
            var score = Self.factor * p
            if fp16Scores { score = Float(Float16(score)) }
            // torch.max: the first maximum; NaN wins (first NaN).
            if haveNaN { continue }
            if score.isNaN { best = score; bestIndex = j; haveNaN = true }
            else if j == max(firstColumn, 0) || score > best { best = score; bestIndex = j }
        }
        self.products = products
        self.maxScore = best
        self.argmax = bestIndex
    }
}
