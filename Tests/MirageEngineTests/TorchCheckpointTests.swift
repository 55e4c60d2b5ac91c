import Foundation
import Testing
import MirageData
import MirageTestSupport
@testable import MirageEngine

/// The PyTorch checkpoint reader against files torch 2.13 wrote and a reference of the values it holds
/// (Scripts/fixtures/make_torch_checkpoint_fixtures.py), and hand-written hostile files it must refuse.
@Suite struct TorchCheckpointTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/checkpoints")

    static func url(_ name: String) -> URL { root.appendingPathComponent(name) }

    struct ReferenceTensor { var dtype: String; var shape: [Int]; var values: [Double]; var sha256: String }

    static func reference() throws -> [String: (selected: String?, tensors: [String: ReferenceTensor])] {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url("reference.json"))) as! [String: Any]
        var out: [String: (selected: String?, tensors: [String: ReferenceTensor])] = [:]
        for (file, value) in json["files"] as! [String: Any] {
            let v = value as! [String: Any]
            var tensors: [String: ReferenceTensor] = [:]
            for (name, t) in v["tensors"] as! [String: Any] {
                let t = t as! [String: Any]
                tensors[name] = ReferenceTensor(dtype: t["dtype"] as! String, shape: (t["shape"] as! [Any]).map { ($0 as! NSNumber).intValue },
                                                values: (t["values"] as! [Any]).map { Self.number($0) },
                                                sha256: t["sha256"] as! String)
            }
            out[file] = (v["selected"] as? String, tensors)
        }
        return out
    }

    /// A reference value: floats are decimal strings (exact through `Double(_:)`), integers JSON numbers.
    static func number(_ value: Any) -> Double {
        if let text = value as? String { return Double(text)! }
        return (value as! NSNumber).doubleValue
    }

    /// Element `i` of row-major little-endian bytes as a Double (exact for every dtype of the fixtures).
    static func value(_ bytes: UnsafeRawBufferPointer, _ i: Int, _ dtype: TensorDType) -> Double {
        switch dtype {
        case .f32: return Double(bytes.loadUnaligned(fromByteOffset: 4 * i, as: Float.self))
        case .f64: return bytes.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)
        case .f16: return Double(Float16(bitPattern: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        case .bf16: return Double(Float(bitPattern: UInt32(bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16))
        case .i64: return Double(bytes.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
        case .i32: return Double(bytes.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))
        case .u8, .bool: return Double(bytes[i])
        case .u16: return Double(bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
        case .f8e4m3:
            // OCP FP8 E4M3 (as torch's float8_e4m3fn): bias 7, no infinities; the fixture holds no NaN.
            let b = bytes[i], sign: Double = b & 0x80 != 0 ? -1 : 1
            let exponent = Int(b >> 3 & 0xF), mantissa = Double(b & 7)
            return exponent == 0 ? sign * mantissa / 8 * 0x1p-6 : sign * (1 + mantissa / 8) * Double(sign: .plus, exponent: exponent - 7, significand: 1)
        default: return .nan
        }
    }

    @Test(arguments: ["state.pth", "nested-model.pth", "nested-state-dict.pth", "zip64.pth", "v3.pth"])
    func readsExactlyWhatTorchWrote(_ file: String) throws {
        let reference = try #require(try Self.reference()[file])
        let checkpoint = try TorchCheckpointFile(path: Self.url(file).path)
        #expect(checkpoint.selectedKey == reference.selected)
        #expect(Set(checkpoint.names) == Set(reference.tensors.keys))
        for (name, expected) in reference.tensors {
            let tensor = try #require(checkpoint.tensors[name])
            #expect(tensor.dtype.rawValue == expected.dtype, "\(name)")
            #expect(tensor.shape == expected.shape, "\(name)")
            checkpoint.withContiguousBytes(tensor) { bytes in
                #expect(bytes.count == expected.values.count * tensor.dtype.byteSize, "\(name)")
                #expect(SHA256.hex(of: Data(bytes)) == expected.sha256, "\(name): bytes differ from torch's")
                let values = (0..<expected.values.count).map { Self.value(bytes, $0, tensor.dtype) }
                #expect(values == expected.values, "\(name)")
            }
        }
        // Non-tensor entries of the selected dict are skipped, not refused.
        #expect(checkpoint.skipped.isEmpty)
    }

    @Test func viewsShareStoragesAndContiguousTensorsAreNotCopied() throws {
        let checkpoint = try TorchCheckpointFile(path: Self.url("state.pth").path)
        let a = try #require(checkpoint.tensors["shared.a"]), b = try #require(checkpoint.tensors["shared.b"])
        #expect(a.storageKey == b.storageKey)
        #expect(b.fileOffset - a.fileOffset == 3 * 4)  // storage offsets 1 and 4 of one float32 storage
        #expect(a.isContiguous && b.isContiguous)
        let transposed = try #require(checkpoint.tensors["transposed"])
        #expect(!transposed.isContiguous && transposed.strides == [1, 5])
        // Zero copy: a contiguous tensor's bytes are the mapping's.
        let base = checkpoint.file.base
        checkpoint.withContiguousBytes(a) { bytes in
            #expect(bytes.baseAddress == base + a.fileOffset)
        }
        checkpoint.withContiguousBytes(transposed) { bytes in
            let start = bytes.baseAddress!
            #expect(start < base || start >= base + checkpoint.file.size)
        }
        let (owner, pointer) = checkpoint.contiguous(a)
        #expect(owner === checkpoint.file && pointer == base + a.fileOffset)
    }

    @Test func tensorStoreOpensAFileAndAFolderOfPthFiles() throws {
        let reference = try #require(try Self.reference()["nested-model.pth"])
        let single = try TensorStore(file: Self.url("nested-model.pth"))
        #expect(single.format == .pytorch)
        #expect(Set(single.tensorNames) == Set(reference.tensors.keys))
        // A strided view comes out row-major through `vector`/`require` like any other tensor.
        let transposed = try #require(reference.tensors["transposed"])
        let values = try single.vector("shared.a", count: 3)
        #expect(values.map(Double.init) == reference.tensors["shared.a"]!.values)
        let (_, pointer, owner) = try single.require("transposed", shape: [5, 3])
        let copied = (0..<15).map { Self.value(UnsafeRawBufferPointer(start: pointer, count: owner.size), $0, .f16) }
        #expect(copied == transposed.values)
        #expect(throws: ModelError.self) { try single.require("i64", shape: [5]) }

        let dir = TestTemporary.root.appendingPathComponent("mirage-pth-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(at: Self.url("state.pth"), to: dir.appendingPathComponent("weights.pth"))
        let folder = try TensorStore(folder: dir)
        #expect(folder.format == .pytorch)
        #expect(folder.tensorNames == single.tensorNames)
        // A second .pth with the same names is a clear error, not a silent choice.
        try FileManager.default.copyItem(at: Self.url("state.pth"), to: dir.appendingPathComponent("zz.pth"))
        let duplicate = #expect(throws: ModelError.self) { try TensorStore(folder: dir) }
        #expect(duplicate?.description.contains("is also in") == true)
        // With safetensors beside them, the safetensors are read.
        try FileManager.default.copyItem(at: EngineFixtures.folder("llama-llama3-bf16").appendingPathComponent("model.safetensors"),
                                         to: dir.appendingPathComponent("model.safetensors"))
        #expect(try TensorStore(folder: dir).format == .safetensors)
    }

    @Test func shardedPytorchFolderRunsLikeItsSafetensorsTwin() throws {
        let options = LoadOptions(threads: 2)
        let bin = try LanguageModel(folder: Self.url("sharded-llama"), options: options)
        let safetensors = try LanguageModel(folder: EngineFixtures.folder("llama-llama3-bf16"), options: options)
        let store = try TensorStore(folder: Self.url("sharded-llama"))
        #expect(store.format == .pytorch && store.paths.count == 2)
        let ids = [1, 5, 9, 17, 33, 2]
        let a = try bin.makeSession().append(ids.map { .token($0) }, options: ForwardOptions(logits: .all))
        let b = try safetensors.makeSession().append(ids.map { .token($0) }, options: ForwardOptions(logits: .all))
        for row in 0..<ids.count {
            #expect(Array(a.logits(row)) == Array(b.logits(row)), "row \(row)")
        }
        // And transformers' logits for the same weights (the safetensors fixture's reference).
        let reference = try EngineFixtures.reference("llama-llama3-bf16")
        let prompt = reference.prompts[0]
        let out = try bin.makeSession().append(prompt.ids.map { .token($0) }, options: ForwardOptions(logits: .all))
        for (k, row) in prompt.rows.enumerated() {
            #expect(EngineFixtures.relativeError(out.logits(row), prompt.logits[k]) <= 1e-4)
        }
    }

    @Test func shardsWithoutTheirIndexAreAClearError() throws {
        let dir = TestTemporary.root.appendingPathComponent("mirage-shards-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(at: Self.url("sharded-llama/pytorch_model-00001-of-00002.bin"),
                                         to: dir.appendingPathComponent("pytorch_model-00001-of-00002.bin"))
        let error = #expect(throws: ModelError.self) { try TensorStore(folder: dir) }
        #expect(error?.description.contains("pytorch_model.bin.index.json") == true)
    }

    /// Each hostile file and the parts its error must name.
    static let hostile: [(String, [String])] = [
        ("hostile-os-system.pth", ["hostile-os-system.pth", "pickle byte 2", "global os.system", "not on the allow-list", "never runs code"]),
        ("hostile-eval.pth", ["pickle byte 18", "global builtins.eval", "not on the allow-list"]),
        ("hostile-reduce.pth", ["REDUCE of a torch storage type or dtype", "not an allowed callable"]),
        ("hostile-truncated.pth", ["pickle stream ends at byte 60", "truncated"]),
        ("hostile-missing-storage.pth", ["storage '7' has no data/7 entry"]),
        ("hostile-overflow.pth", ["_rebuild_tensor_v2", "overflows a 64-bit byte count"]),
        ("hostile-out-of-storage.pth", ["reaches element 6 of storage '0', which holds 4"]),
        ("hostile-newobj.pth", ["opcode 0x81 (NEWOBJ) is not accepted"]),
        ("hostile-unknown-opcode.pth", ["pickle byte 3", "opcode 0xFF (unknown)"]),
        ("hostile-big-endian.pth", ["big-endian", "little-endian"]),
        ("hostile-compressed.pth", ["'hostile-compressed/data.pkl' is deflate-compressed", "torch.save", "zip -0"]),
        ("hostile-expanded.pth", ["size [1000, 4] (4000 elements) views storage '0' of 4 elements", "contiguous()"]),
        ("no-tensors.pth", ["its dict holds no tensors (keys: 'epoch', 'config')", "'model' or 'state_dict'"]),
        ("legacy.pth", ["legacy torch.save format", "_use_new_zipfile_serialization=False", "torch.load", "weights_only=True"]),
    ]

    @Test(arguments: hostile.map(\.0))
    func hostileFilesAreRefusedWithAClearError(_ file: String) throws {
        let parts = Self.hostile.first { $0.0 == file }!.1
        let error = #expect(throws: ModelError.self) { try TorchCheckpointFile(path: Self.url(file).path) }
        let message = error?.description ?? ""
        #expect(message.hasPrefix(Self.url(file).path), "\(message)")
        for part in parts {
            #expect(message.contains(part), "'\(part)' missing from: \(message)")
        }
    }

    /// Pickle bytes run through the unpickler directly.
    static func unpickle(_ bytes: [UInt8]) throws -> PickleResult {
        try bytes.withUnsafeBytes { try RestrictedUnpickler(path: "test.pkl", storageBytes: [:]).unpickle($0) }
    }

    @Test func deepNestingAndRepeatedHugeKeysStayCheap() throws {
        // 200,000 lists each appended into the one below: a chain that a recursive reader or a chain of
        // reference-counted objects would overflow the stack on; the arena holds it flat.
        let depth = 200_000
        let nested = [0x80, 2] + [UInt8](repeating: 0x5D, count: depth + 1) + [UInt8](repeating: 0x61, count: depth) + [0x2E]
        let result = try Self.unpickle(nested)
        #expect(result.lists.count == depth + 1)
        #expect(result.lists[0] == [.list(1)] && result.lists[depth].isEmpty)
        // One 1 MB key set 20,000 times through the memo (hashing it each time would be 20 GB of work): appended, never hashed.
        var repeated: [UInt8] = [0x80, 2, 0x7D, 0x42] + [0x00, 0x00, 0x10, 0x00] + [UInt8](repeating: 0x41, count: 1 << 20) + [0x71, 0]
        repeated += [0x30]  // POP the key, leaving the dict
        for _ in 0..<20_000 { repeated += [0x68, 0, 0x4E, 0x73] }  // BINGET key, NONE, SETITEM
        repeated += [0x2E]
        let big = try Self.unpickle(repeated)
        #expect(big.dicts[0].keys.count == 20_000)
    }

    @Test func memoAndMarkErrorsNameTheOffset() throws {
        let unknownMemo = #expect(throws: ModelError.self) { try Self.unpickle([0x80, 2, 0x68, 7, 0x2E]) }
        #expect(unknownMemo?.description.contains("pickle byte 2: memo index 7 was never stored") == true)
        let pastMark = #expect(throws: ModelError.self) { try Self.unpickle([0x80, 2, 0x4E, 0x28, 0x30, 0x2E]) }
        #expect(pastMark?.description.contains("pickle byte 4: an opcode pops past a MARK") == true)
        let noStop = #expect(throws: ModelError.self) { try Self.unpickle([0x80, 2, 0x4E]) }
        #expect(noStop?.description.contains("pickle stream ends at byte 3") == true)
        let protocol6 = #expect(throws: ModelError.self) { try Self.unpickle([0x80, 6, 0x4E, 0x2E]) }
        #expect(protocol6?.description.contains("pickle protocol 6") == true)
    }

    @Test func theHandWrittenFileTheHostileOnesVaryIsValid() throws {
        let checkpoint = try TorchCheckpointFile(path: Self.url("handwritten-valid.pth").path)
        let w = try #require(checkpoint.tensors["w"])
        checkpoint.withContiguousBytes(w) { bytes in
            #expect((0..<4).map { Self.value(bytes, $0, .f32) } == [1, 2, 3, 4])
        }
    }

    /// The ZIP64 re-pack with its records pointed outside the file: errors that say where, never a trap.
    @Test func corruptZip64RecordsAreClearErrors() throws {
        let data = try Data(contentsOf: Self.url("zip64.pth"))
        func offset(of signature: UInt32, fromEnd: Bool) -> Int {
            let bytes = [UInt8](data)
            let sig = withUnsafeBytes(of: signature.littleEndian, Array.init)
            let range = Array(0...(bytes.count - 4))
            return (fromEnd ? range.reversed() : range).first { Array(bytes[$0..<($0 + 4)]) == sig }!
        }
        func patched(at position: Int, _ value: UInt64) -> MappedFile {
            var copy = data
            withUnsafeBytes(of: value.littleEndian) { copy.replaceSubrange(position..<(position + 8), with: $0) }
            return MappedFile(copying: copy, path: "zip64.pth")
        }
        // The locator's pointer to the ZIP64 end record, beyond the file.
        let locator = offset(of: 0x0706_4B50, fromEnd: true)
        let far = #expect(throws: ModelError.self) { try TorchCheckpointFile(file: patched(at: locator + 8, 1 << 40)) }
        #expect(far?.description.contains("ZIP64 end-of-central-directory record is outside the file") == true)
        // The first entry's ZIP64 local-header offset (third 8-byte field of its extra), beyond the file.
        let central = offset(of: 0x0201_4B50, fromEnd: false)
        let nameLength = Int(data[central + 28]) | Int(data[central + 29]) << 8
        let extra = central + 46 + nameLength
        let local = #expect(throws: ModelError.self) { try TorchCheckpointFile(file: patched(at: extra + 4 + 16, 1 << 40)) }
        #expect(local?.description.contains("points at byte 1099511627776, where there is no local file header") == true)
        // A size of 2^63 or more in the ZIP64 extra field.
        let huge = #expect(throws: ModelError.self) { try TorchCheckpointFile(file: patched(at: extra + 4, UInt64.max)) }
        #expect(huge?.description.contains("short or oversized ZIP64 extra field") == true)
    }

    /// Cut at every length and with single bytes flipped, the valid files only ever throw (never trap).
    @Test func truncatedAndCorruptedCopiesThrow() throws {
        let data = try Data(contentsOf: Self.url("state.pth"))
        for length in stride(from: 0, to: data.count, by: 7) {
            let file = MappedFile(copying: data.prefix(length), path: "cut.pth")
            #expect(throws: ModelError.self) { try TorchCheckpointFile(file: file) }
        }
        var rejected = 0
        for position in stride(from: 0, to: data.count, by: 3) {
            var copy = data
            copy[position] ^= 0xA5
            if (try? TorchCheckpointFile(file: MappedFile(copying: copy, path: "flipped.pth"))) == nil { rejected += 1 }
        }
        #expect(rejected > 0)
    }
}
