import Foundation

/// Streams a safetensors file: the header is written first from the declared tensors, then each
/// tensor's bytes in declaration order, so files larger than memory can be written chunk by chunk.
public final class SafeTensorsWriter {
    public struct Declaration: Sendable {
        public var name: String
        public var dtype: TensorDType
        public var shape: [Int]
        public init(name: String, dtype: TensorDType, shape: [Int]) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
        }
        public var byteCount: Int { shape.reduce(1, *) * dtype.byteSize }
    }

    public let path: String
    private let handle: FileHandle
    private let totalBytes: Int
    private var written = 0
    private var buffer = Data()
    private static let flushSize = 8 << 20

    public init(path: String, tensors: [Declaration], metadata: [String: String] = ["format": "pt"]) throws {
        self.path = path
        var entries: [String] = []
        if !metadata.isEmpty {
            let fields = metadata.sorted { $0.key < $1.key }.map { "\(Self.quote($0.key)):\(Self.quote($0.value))" }
            entries.append("\"__metadata__\":{\(fields.joined(separator: ","))}")
        }
        var offset = 0
        for t in tensors {
            let shape = t.shape.map(String.init).joined(separator: ",")
            entries.append("\(Self.quote(t.name)):{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[\(shape)],"
                           + "\"data_offsets\":[\(offset),\(offset + t.byteCount)]}")
            offset += t.byteCount
        }
        totalBytes = offset
        var header = Array("{\(entries.joined(separator: ","))}".utf8)
        // Pad with spaces so the data section starts 8-byte aligned (as the reference writer does).
        while header.count % 8 != 0 { header.append(0x20) }
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let handle = FileHandle(forWritingAtPath: path) else {
            throw ModelError.writeFailed(path: path, reason: "cannot create the file")
        }
        self.handle = handle
        var length = UInt64(header.count).littleEndian
        buffer.append(Data(bytes: &length, count: 8))
        buffer.append(contentsOf: header)
    }

    private static func quote(_ s: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }

    /// Appends raw tensor bytes (the next tensors' data, in declaration order).
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard written + bytes.count <= totalBytes else {
            throw ModelError.writeFailed(path: path, reason: "more tensor bytes written than declared")
        }
        written += bytes.count
        if bytes.count >= Self.flushSize {
            // A large tensor goes to the file straight from its memory (a mapping, for a conversion), not
            // through a copy in the buffer.
            try flush()
            do { try handle.write(contentsOf: bytes) } catch {
                throw ModelError.writeFailed(path: path, reason: error.localizedDescription)
            }
            return
        }
        buffer.append(contentsOf: bytes)
        if buffer.count >= Self.flushSize { try flush() }
    }

    public func write(_ values: [Float], as dtype: TensorDType) throws {
        switch dtype {
        case .f32:
            try values.withUnsafeBytes { try write($0) }
        case .f16:
            try values.map { Float16($0).bitPattern }.withUnsafeBytes { try write($0) }
        case .bf16:
            try values.map(bf16Bits).withUnsafeBytes { try write($0) }
        default:
            throw ModelError.writeFailed(path: path, reason: "writing \(dtype.rawValue) values is not supported")
        }
    }

    private func flush() throws {
        do { try handle.write(contentsOf: buffer) } catch {
            throw ModelError.writeFailed(path: path, reason: error.localizedDescription)
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Writes what is buffered and checks every declared byte was written.
    public func finish() throws {
        try flush()
        try? handle.close()
        guard written == totalBytes else {
            throw ModelError.writeFailed(path: path, reason: "\(written) of \(totalBytes) declared tensor bytes written")
        }
    }
}

/// f32 → bf16 with round-to-nearest-even (as torch's `.to(torch.bfloat16)`); NaN stays NaN.
func bf16Bits(_ x: Float) -> UInt16 {
    if x.isNaN { return 0x7FC0 }
    let bits = x.bitPattern
    let rounding = 0x7FFF + ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
}
