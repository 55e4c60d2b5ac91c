/// How a weight matrix stores its elements.
public enum WeightFormat: String, Sendable, CaseIterable {
    /// IEEE binary32.
    case f32
    /// IEEE binary16 (torch.float16).
    case f16
    /// bfloat16: the upper 16 bits of a binary32 (torch.bfloat16).
    case bf16
    /// Signed 8-bit values with one f32 scale per group of `WeightMatrix.q8GroupSize` consecutive inputs
    /// of a row (symmetric, absmax / 127).
    case q8

    /// Bytes per stored element, not counting q8 scales.
    public var bytesPerElement: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        case .q8: 1
        }
    }
}

/// How `Kernels.linear` multiplies a weight matrix by its input.
public enum Precision: String, Sendable, CaseIterable {
    /// f32 accumulation of f32 products: every weight is widened to f32 exactly and x stays f32, on
    /// every path (decode, mid-n, GEMM). Matches a float32 forward pass of the same weights to f32
    /// rounding.
    case exact
    /// bf16 dot products (AVX512-BF16 `vdpbf16ps`, f32 accumulation) for bf16 weights on the mid-n and
    /// GEMM paths (n > 8 rows of x): x is rounded to bf16 (relative error ≤ 2⁻⁸ per product). Without
    /// AVX512-BF16 the same as `exact`. q8 weights take int8 dot products (AVX512-VNNI `vpdpbusd`) on every
    /// path: x is quantized to int8 per 32-input group (each input errs by at most max|x_group| / 254);
    /// without VNNI the same as `exact`. f32 weights compute as in `exact`. (The engine also
    /// converts f16 checkpoints to bf16 at load in this mode; see `LoadOptions.precision`.) Where the CPU's
    /// bf16 dot products are not faster than f32 FMAs (`Kernels.usesBF16DotProducts` false), bf16 weights
    /// compute as in `exact` too.
    case fast
}

/// A [rows × cols] row-major weight: rows are output features (as torch `Linear.weight`), cols inputs.
///
/// Wraps existing memory (e.g. memory-mapped safetensors data) without copying; `owner` keeps that memory
/// alive as long as the matrix is. Kernels convert to f32 on the fly (decode) or per packed tile (GEMM).
public final class WeightMatrix: @unchecked Sendable {
    /// Inputs per q8 scale group.
    public static let q8GroupSize = 32

    public let rows: Int
    public let cols: Int
    public let format: WeightFormat
    /// How kernels multiply by this matrix (only bf16 and q8 matrices compute differently under `.fast`).
    public let precision: Precision
    /// The elements of row 0; row r starts `r · rowStride` bytes later.
    public let data: UnsafeRawPointer
    /// Bytes from one row's elements to the next.
    public let rowStride: Int
    /// q8 only: the scale of row 0, group 0 (see `q8Scale(row:group:)` for the others).
    public let scales: UnsafePointer<Float>?
    /// q8 addressing, in bytes: group g of row r holds its 32 values at
    /// `data + r·rowStride + g·groupStride` and its scale at `scales + r·scaleRowStride + g·scaleGroupStride`.
    let groupStride: Int
    let scaleRowStride: Int
    let scaleGroupStride: Int
    let owner: AnyObject?

    /// Wraps row-major f32/f16/bf16 bytes; `owner` keeps the memory alive. Use `quantizedQ8()` for q8.
    public init(rows: Int, cols: Int, format: WeightFormat, data: UnsafeRawPointer, owner: AnyObject?,
                precision: Precision = .exact) {
        precondition(rows > 0 && cols > 0, "WeightMatrix needs positive dimensions, got \(rows)×\(cols)")
        precondition(format != .q8, "q8 matrices are made with quantizedQ8() or init(rows:cols:q8Values:scales:owner:)")
        self.rows = rows
        self.cols = cols
        self.format = format
        self.precision = precision
        self.data = data
        rowStride = cols * format.bytesPerElement
        scales = nil
        groupStride = 0
        scaleRowStride = 0
        scaleGroupStride = 0
        self.owner = owner
    }

