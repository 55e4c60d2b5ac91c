import Foundation
import MirageKernels

/// Element types a safetensors header may declare. Mirage computes with F32, F16 and BF16 weights;
/// the others are recognised so the error can name them.
public enum TensorDType: String, Sendable, CaseIterable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"
    case u16 = "U16", u32 = "U32", u64 = "U64", f8e4m3 = "F8_E4M3", f8e5m2 = "F8_E5M2"

    public var byteSize: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .i8, .u8, .bool, .f8e4m3, .f8e5m2: return 1
        }
    }

    /// The kernel weight format for floating types Mirage computes with.
    public var weightFormat: WeightFormat? {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        default: return nil
        }
    }
}

/// One tensor of a safetensors file: where its bytes are in the mapping.
public struct TensorEntry: Sendable {
    public let name: String
    public let dtype: TensorDType
    public let shape: [Int]
    /// Offset of the first byte from the start of the file.
    public let fileOffset: Int
    public let byteCount: Int
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A memory-mapped safetensors file with a validated header
/// (format: 8-byte little-endian header length, JSON header, data section; see huggingface/safetensors).
public struct SafeTensorsFile: @unchecked Sendable {
    public let file: MappedFile
    public let tensors: [String: TensorEntry]
    public let metadata: [String: String]

    /// Largest header the reader accepts (the reference library caps it at 100 MB as well).
    static let maxHeaderSize = 100_000_000

    public init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    /// Validates the header of a file already in memory (a mapping, or bytes copied with
    /// `MappedFile(copying:path:)`); errors name `file.path`.
    public init(file: MappedFile) throws {
        let path = file.path
        self.file = file
        guard file.size >= 8 else {
            throw ModelError.truncatedFile(path: path, size: file.size, needed: 8)
        }
        let headerLength = Int(clamping: file.base.loadUnaligned(as: UInt64.self).littleEndian)
        guard headerLength <= Self.maxHeaderSize else {
            throw ModelError.badHeader(path: path, detail: "header length \(headerLength) exceeds 100 MB")
        }
        guard 8 + headerLength <= file.size else {
            throw ModelError.truncatedFile(path: path, size: file.size, needed: 8 + headerLength)
        }
        let headerData = Data(bytes: file.base + 8, count: headerLength)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerData)
        } catch {
            throw ModelError.badHeader(path: path, detail: "the header is not valid JSON")
        }
        guard let object = json as? [String: Any] else {
            throw ModelError.badHeader(path: path, detail: "the header is not a JSON object")
        }
        let dataStart = 8 + headerLength
        let dataSize = file.size - dataStart
        var tensors: [String: TensorEntry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in object.sorted(by: { $0.key < $1.key }) {
            if name == "__metadata__" {
                if let dict = value as? [String: Any] {
                    for (k, v) in dict { metadata[k] = v as? String ?? "\(v)" }
                }
                continue
            }
            guard let entry = value as? [String: Any],
                  let dtypeName = entry["dtype"] as? String,
                  let shapeValues = entry["shape"] as? [Any],
                  let offsetValues = entry["data_offsets"] as? [Any], offsetValues.count == 2
            else {
                throw ModelError.badHeader(path: path, detail: "entry '\(name)' lacks dtype, shape or data_offsets")
            }
            guard let dtype = TensorDType(rawValue: dtypeName) else {
                throw ModelError.unsupportedDType(tensor: name, dtype: dtypeName, path: path)
            }
            let shape = try shapeValues.map { v -> Int in
                guard let n = Self.integer(v), n >= 0 else {
                    throw ModelError.badHeader(path: path, detail: "entry '\(name)' has a non-integer shape")
                }
                return n
            }
            guard let begin = Self.integer(offsetValues[0]), let end = Self.integer(offsetValues[1]) else {
                throw ModelError.badHeader(path: path, detail: "entry '\(name)' has non-integer data_offsets")
            }
            guard begin >= 0, begin <= end, end <= dataSize else {
                throw ModelError.offsetsOutOfRange(tensor: name, begin: begin, end: end, dataSize: dataSize, path: path)
            }
            let (elements, overflow) = shape.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d)
                return (p, acc.1 || o)
            }
            let (bytes, bytesOverflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow, !bytesOverflow, bytes == end - begin else {
                throw ModelError.byteCountMismatch(tensor: name, shape: shape, dtype: dtypeName,
                                                   bytes: end - begin, path: path)
            }
            tensors[name] = TensorEntry(name: name, dtype: dtype, shape: shape,
                                        fileOffset: dataStart + begin, byteCount: end - begin)
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    private static func integer(_ value: Any) -> Int? {
        if let n = value as? Int { return n }
        if let d = value as? Double, d.rounded() == d, abs(d) < 9e15 { return Int(d) }
        return nil
    }

    public func pointer(_ entry: TensorEntry) -> UnsafeRawPointer { file.base + entry.fileOffset }
}

/// All tensors of a model folder, by name: `model.safetensors`, or shards listed by
/// `model.safetensors.index.json`; without safetensors, the PyTorch checkpoints `pytorch_model.bin`, shards listed
/// by `pytorch_model.bin.index.json`, or the folder's `*.pth` files (read by `TorchCheckpointFile`; see
/// docs/checkpoints.md). Safetensors are preferred when both exist. Loaders see the same entries either way.
public struct TensorStore: @unchecked Sendable {
    public let folder: String
    /// The weight files the tensors come from, in load order.
    public let paths: [String]
    /// The format of those files.
    public let format: Format
    private let entries: [String: Slot]
    /// Tensor names in the order the files list them (safetensors: sorted per file).
    public let orderedNames: [String]
    /// The precision of the matrices `matrix` returns (`LoadOptions.precision`).
    public var precision: Precision = .exact

