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
    /// The elements, row-major, `rows × cols × format.bytesPerElement` bytes.
    public let data: UnsafeRawPointer
    /// q8 only: `rows × q8GroupsPerRow` scales, row-major.
    public let scales: UnsafePointer<Float>?
    private let owner: AnyObject?

    /// Wraps row-major f32/f16/bf16 bytes; `owner` keeps the memory alive. Use `quantizedQ8()` for q8.
    public init(rows: Int, cols: Int, format: WeightFormat, data: UnsafeRawPointer, owner: AnyObject?) {
        precondition(rows > 0 && cols > 0, "WeightMatrix needs positive dimensions, got \(rows)×\(cols)")
        precondition(format != .q8, "q8 matrices are made with quantizedQ8() or init(rows:cols:q8Values:scales:owner:)")
        self.rows = rows
        self.cols = cols
        self.format = format
        self.data = data
        self.scales = nil
        self.owner = owner
    }

    /// Wraps q8 data: `rows × cols` Int8 values and `rows × q8GroupsPerRow(cols)` scales;
    /// element (r, c) is `values[r·cols + c] · scales[r·groups + c / 32]`.
    public init(rows: Int, cols: Int, q8Values: UnsafeRawPointer, scales: UnsafePointer<Float>, owner: AnyObject?) {
        precondition(rows > 0 && cols > 0, "WeightMatrix needs positive dimensions, got \(rows)×\(cols)")
        self.rows = rows
        self.cols = cols
        self.format = .q8
        self.data = q8Values
        self.scales = scales
        self.owner = owner
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
    /// Returns `self` when already q8.
    public func quantizedQ8() -> WeightMatrix {
        if format == .q8 { return self }
        let groups = WeightMatrix.q8GroupsPerRow(cols)
        let storage = AlignedBuffer(byteCount: rows * cols + rows * groups * MemoryLayout<Float>.size)
        let values = storage.pointer.bindMemory(to: Int8.self, capacity: rows * cols)
        let scalesStart = storage.pointer + rows * cols
        let scales = scalesStart.bindMemory(to: Float.self, capacity: rows * groups)
        let row = UnsafeMutablePointer<Float>.allocate(capacity: cols)
        defer { row.deallocate() }
        for r in 0..<rows {
            copyRow(r, into: row)
            for g in 0..<groups {
                let start = g * WeightMatrix.q8GroupSize
                let end = min(start + WeightMatrix.q8GroupSize, cols)
                var maxAbs: Float = 0
                for c in start..<end { maxAbs = max(maxAbs, abs(row[c])) }
                let scale = maxAbs / 127
                scales[r * groups + g] = scale
                let inverse: Float = scale > 0 ? 1 / scale : 0
                for c in start..<end {
                    let q = (row[c] * inverse).rounded(.toNearestOrEven)
                    values[r * cols + c] = Int8(max(-127, min(127, q)))
                }
            }
        }
        return WeightMatrix(rows: rows, cols: cols, q8Values: UnsafeRawPointer(values),
                            scales: UnsafePointer(scales), owner: storage)
    }

    /// Rows `range` as a matrix sharing this one's memory (e.g. the q, k, v parts of a fused projection).
    public func rowSlice(_ range: Range<Int>) -> WeightMatrix {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows && !range.isEmpty,
                     "row slice \(range) out of range 0..<\(rows)")
        let start = data + range.lowerBound * cols * format.bytesPerElement
        if format == .q8 {
            return WeightMatrix(rows: range.count, cols: cols, q8Values: start,
                                scales: scales! + range.lowerBound * WeightMatrix.q8GroupsPerRow(cols), owner: self)
        }
        return WeightMatrix(rows: range.count, cols: cols, format: format, data: start, owner: self)
    }

    /// Dequantises/converts row `r` to f32 (embedding lookups). `into` holds `cols` floats.
    public func copyRow(_ r: Int, into destination: UnsafeMutablePointer<Float>) {
        precondition(r >= 0 && r < rows, "row \(r) out of range 0..<\(rows)")
        let start = data + r * cols * format.bytesPerElement
        switch format {
        case .f32:
            destination.update(from: start.assumingMemoryBound(to: Float.self), count: cols)
        case .f16:
            Kernels.convertF16ToF32(start, count: cols, into: destination)
        case .bf16:
            Kernels.convertBF16ToF32(start, count: cols, into: destination)
        case .q8:
            let groups = WeightMatrix.q8GroupsPerRow(cols)
            let q = start.assumingMemoryBound(to: Int8.self)
            let rowScales = scales! + r * groups
            for c in 0..<cols {
                destination[c] = Float(q[c]) * rowScales[c / WeightMatrix.q8GroupSize]
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