    /// Wraps q8 data given as two arrays: `rows × cols` Int8 values and `rows × q8GroupsPerRow(cols)`
    /// scales; element (r, c) is `values[r·cols + c] · scales[r·groups + c / 32]`.
    public convenience init(rows: Int, cols: Int, q8Values: UnsafeRawPointer, scales: UnsafePointer<Float>,
                            owner: AnyObject?) {
        let groups = WeightMatrix.q8GroupsPerRow(cols)
        self.init(rows: rows, cols: cols, q8Values: q8Values, rowStride: cols, groupStride: WeightMatrix.q8GroupSize,
                  scales: scales, scaleRowStride: groups * 4, scaleGroupStride: 4, owner: owner)
    }

    /// q8 with explicit byte strides (see `groupStride`).
    init(rows: Int, cols: Int, q8Values: UnsafeRawPointer, rowStride: Int, groupStride: Int,
         scales: UnsafePointer<Float>, scaleRowStride: Int, scaleGroupStride: Int, owner: AnyObject?,
         precision: Precision = .exact) {
        precondition(rows > 0 && cols > 0, "WeightMatrix needs positive dimensions, got \(rows)×\(cols)")
        self.rows = rows
        self.cols = cols
        format = .q8
        self.precision = precision
        data = q8Values
        self.rowStride = rowStride
        self.groupStride = groupStride
        self.scales = scales
        self.scaleRowStride = scaleRowStride
        self.scaleGroupStride = scaleGroupStride
        self.owner = owner
    }

    /// q8 value (r, c) and scale (r, g).
    func q8Value(row r: Int, column c: Int) -> Int8 {
        let g = c / WeightMatrix.q8GroupSize
        return data.load(fromByteOffset: r * rowStride + g * groupStride + c - g * WeightMatrix.q8GroupSize, as: Int8.self)
    }

    func q8Scale(row r: Int, group g: Int) -> Float {
        UnsafeRawPointer(scales!).load(fromByteOffset: r * scaleRowStride + g * scaleGroupStride, as: Float.self)
    }

    /// Number of q8 scale groups per row for `cols` inputs (the last group may be partial).
    public static func q8GroupsPerRow(_ cols: Int) -> Int { (cols + q8GroupSize - 1) / q8GroupSize }

    /// Bytes a full pass over the matrix reads (elements plus q8 scales).
    public var byteCount: Int {
        var bytes = rows * cols * format.bytesPerElement
        if format == .q8 { bytes += rows * WeightMatrix.q8GroupsPerRow(cols) * MemoryLayout<Float>.size }
        return bytes
    }

    /// Group-wise symmetric int8 quantization: for each row and each group of 32 consecutive inputs,
    /// scale = max|w| / 127 and q = round-to-nearest(w / scale), so |w − q·scale| ≤ scale / 2.
    /// Stored as blocks of (f32 scale, 32 values), the last group zero-padded: a decode pass is one
    /// sequential stream in which each scale arrives just before its values. (Separate scale arrays are
    /// a second stream, ~20% slower; scales at the head of a long row miss the prefetcher, 2.5× slower.)
    /// Returns `self` when already q8.
    public func quantizedQ8() -> WeightMatrix { quantizedQ8(pool: nil) }

    /// `quantizedQ8()` with the rows split across `pool` (identical result).
    public func quantizedQ8(pool: WorkerPool?) -> WeightMatrix {
        if format == .q8 { return self }
        let groups = WeightMatrix.q8GroupsPerRow(cols)
        let block = MemoryLayout<Float>.size + WeightMatrix.q8GroupSize
        let stride = groups * block
        let storage = AlignedBuffer(byteCount: rows * stride)
        let chunk = 64
        let tasks = (rows + chunk - 1) / chunk
        let body = { (t: Int) in
            let first = t * chunk, last = min(first + chunk, self.rows)
            (storage.pointer + first * stride).initializeMemory(as: UInt8.self, repeating: 0, count: (last - first) * stride)
            self.quantizeRows(first..<last, into: storage.pointer, stride: stride, block: block)
        }
        if let pool { pool.parallelFor(tasks, body) } else { for t in 0..<tasks { body(t) } }
        return WeightMatrix(rows: rows, cols: cols, q8Values: UnsafeRawPointer(storage.pointer + MemoryLayout<Float>.size),
                            rowStride: stride, groupStride: block,
                            scales: UnsafePointer(storage.pointer.assumingMemoryBound(to: Float.self)),
                            scaleRowStride: stride, scaleGroupStride: block, owner: storage, precision: precision)
    }

