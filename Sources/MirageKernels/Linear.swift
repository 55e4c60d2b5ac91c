// y = x·Wᵀ (+ bias): the decode path (n ≤ 8 rows of x, weights streamed once) and the GEMM path.

/// Loads 16 consecutive weights of one stored format as f32.
protocol WeightLoader {
    static var bytesPerElement: Int { get }
    static func load16(_ row: UnsafeRawPointer, _ column: Int) -> F16x16
    static func load1(_ row: UnsafeRawPointer, _ column: Int) -> Float
}

enum F32Loader: WeightLoader {
    static var bytesPerElement: Int { 4 }
    @inline(__always) static func load16(_ row: UnsafeRawPointer, _ column: Int) -> F16x16 {
        row.loadUnaligned(fromByteOffset: 4 * column, as: F16x16.self)
    }
    @inline(__always) static func load1(_ row: UnsafeRawPointer, _ column: Int) -> Float {
        row.loadUnaligned(fromByteOffset: 4 * column, as: Float.self)
    }
}

enum F16Loader: WeightLoader {
    static var bytesPerElement: Int { 2 }
    @inline(__always) static func load16(_ row: UnsafeRawPointer, _ column: Int) -> F16x16 {
        loadF16x16(row + 2 * column)
    }
    @inline(__always) static func load1(_ row: UnsafeRawPointer, _ column: Int) -> Float {
        Float(row.loadUnaligned(fromByteOffset: 2 * column, as: Float16.self))
    }
}

enum BF16Loader: WeightLoader {
    static var bytesPerElement: Int { 2 }
    @inline(__always) static func load16(_ row: UnsafeRawPointer, _ column: Int) -> F16x16 {
        loadBF16x16(row + 2 * column)
    }
    @inline(__always) static func load1(_ row: UnsafeRawPointer, _ column: Int) -> Float {
        bf16ToFloat(row.loadUnaligned(fromByteOffset: 2 * column, as: UInt16.self))
    }
}

extension Kernels {
    /// Rows of x at most this many take the decode path (weights streamed once for all of them).
    public static let decodeMaxRows = 8

    /// y[i, r] = Σ_c x[i, c]·W[r, c] (+ bias[r]) for i < n; x is n×cols, y is n×rows (f32, row-major).
    /// n = 1...8 takes the decode path (weights streamed once for all n rows); larger n the GEMM path.
    /// f32 accumulation throughout, except bf16 weights on the GEMM path, which use AVX512-BF16 dot
    /// products with activations rounded to bf16 when the CPU has them.
    public static func linear(_ x: UnsafePointer<Float>, n: Int, weight: WeightMatrix,
                              bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>, pool: WorkerPool) {
        precondition(n >= 0, "linear: n must be non-negative")
        if n == 0 { return }
        var start = 0
        while start < n {
            let count = min(decodeMaxRows, n - start)
            linearDecode(x + start * weight.cols, n: count, weight: weight, bias: bias,
                         into: y + start * weight.rows, pool: pool)
            start += count
        }
    }

    /// The decode path for n ≤ 8: rows of W are split across the pool in blocks; each weight row is
    /// read from memory once and dotted with all n inputs (re-reads for inputs 5… hit L1).
    static func linearDecode(_ x: UnsafePointer<Float>, n: Int, weight: WeightMatrix,
                             bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>, pool: WorkerPool) {
        let rows = weight.rows
        let blockRows = decodeBlockRows(rows: rows, cols: weight.cols, format: weight.format, threads: pool.threadCount)
        let blocks = (rows + blockRows - 1) / blockRows
        pool.parallelFor(blocks) { block in
            let range = block * blockRows ..< min(rows, (block + 1) * blockRows)
            switch weight.format {
            case .f32: decodeRows(F32Loader.self, x, n: n, weight: weight, rows: range, bias: bias, y: y)
            case .f16: decodeRows(F16Loader.self, x, n: n, weight: weight, rows: range, bias: bias, y: y)
            case .bf16: decodeRows(BF16Loader.self, x, n: n, weight: weight, rows: range, bias: bias, y: y)
            case .q8: decodeRowsQ8(x, n: n, weight: weight, rows: range, bias: bias, y: y)
            }
        }
    }

    /// Rows per decode task: ~64 KB of weights, at least 8 tasks per thread when the matrix allows.
    static func decodeBlockRows(rows: Int, cols: Int, format: WeightFormat, threads: Int) -> Int {
        let rowBytes = max(1, cols * format.bytesPerElement)
        var block = max(1, (64 * 1024) / rowBytes)
        let minTasks = 8 * threads
        if rows / block < minTasks { block = max(1, rows / minTasks) }
        return block
    }
}

