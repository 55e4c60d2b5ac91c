import Foundation

/// One tensor of a PyTorch checkpoint: a strided view of a storage whose bytes lie in the mapped archive.
public struct TorchTensor: Sendable {
    public let name: String
    public let dtype: TensorDType
    public let shape: [Int]
    /// Strides in elements, as torch stores them.
    public let strides: [Int]
    /// Offset in the file of the view's first element (storage start + storage offset · element size).
    public let fileOffset: Int
    /// The storage key (the archive's `data/<key>` entry), shared by tensors that are views of one storage.
    public let storageKey: String

    public var elementCount: Int { shape.reduce(1, *) }
    public var byteCount: Int { elementCount * dtype.byteSize }

    /// Row-major with no gaps (dimensions of size 1 may have any stride), so its bytes can be served in place.
    public var isContiguous: Bool {
        var expected = 1
        for (d, s) in zip(shape, strides).reversed() {
            if d == 0 { return true }
            if d != 1 && s != expected { return false }
            expected *= d
        }
        return true
    }

    /// Bytes from the first to one past the last element the view reaches in its storage.
    public var spanBytes: Int {
        guard elementCount > 0 else { return 0 }
        return (zip(shape, strides).reduce(0) { $0 + ($1.0 - 1) * $1.1 } + 1) * dtype.byteSize
    }

    /// The view as a safetensors-style entry: `fileOffset`/`byteCount` describe its contiguous bytes only when
    /// `isContiguous`.
    public var entry: TensorEntry {
        TensorEntry(name: name, dtype: dtype, shape: shape, fileOffset: fileOffset, byteCount: byteCount)
    }
}

/// A `torch.save` checkpoint (ZIP format, PyTorch ≥ 1.6), memory-mapped, with its pickle read by
/// `RestrictedUnpickler` (nothing in it is executed). The tensors come from the top-level dict, or from its
/// `'model'` entry, or else its `'state_dict'` entry, when that entry is a dict holding tensors (LAVIS and
/// MiniGPT-4 save `{'model': state_dict}`; Lightning saves `{'state_dict': ...}`). Entries of that dict that
/// are not tensors are listed in `skipped`. Contiguous tensors point into the mapping (no copy); other views
/// are copied to row-major order by `contiguousBytes` (docs/checkpoints.md).
public struct TorchCheckpointFile: @unchecked Sendable {
    public let file: MappedFile
    /// Tensors by name, and their names in the order the file lists them.
    public let tensors: [String: TorchTensor]
    public let names: [String]
    /// `"model"` or `"state_dict"` when the tensors come from that entry of the top-level dict.
    public let selectedKey: String?
    /// Names of the selected dict's entries that are not tensors (ignored).
    public let skipped: [String]