    /// Writes the (scale, 32 values) blocks of `rows` into `out` (row r at `out + r · stride`).
    private func quantizeRows(_ rows: Range<Int>, into out: UnsafeMutableRawPointer, stride: Int, block: Int) {
        let groups = WeightMatrix.q8GroupsPerRow(cols)
        let row = UnsafeMutablePointer<Float>.allocate(capacity: cols)
        defer { row.deallocate() }
        for r in rows {
            copyRow(r, into: row)
            for g in 0..<groups {
                let start = out + r * stride + g * block
                let first = g * WeightMatrix.q8GroupSize
                let end = min(first + WeightMatrix.q8GroupSize, cols)
                var maxAbs: Float = 0
                for c in first..<end { maxAbs = max(maxAbs, abs(row[c])) }
                let scale = maxAbs / 127
                start.storeBytes(of: scale, as: Float.self)
                let values = (start + MemoryLayout<Float>.size).assumingMemoryBound(to: Int8.self)
                let inverse: Float = scale > 0 ? 1 / scale : 0
                for c in first..<end {
                    let q = (row[c] * inverse).rounded(.toNearestOrEven)
                    values[c - first] = Int8(max(-127, min(127, q)))
                }
            }
        }
    }

    /// Bytes of one q8 row in the block layout `quantizedQ8` writes: per group of 32 inputs an f32 scale then 32
    /// int8 values (the last group zero-padded).
    public static func q8BlockRowBytes(cols: Int) -> Int {
        q8GroupsPerRow(cols) * (MemoryLayout<Float>.size + q8GroupSize)
    }

    /// A q8 matrix over memory already in the block layout (`q8BlockRowBytes(cols:)` bytes per row, 4-byte
    /// aligned), e.g. a pre-quantized checkpoint mapped from disk; `owner` keeps the memory alive.
    public static func q8Blocks(rows: Int, cols: Int, data: UnsafeRawPointer, owner: AnyObject?,
                                precision: Precision = .exact) -> WeightMatrix {
        precondition(Int(bitPattern: data) % MemoryLayout<Float>.alignment == 0, "q8 blocks must be 4-byte aligned")
        let block = MemoryLayout<Float>.size + q8GroupSize, stride = q8BlockRowBytes(cols: cols)
        return WeightMatrix(rows: rows, cols: cols, q8Values: data + MemoryLayout<Float>.size, rowStride: stride,
                            groupStride: block, scales: data.assumingMemoryBound(to: Float.self),
                            scaleRowStride: stride, scaleGroupStride: block, owner: owner, precision: precision)
    }

    /// The block-layout bytes of a q8 matrix made by `quantizedQ8` or `q8Blocks` (nil for other layouts).
    public var q8BlockBytes: UnsafeRawBufferPointer? {
        let block = MemoryLayout<Float>.size + WeightMatrix.q8GroupSize
        guard format == .q8, let scales, groupStride == block, scaleGroupStride == block,
              rowStride == WeightMatrix.q8BlockRowBytes(cols: cols), scaleRowStride == rowStride,
              UnsafeRawPointer(scales) + MemoryLayout<Float>.size == data else { return nil }
        return UnsafeRawBufferPointer(start: UnsafeRawPointer(scales), count: rows * rowStride)
    }

    /// Hands the pages this matrix reads back to the system when its memory is a read-only file mapping
    /// (`ReleasableMemory`), e.g. after a quantized copy replaced it: resident memory drops, and a later
    /// read faults the pages in again from the file. Does nothing for memory the process owns.
    public func releaseSourcePages() {
        guard format != .q8, let memory = owner as? ReleasableMemory else { return }
        memory.releasePages(data, byteCount: rows * rowStride)
    }