@inline(__always)
private func decodeRows<L: WeightLoader>(_ loader: L.Type, _ x: UnsafePointer<Float>, n: Int, weight: WeightMatrix,
                                          rows range: Range<Int>, bias: UnsafePointer<Float>?,
                                          y: UnsafeMutablePointer<Float>) {
    let cols = weight.cols, rows = weight.rows
    let rowBytes = cols * L.bytesPerElement
    for r in range {
        let w = weight.data + r * rowBytes
        let b = bias?[r] ?? 0
        var i = 0
        while i < n {
            let xi = x + i * cols
            if n - i >= 4 {
                let (s0, s1, s2, s3) = dotRow4(L.self, w, xi, cols: cols)
                y[i * rows + r] = s0 + b
                y[(i + 1) * rows + r] = s1 + b
                y[(i + 2) * rows + r] = s2 + b
                y[(i + 3) * rows + r] = s3 + b
                i += 4
            } else if n - i >= 2 {
                let (s0, s1) = dotRow2(L.self, w, xi, cols: cols)
                y[i * rows + r] = s0 + b
                y[(i + 1) * rows + r] = s1 + b
                i += 2
            } else {
                y[i * rows + r] = dotRow1(L.self, w, xi, cols: cols) + b
                i += 1
            }
        }
    }
}

@inline(__always)
private func dotRow1<L: WeightLoader>(_ loader: L.Type, _ w: UnsafeRawPointer, _ x: UnsafePointer<Float>,
                                       cols: Int) -> Float {
    var a0 = F16x16(), a1 = F16x16()
    var c = 0
    while c + 32 <= cols {
        a0 = a0.addingProduct(L.load16(w, c), load16(x + c))
        a1 = a1.addingProduct(L.load16(w, c + 16), load16(x + c + 16))
        c += 32
    }
    if c + 16 <= cols {
        a0 = a0.addingProduct(L.load16(w, c), load16(x + c))
        c += 16
    }
    var s = sum16(a0 + a1)
    while c < cols {
        s = s.addingProduct(L.load1(w, c), x[c])
        c += 1
    }
    return s
}

@inline(__always)
private func dotRow2<L: WeightLoader>(_ loader: L.Type, _ w: UnsafeRawPointer, _ x: UnsafePointer<Float>,
                                       cols: Int) -> (Float, Float) {
    let x1 = x + cols
    var a0 = F16x16(), a1 = F16x16()
    var c = 0
    while c + 16 <= cols {
        let v = L.load16(w, c)
        a0 = a0.addingProduct(v, load16(x + c))
        a1 = a1.addingProduct(v, load16(x1 + c))
        c += 16
    }
    var s0 = sum16(a0), s1 = sum16(a1)
    while c < cols {
        let v = L.load1(w, c)
        s0 = s0.addingProduct(v, x[c])
        s1 = s1.addingProduct(v, x1[c])
        c += 1
    }
    return (s0, s1)
}

@inline(__always)
private func dotRow4<L: WeightLoader>(_ loader: L.Type, _ w: UnsafeRawPointer, _ x: UnsafePointer<Float>,
                                       cols: Int) -> (Float, Float, Float, Float) {
    let x1 = x + cols, x2 = x + 2 * cols, x3 = x + 3 * cols
    var a0 = F16x16(), a1 = F16x16(), a2 = F16x16(), a3 = F16x16()
    var c = 0
    while c + 16 <= cols {
        let v = L.load16(w, c)
        a0 = a0.addingProduct(v, load16(x + c))
        a1 = a1.addingProduct(v, load16(x1 + c))
        a2 = a2.addingProduct(v, load16(x2 + c))
        a3 = a3.addingProduct(v, load16(x3 + c))
        c += 16
    }
    var s0 = sum16(a0), s1 = sum16(a1), s2 = sum16(a2), s3 = sum16(a3)
    while c < cols {
        let v = L.load1(w, c)
        s0 = s0.addingProduct(v, x[c])
        s1 = s1.addingProduct(v, x1[c])
        s2 = s2.addingProduct(v, x2[c])
        s3 = s3.addingProduct(v, x3[c])
        c += 1
    }
    return (s0, s1, s2, s3)
}

/// q8 decode: per 32-input group, the int8·x partial dot is scaled by the group's scale.
private func decodeRowsQ8(_ x: UnsafePointer<Float>, n: Int, weight: WeightMatrix, rows range: Range<Int>,
                          bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>) {
    let cols = weight.cols, rows = weight.rows
    let groups = WeightMatrix.q8GroupsPerRow(cols)
    let fullGroups = cols / WeightMatrix.q8GroupSize
    let scales = weight.scales!
    for r in range {
        let w = weight.data + r * cols
        let rowScales = scales + r * groups
        let b = bias?[r] ?? 0
        for i in 0..<n {
            let xi = x + i * cols
            var acc = F16x16()
            for g in 0..<fullGroups {
                let c = g * 32
                let part = loadI8x16(w + c) * load16(xi + c) + loadI8x16(w + c + 16) * load16(xi + c + 16)
                acc = acc.addingProduct(part, F16x16(repeating: rowScales[g]))
            }
            var s = sum16(acc)
            if fullGroups < groups {
                var part: Float = 0
                let q = w.assumingMemoryBound(to: Int8.self)
                for c in fullGroups * 32 ..< cols { part = part.addingProduct(Float(q[c]), xi[c]) }
                s = s.addingProduct(part, rowScales[fullGroups])
            }
            y[i * rows + r] = s + b
        }
    }
}