    public init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    /// Reads a checkpoint already in memory (a mapping, or bytes from `MappedFile(copying:path:)`); errors name
    /// `file.path`.
    public init(file: MappedFile) throws {
        self.file = file
        let path = file.path
        let bytes = UnsafeRawBufferPointer(start: file.base, count: file.size)
        guard TorchZipArchive.looksLikeZip(bytes) else { throw Self.notZip(bytes, path: path) }
        let archive = try TorchZipArchive(bytes: bytes, path: path)
        // The pickle is `<archive name>/data.pkl`; the archive name is whatever folder holds it.
        guard let pickleName = archive.names.first(where: {
            $0.hasSuffix("/data.pkl") && $0.dropLast("/data.pkl".count).allSatisfy { $0 != "/" }
        }) else {
            throw ModelError.unreadableCheckpoint(
                path: path, detail: "the ZIP archive has no <name>/data.pkl entry, so it was not written by torch.save",
                fix: "Pass a checkpoint written by torch.save (pytorch_model.bin or a .pth file).")
        }
        let prefix = String(pickleName.dropLast("data.pkl".count))
        if let order = archive.entries[prefix + "byteorder"] {
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[order.dataOffset..<(order.dataOffset + order.size)]),
                              as: UTF8.self)
            guard text == "little" else {
                throw ModelError.unreadableCheckpoint(
                    path: path, detail: "its tensors are stored \(text)-endian (the byteorder entry says '\(text)')",
                    fix: "Mirage reads little-endian checkpoints: load it with torch on the machine that wrote it and save it again on a little-endian one (x86-64 or ARM).")
            }
        }
        var storageEntries: [String: TorchZipArchive.Entry] = [:]
        let dataPrefix = prefix + "data/"
        for name in archive.names where name.hasPrefix(dataPrefix) {
            let key = String(name.dropFirst(dataPrefix.count))
            storageEntries[key] = archive.entries[name]
        }
        let pickle = archive.entries[pickleName]!
        let unpickler = RestrictedUnpickler(path: "\(path) (\(pickleName))", storageBytes: storageEntries.mapValues(\.size))
        let result = try unpickler.unpickle(UnsafeRawBufferPointer(rebasing: bytes[pickle.dataOffset..<(pickle.dataOffset + pickle.size)]))

        guard case let .dict(rootIndex) = result.root else {
            throw ModelError.unreadableCheckpoint(
                path: path, detail: "the checkpoint holds \(Self.describe(result.root)), not a dict of tensors",
                fix: "Save a state dict: torch.save(model.state_dict(), path).")
        }
        func holdsTensors(_ d: Int) -> Bool {
            result.dicts[d].values.contains { if case .tensor = $0 { return true } else { return false } }
        }
        var selected = rootIndex
        var selectedKey: String?
        for key in ["model", "state_dict"] {
            if case let .dict(d)? = result.dicts[rootIndex][key], holdsTensors(d) {
                selected = d
                selectedKey = key
                break
            }
        }
        var tensors: [String: TorchTensor] = [:]
        var names: [String] = []
        var skipped: [String] = []
        let dict = result.dicts[selected]
        for (key, value) in zip(dict.keys, dict.values) {
            guard case let .string(name) = key else {
                skipped.append("(a key that is not a string)")
                continue
            }
            guard case let .tensor(t) = value else {
                skipped.append(name)
                continue
            }
            let view = result.tensors[t]
            let storage = result.storages[view.storage]
            let entry = storageEntries[storage.key]!
            // The unpickler checked offset + extent against the storage, and the storage against its entry.
            let fileOffset = entry.dataOffset + view.storageOffset * storage.dtype.byteSize
            if tensors[name] == nil { names.append(name) }
            tensors[name] = TorchTensor(name: name, dtype: storage.dtype, shape: view.shape, strides: view.strides,
                                        fileOffset: fileOffset, storageKey: storage.key)
        }
        guard !tensors.isEmpty else {
            throw ModelError.unreadableCheckpoint(
                path: path, detail: "its dict holds no tensors (keys: \(Self.keyList(dict.keys)))",
                fix: "Pass the checkpoint of the weights (a state dict, or a dict with it under 'model' or 'state_dict').")
        }
        self.tensors = tensors
        self.names = names
        self.selectedKey = selectedKey
        self.skipped = skipped
    }

    /// The first few string keys, each cut to 40 characters, for an error message.
    static func keyList(_ keys: [PickleValue]) -> String {
        let names = keys.prefix(8).map { key -> String in
            guard case let .string(s) = key else { return "(not a string)" }
            return s.count > 40 ? "'\(s.prefix(40))…'" : "'\(s)'"
        }
        return names.isEmpty ? "none" : names.joined(separator: ", ") + (keys.count > 8 ? ", …" : "")
    }

    /// What identifies a checkpoint without reading its tensor data: its pickle (names, dtypes, shapes, storage
    /// keys) and, when present, the `.data/serialization_id` torch writes with every save. Errors as `init`
    /// for a file that is not a torch.save archive.
    public static func identity(path: String) throws -> Data {
        let file = try MappedFile(path: path)
        let bytes = UnsafeRawBufferPointer(start: file.base, count: file.size)
        guard TorchZipArchive.looksLikeZip(bytes) else { throw notZip(bytes, path: path) }
        let archive = try TorchZipArchive(bytes: bytes, path: path)
        var out = Data()
        for name in archive.names where name.hasSuffix("/data.pkl") || name.hasSuffix("/.data/serialization_id") {
            let e = archive.entries[name]!
            out.append(Data(name.utf8))
            out.append(Data(bytes: file.base + e.dataOffset, count: e.size))
        }
        return out
    }

    static func describe(_ v: PickleValue) -> String {
        switch v {
        case .tensor: return "a single tensor"
        case .list: return "a list"
        case .tuple: return "a tuple"
        default: return "a plain value"
        }
    }

    /// The error for a file that is not a ZIP archive: the legacy torch.save format, or not a checkpoint.
    static func notZip(_ bytes: UnsafeRawBufferPointer, path: String) -> ModelError {
        let convert = "Convert it with a PyTorch that reads it: python -c \"import torch; "
            + "torch.save(torch.load('OLD', map_location='cpu', weights_only=True), 'NEW')\" writes the ZIP format Mirage reads "
            + "(or save it as safetensors)."
        if bytes.count >= 2, bytes[0] == 0x80, bytes[1] <= 5 {
            return .unreadableCheckpoint(path: path, detail: "it is in the legacy torch.save format (a bare pickle stream, "
                                         + "written by PyTorch < 1.6 or with _use_new_zipfile_serialization=False)", fix: convert)
        }
        if bytes.count >= 262, Array(bytes[257..<262]) == Array("ustar".utf8) {
            return .unreadableCheckpoint(path: path, detail: "it is in the oldest torch.save format (a tar archive)", fix: convert)
        }
        return .unreadableCheckpoint(path: path, detail: "it is not a PyTorch checkpoint (no ZIP archive and no pickle stream)",
                                     fix: "Pass a torch.save file (pytorch_model.bin, *.pth) or a safetensors model folder.")
    }

    /// The tensor's bytes in row-major order: a pointer into the mapping when it is contiguous, otherwise a
    /// copy gathered from its strides, valid during `body`.
    public func withContiguousBytes<R>(_ tensor: TorchTensor, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        if tensor.isContiguous {
            return try body(UnsafeRawBufferPointer(start: file.base + tensor.fileOffset, count: tensor.byteCount))
        }
        let copy = materialize(tensor)
        return try body(UnsafeRawBufferPointer(start: copy.base, count: copy.size))
    }

    /// The tensor's bytes with an owner that keeps them alive: the mapping itself for a contiguous tensor,
    /// or a row-major copy of a strided view.
    public func contiguous(_ tensor: TorchTensor) -> (MappedFile, UnsafeRawPointer) {
        if tensor.isContiguous { return (file, file.base + tensor.fileOffset) }
        let copy = materialize(tensor)
        return (copy, copy.base)
    }

    /// Gathers a strided view (validated against its storage when the pickle was read) into row-major order.
    func materialize(_ tensor: TorchTensor) -> MappedFile {
        let size = tensor.dtype.byteSize
        return MappedFile(allocating: tensor.byteCount, path: "\(file.path) (\(tensor.name))") { out in
            let count = tensor.elementCount
            guard count > 0 else { return }
            let rank = tensor.shape.count
            var index = [Int](repeating: 0, count: rank)
            let source = file.base + tensor.fileOffset
            var sourceOffset = 0
            for i in 0..<count {
                (out + i * size).copyMemory(from: source + sourceOffset * size, byteCount: size)
                // Advance the odometer over the dimensions, last fastest.
                var d = rank - 1
                while d >= 0 {
                    index[d] += 1
                    sourceOffset += tensor.strides[d]
                    if index[d] < tensor.shape[d] { break }
                    sourceOffset -= tensor.strides[d] * tensor.shape[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
    }
}
