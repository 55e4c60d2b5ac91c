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

/// All tensors of a model folder: one `model.safetensors`, or shards listed by
/// `model.safetensors.index.json`.
public struct TensorStore: @unchecked Sendable {
    public let folder: String
    public let files: [SafeTensorsFile]
    /// Tensor name → (file index, entry).
    private let entries: [String: (Int, TensorEntry)]
    /// The precision of the matrices `matrix` returns (`LoadOptions.precision`).
    public var precision: Precision = .exact

    public init(folder: URL) throws {
        self.folder = folder.path
        let fm = FileManager.default
        let index = folder.appendingPathComponent("model.safetensors.index.json")
        let single = folder.appendingPathComponent("model.safetensors")
        var files: [SafeTensorsFile] = []
        var entries: [String: (Int, TensorEntry)] = [:]
        if fm.fileExists(atPath: index.path) {
            let data: Data
            do { data = try Data(contentsOf: index) } catch {
                throw ModelError.cannotOpen(path: index.path, reason: error.localizedDescription)
            }
            guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
                  let weightMap = object["weight_map"] as? [String: String] else {
                throw ModelError.badIndex(path: index.path, detail: "expected a JSON object with a 'weight_map'")
            }
            let shardNames = Array(Set(weightMap.values)).sorted()
            var shardIndex: [String: Int] = [:]
            for name in shardNames {
                guard !name.contains("/") else {
                    throw ModelError.badIndex(path: index.path, detail: "shard name '\(name)' must be a plain file name")
                }
                let path = folder.appendingPathComponent(name).path
                guard fm.fileExists(atPath: path) else {
                    throw ModelError.fileNotFound(path: path, hint: "The index lists this shard; download all shards.")
                }
                shardIndex[name] = files.count
                files.append(try SafeTensorsFile(path: path))
            }
            for (tensor, shard) in weightMap {
                let i = shardIndex[shard]!
                guard let entry = files[i].tensors[tensor] else {
                    throw ModelError.badIndex(path: index.path,
                                              detail: "tensor '\(tensor)' is mapped to \(shard) but that shard lacks it")
                }
                entries[tensor] = (i, entry)
            }
        } else if fm.fileExists(atPath: single.path) {
            let file = try SafeTensorsFile(path: single.path)
            files = [file]
            for (name, entry) in file.tensors { entries[name] = (0, entry) }
        } else {
            throw ModelError.fileNotFound(
                path: single.path,
                hint: "A model folder needs model.safetensors or model.safetensors.index.json with its shards "
                    + "(PyTorch .bin checkpoints are not read; convert them with save_pretrained(safe_serialization=True)).")
        }
        self.files = files
        self.entries = entries
    }

    public var tensorNames: [String] { entries.keys.sorted() }

    public func entry(_ name: String) -> TensorEntry? { entries[name]?.1 }

    /// The entry, its bytes and its file, without checks (nil when absent).
    func located(_ name: String) -> (TensorEntry, UnsafeRawPointer, MappedFile)? {
        guard let (fileIndex, entry) = entries[name] else { return nil }
        return (entry, files[fileIndex].pointer(entry), files[fileIndex].file)
    }

    /// The entry, checked to exist, to have `shape` and a floating dtype Mirage computes with.
    public func require(_ name: String, shape: [Int]) throws -> (TensorEntry, UnsafeRawPointer, MappedFile) {
        guard let (fileIndex, entry) = entries[name] else {
            throw ModelError.missingTensor(tensor: name, folder: folder)
        }
        guard entry.shape == shape else {
            throw ModelError.wrongShape(tensor: name, expected: shape, actual: entry.shape)
        }
        guard entry.dtype.weightFormat != nil else {
            throw ModelError.unsupportedDType(tensor: name, dtype: entry.dtype.rawValue, path: files[fileIndex].file.path)
        }
        return (entry, files[fileIndex].pointer(entry), files[fileIndex].file)
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