    public enum Format: String, Sendable {
        case safetensors
        case pytorch
    }

    private enum Slot {
        case safetensors(SafeTensorsFile, TensorEntry)
        case torch(TorchCheckpointFile, TorchTensor)

        var entry: TensorEntry {
            switch self {
            case let .safetensors(_, e): return e
            case let .torch(_, t): return t.entry
            }
        }
        var path: String {
            switch self {
            case let .safetensors(f, _): return f.file.path
            case let .torch(f, _): return f.file.path
            }
        }
    }

    /// The weight files of a model folder, in the order of preference above.
    public static func weightFiles(in folder: URL) throws -> (format: Format, index: URL?, files: [URL]) {
        let fm = FileManager.default
        func file(_ name: String) -> URL? {
            let url = folder.appendingPathComponent(name)
            return fm.fileExists(atPath: url.path) ? url : nil
        }
        if let index = file("model.safetensors.index.json") {
            return (.safetensors, index, try shardFiles(index: index, folder: folder))
        }
        if let single = file("model.safetensors") { return (.safetensors, nil, [single]) }
        if let index = file("pytorch_model.bin.index.json") {
            return (.pytorch, index, try shardFiles(index: index, folder: folder))
        }
        if let single = file("pytorch_model.bin") { return (.pytorch, nil, [single]) }
        let listing = ((try? fm.contentsOfDirectory(atPath: folder.path)) ?? []).sorted()
        let pth = listing.filter { $0.hasSuffix(".pth") }
        if !pth.isEmpty { return (.pytorch, nil, pth.map { folder.appendingPathComponent($0) }) }
        if listing.contains(where: { $0.hasPrefix("pytorch_model-") && $0.hasSuffix(".bin") }) {
            throw ModelError.fileNotFound(
                path: folder.appendingPathComponent("pytorch_model.bin.index.json").path,
                hint: "The folder holds pytorch_model-*.bin shards but not their index; download pytorch_model.bin.index.json too.")
        }
        throw ModelError.fileNotFound(
            path: folder.appendingPathComponent("model.safetensors").path,
            hint: "A model folder needs model.safetensors (or model.safetensors.index.json with its shards), or a PyTorch "
                + "checkpoint: pytorch_model.bin, pytorch_model.bin.index.json with its shards, or *.pth files.")
    }