    /// The same memory computed with `precision` (a view; `self` when it already has it).
    public func withPrecision(_ precision: Precision) -> WeightMatrix {
        if precision == self.precision { return self }
        if format == .q8 {
            return WeightMatrix(rows: rows, cols: cols, q8Values: data, rowStride: rowStride, groupStride: groupStride,
                                scales: scales!, scaleRowStride: scaleRowStride, scaleGroupStride: scaleGroupStride,
                                owner: self, precision: precision)
        }
        return WeightMatrix(rows: rows, cols: cols, format: format, data: data, owner: self, precision: precision)
    }

    /// An f16 matrix rounded to bf16 (round to nearest even, as `tensor.to(torch.bfloat16)`), in a new
    /// allocation; other formats are returned unchanged. `--precision fast` runs f16 checkpoints this way
    /// so that they take the bf16 dot products: each weight then errs by at most 2⁻⁸ relative.
    public func convertedF16ToBF16() -> WeightMatrix {
        guard format == .f16 else { return self }
        let storage = AlignedBuffer(byteCount: rows * cols * 2)
        let row = UnsafeMutablePointer<Float>.allocate(capacity: cols)
        defer { row.deallocate() }
        for r in 0..<rows {
            copyRow(r, into: row)
            Kernels.convertF32ToBF16(row, count: cols, into: storage.pointer + r * cols * 2)
        }
        return WeightMatrix(rows: rows, cols: cols, format: .bf16, data: UnsafeRawPointer(storage.pointer),
                            owner: storage, precision: precision)
    }

    /// Rows `range` as a matrix sharing this one's memory (e.g. the q, k, v parts of a fused projection).
    public func rowSlice(_ range: Range<Int>) -> WeightMatrix {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows && !range.isEmpty,
                     "row slice \(range) out of range 0..<\(rows)")
        let start = data + range.lowerBound * rowStride
        if format == .q8 {
            let firstScale = UnsafeRawPointer(scales!) + range.lowerBound * scaleRowStride
            return WeightMatrix(rows: range.count, cols: cols, q8Values: start, rowStride: rowStride,
                                groupStride: groupStride, scales: firstScale.assumingMemoryBound(to: Float.self),
                                scaleRowStride: scaleRowStride, scaleGroupStride: scaleGroupStride, owner: self,
                                precision: precision)
        }
        return WeightMatrix(rows: range.count, cols: cols, format: format, data: start, owner: self, precision: precision)
    }

    /// Dequantises/converts row `r` to f32 (embedding lookups). `into` holds `cols` floats.
    public func copyRow(_ r: Int, into destination: UnsafeMutablePointer<Float>) {
        precondition(r >= 0 && r < rows, "row \(r) out of range 0..<\(rows)")
        let start = data + r * rowStride
        switch format {
        case .f32:
            destination.update(from: start.assumingMemoryBound(to: Float.self), count: cols)
        case .f16:
            Kernels.convertF16ToF32(start, count: cols, into: destination)
        case .bf16:
            Kernels.convertBF16ToF32(start, count: cols, into: destination)
        case .q8:
            for c in 0..<cols {
                destination[c] = Float(q8Value(row: r, column: c)) * q8Scale(row: r, group: c / WeightMatrix.q8GroupSize)
            }
        }
    }
}

/// A 64-byte aligned heap allocation, freed when released (owner of packed or quantised data).
public final class AlignedBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int

    public init(byteCount: Int) {
        self.byteCount = byteCount
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
    }

    deinit { pointer.deallocate() }
}

/// Memory whose pages can be dropped and read again later from their source (a read-only file mapping).
public protocol ReleasableMemory: AnyObject {
    /// Drops the whole pages inside `start ..< start + byteCount` that belong to this memory.
    func releasePages(_ start: UnsafeRawPointer, byteCount: Int)
}