    /// The shard files an index's `weight_map` names, sorted, each checked to exist.
    static func shardFiles(index: URL, folder: URL) throws -> [URL] {
        try Array(Set(weightMap(index: index).values)).sorted().map { name in
            guard !name.contains("/") else {
                throw ModelError.badIndex(path: index.path, detail: "shard name '\(name)' must be a plain file name")
            }
            let url = folder.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw ModelError.fileNotFound(path: url.path, hint: "The index lists this shard; download all shards.")
            }
            return url
        }
    }

    static func weightMap(index: URL) throws -> [String: String] {
        let data: Data
        do { data = try Data(contentsOf: index) } catch {
            throw ModelError.cannotOpen(path: index.path, reason: error.localizedDescription)
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let weightMap = object["weight_map"] as? [String: String] else {
            throw ModelError.badIndex(path: index.path, detail: "expected a JSON object with a 'weight_map'")
        }
        return weightMap
    }

    public init(folder: URL) throws {
        let (format, index, files) = try Self.weightFiles(in: folder)
        try self.init(folder: folder.path, format: format, index: index, files: files)
    }

    /// The tensors of one weight file outside a model folder: a safetensors file, or a PyTorch checkpoint (e.g.
    /// MiniGPT-4's projector `.pth`). The format is recognised from the content, not the name.
    public init(file: URL) throws {
        let mapped = try MappedFile(path: file.path)
        let isTorch = mapped.size >= 4 && (TorchZipArchive.looksLikeZip(UnsafeRawBufferPointer(start: mapped.base, count: 4))
                                           || mapped.base.load(as: UInt8.self) == 0x80)
        try self.init(folder: file.deletingLastPathComponent().path, format: isTorch ? .pytorch : .safetensors,
                      index: nil, files: [file], mapped: mapped)
    }

    private init(folder: String, format: Format, index: URL?, files: [URL], mapped: MappedFile? = nil) throws {
        self.folder = folder
        self.format = format
        self.paths = files.map(\.path)
        var entries: [String: Slot] = [:]
        var ordered: [String] = []
        // Per file: name → slot, in the file's order.
        var perFile: [String: [(String, Slot)]] = [:]
        for url in files {
            let file = try mapped ?? MappedFile(path: url.path)
            switch format {
            case .safetensors:
                let st = try SafeTensorsFile(file: file)
                perFile[url.lastPathComponent] = st.tensors.keys.sorted().map { ($0, .safetensors(st, st.tensors[$0]!)) }
            case .pytorch:
                let ckpt = try TorchCheckpointFile(file: file)
                perFile[url.lastPathComponent] = ckpt.names.map { ($0, .torch(ckpt, ckpt.tensors[$0]!)) }
            }
        }
        if let index {
            let weightMap = try Self.weightMap(index: index)
            for url in files {
                for (name, slot) in perFile[url.lastPathComponent]! where weightMap[name] == url.lastPathComponent {
                    entries[name] = slot
                    ordered.append(name)
                }
            }
            for (tensor, shard) in weightMap.sorted(by: { $0.key < $1.key }) where entries[tensor] == nil {
                throw ModelError.badIndex(path: index.path, detail: "tensor '\(tensor)' is mapped to \(shard) but that shard lacks it")
            }
        } else {
            for url in files {
                for (name, slot) in perFile[url.lastPathComponent]! {
                    if let earlier = entries[name] {
                        throw ModelError.badIndex(
                            path: url.path, detail: "tensor '\(name)' is also in \(earlier.path); keep one copy of each tensor in the folder "
                                + "(move other checkpoints elsewhere)")
                    }
                    entries[name] = slot
                    ordered.append(name)
                }
            }
        }
        self.entries = entries
        self.orderedNames = ordered
    }

    public var tensorNames: [String] { entries.keys.sorted() }

    /// The tensor's dtype, shape and byte count. For a strided PyTorch view, `fileOffset` is that of its first
    /// element and its bytes are not contiguous: read them with `withBytes`.
    public func entry(_ name: String) -> TensorEntry? { entries[name]?.entry }

    /// The entry, its row-major bytes and the object that owns them, without checks (nil when absent).
    func located(_ name: String) -> (TensorEntry, UnsafeRawPointer, MappedFile)? {
        switch entries[name] {
        case let .safetensors(file, entry)?:
            return (entry, file.pointer(entry), file.file)
        case let .torch(file, tensor)?:
            let (owner, pointer) = file.contiguous(tensor)
            return (tensor.entry, pointer, owner)
        case nil:
            return nil
        }
    }

    /// The file a tensor comes from.
    public func path(of name: String) -> String? { entries[name]?.path }

    /// The tensor's bytes in row-major order during `body` (in place, or a temporary copy of a strided view).
    public func withBytes<R>(_ name: String, _ body: (TensorEntry, UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let slot = entries[name] else { throw ModelError.missingTensor(tensor: name, folder: folder) }
        switch slot {
        case let .safetensors(file, entry):
            return try body(entry, UnsafeRawBufferPointer(start: file.pointer(entry), count: entry.byteCount))
        case let .torch(file, tensor):
            return try file.withContiguousBytes(tensor) { try body(tensor.entry, $0) }
        }
    }

    /// Drops the tensor's pages from the process's resident set (`MappedFile.releasePages`): for streaming
    /// over a model larger than memory, after its bytes were used.
    public func releasePages(_ name: String) {
        switch entries[name] {
        case let .safetensors(file, entry)?:
            file.file.releasePages(offset: entry.fileOffset, count: entry.byteCount)
        case let .torch(file, tensor)?:
            file.file.releasePages(offset: tensor.fileOffset, count: tensor.spanBytes)
        case nil:
            break
        }
    }

    /// The entry, checked to exist, to have `shape` and a floating dtype Mirage computes with; its row-major
    /// bytes and the object that owns them.
    public func require(_ name: String, shape: [Int]) throws -> (TensorEntry, UnsafeRawPointer, MappedFile) {
        guard let slot = entries[name] else {
            throw ModelError.missingTensor(tensor: name, folder: folder)
        }
        let entry = slot.entry
        guard entry.shape == shape else {
            throw ModelError.wrongShape(tensor: name, expected: shape, actual: entry.shape)
        }
        guard entry.dtype.weightFormat != nil else {
            throw ModelError.unsupportedDType(tensor: name, dtype: entry.dtype.rawValue, path: slot.path)
        }
        switch slot {
        case let .safetensors(file, entry):
            return (entry, file.pointer(entry), file.file)
        case let .torch(file, tensor):
            let (owner, pointer) = file.contiguous(tensor)
            return (entry, pointer, owner)
        }
    }

    /// A [rows × cols] weight matrix pointing into the mapping (no copy). In a pre-quantized folder
    /// (`mirage models quantize`) a matrix stored as `NAME.q8` is returned as q8 (`Q8Checkpoint`).
    public func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
        if entries[name] == nil, let quantized = try q8Matrix(name, rows: rows, cols: cols) { return quantized }
        let (entry, pointer, file) = try require(name, shape: [rows, cols])
        return WeightMatrix(rows: rows, cols: cols, format: entry.dtype.weightFormat!, data: pointer, owner: file,
                            precision: precision)
    }

    /// A vector converted to f32 (norm weights, biases).
    public func vector(_ name: String, count: Int) throws -> [Float] {
        let (entry, pointer, _) = try require(name, shape: [count])
        return convertToF32(pointer, count: count, dtype: entry.dtype)
    }
}

/// Converts `count` elements of a floating dtype to f32.
func convertToF32(_ pointer: UnsafeRawPointer, count: Int, dtype: TensorDType) -> [Float] {
    [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
        let out = buffer.baseAddress!
        switch dtype {
        case .f32:
            for i in 0..<count { out[i] = pointer.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
        case .f16:
            for i in 0..<count {
                out[i] = Float(Float16(bitPattern: pointer.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .bf16:
            for i in 0..<count {
                let bits = UInt32(pointer.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16
                out[i] = Float(bitPattern: bits)
            }
        default:
            preconditionFailure("convertToF32 called with \(dtype)")
        }
        initialized = count
    }
}
