import Foundation
import MirageTestSupport
import Testing
@testable import MirageEngine

/// Broken checkpoints fail with the typed error that names the tensor (or file) at fault.
@Suite struct MalformedCheckpointTests {
    let source = EngineFixtures.folder("llama-linear-f32")

    /// A scratch model folder with the fixture's config.json (optionally edited).
    func scratchFolder(editConfig: ((inout [String: Any]) -> Void)? = nil) throws -> URL {
        let dir = TestTemporary.root.appendingPathComponent("mirage-malformed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("config.json"))) as! [String: Any]
        editConfig?(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        return dir
    }

    /// Re-writes the fixture's tensors through `transform` (which may drop, rename or add tensors).
    func rewrite(into dir: URL, transform: ([SafeTensorsWriter.Declaration]) -> [SafeTensorsWriter.Declaration]) throws {
        let file = try SafeTensorsFile(path: source.appendingPathComponent("model.safetensors").path)
        let original = file.tensors.values.sorted { $0.name < $1.name }
        let declarations = transform(original.map { .init(name: $0.name, dtype: $0.dtype, shape: $0.shape) })
        let writer = try SafeTensorsWriter(path: dir.appendingPathComponent("model.safetensors").path, tensors: declarations)
        for d in declarations {
            if let entry = file.tensors[d.name], entry.byteCount == d.byteCount {
                try writer.write(UnsafeRawBufferPointer(start: file.pointer(entry), count: entry.byteCount))
            } else {
                try [UInt8](repeating: 0, count: d.byteCount).withUnsafeBytes { try writer.write($0) }
            }
        }
        try writer.finish()
    }

    func rawFile(in dir: URL, header: String, dataBytes: Int) throws {
        var data = Data()
        var length = UInt64(header.utf8.count).littleEndian
        data.append(Data(bytes: &length, count: 8))
        data.append(contentsOf: Array(header.utf8))
        data.append(Data(count: dataBytes))
        try data.write(to: dir.appendingPathComponent("model.safetensors"))
    }

    func loadError(_ dir: URL) -> ModelError? {
        do {
            _ = try LanguageModel(folder: dir, options: LoadOptions(threads: 1))
            return nil
        } catch {
            return error as? ModelError
        }
    }

    @Test func rewrittenCheckpointStillLoadsAndUnusedBuffersAreIgnored() throws {
        let dir = try scratchFolder()
        try rewrite(into: dir) { $0 + [.init(name: "model.layers.0.self_attn.rotary_emb.inv_freq", dtype: .f32, shape: [4])] }
        #expect(loadError(dir) == nil)
    }

    /// A decoder nested in a multimodal checkpoint (LLaVA's `language_model.` prefix) loads through
    /// `TensorNaming.prefixed` and computes the same logits.
    @Test func prefixedCheckpointLoadsWithNaming() throws {
        let dir = try scratchFolder()
        let file = try SafeTensorsFile(path: source.appendingPathComponent("model.safetensors").path)
        let entries = file.tensors.values.sorted { $0.name < $1.name }
        let writer = try SafeTensorsWriter(path: dir.appendingPathComponent("model.safetensors").path,
                                           tensors: entries.map { .init(name: "language_model." + $0.name, dtype: $0.dtype, shape: $0.shape) })
        for e in entries { try writer.write(UnsafeRawBufferPointer(start: file.pointer(e), count: e.byteCount)) }
        try writer.finish()
        let config = try ModelConfig.load(from: dir.appendingPathComponent("config.json"))
        #expect(loadError(dir) == .missingTensor(tensor: "model.embed_tokens.weight", folder: dir.path))
        let nested = try LanguageModel(config: config, generationConfig: nil, tensors: TensorStore(folder: dir),
                                       naming: .prefixed("language_model."), options: LoadOptions(threads: 1))
        let plain = try LanguageModel(folder: source, options: LoadOptions(threads: 1))
        let ids: [PromptItem] = [3, 14, 15, 92].map { .token($0) }
        #expect(try nested.makeSession().append(ids).logits == plain.makeSession().append(ids).logits)
    }

    @Test func truncatedDataNamesTheTensorPastTheEnd() throws {
        let dir = try scratchFolder()
        let full = try Data(contentsOf: source.appendingPathComponent("model.safetensors"))
        try full.prefix(full.count - 100).write(to: dir.appendingPathComponent("model.safetensors"))
        let file = try SafeTensorsFile(path: source.appendingPathComponent("model.safetensors").path)
        let last = file.tensors.values.max { $0.fileOffset < $1.fileOffset }!
        guard case let .offsetsOutOfRange(tensor, _, _, _, _) = loadError(dir) else {
            Issue.record("expected offsetsOutOfRange"); return
        }
        #expect(tensor == last.name)
    }

    @Test func truncatedHeader() throws {
        let dir = try scratchFolder()
        let full = try Data(contentsOf: source.appendingPathComponent("model.safetensors"))
        try full.prefix(40).write(to: dir.appendingPathComponent("model.safetensors"))
        guard case .truncatedFile = loadError(dir) else { Issue.record("expected truncatedFile"); return }
        try Data([1, 2, 3]).write(to: dir.appendingPathComponent("model.safetensors"))
        guard case .truncatedFile = loadError(dir) else { Issue.record("expected truncatedFile for 3 bytes"); return }
    }

    @Test func badHeaderJSON() throws {
        let dir = try scratchFolder()
        try rawFile(in: dir, header: "{\"a\": [1, 2", dataBytes: 0)
        guard case .badHeader = loadError(dir) else { Issue.record("expected badHeader"); return }
        try rawFile(in: dir, header: "{\"w\": {\"dtype\": \"F32\"}}", dataBytes: 0)
        guard case .badHeader = loadError(dir) else { Issue.record("expected badHeader for a missing field"); return }
    }

    @Test func offsetsOutOfRangeAndByteCountMismatch() throws {
        let dir = try scratchFolder()
        try rawFile(in: dir, header: #"{"model.norm.weight":{"dtype":"F32","shape":[32],"data_offsets":[0,128]}}"#, dataBytes: 64)
        #expect(loadError(dir) == .offsetsOutOfRange(tensor: "model.norm.weight", begin: 0, end: 128, dataSize: 64,
                                                     path: dir.appendingPathComponent("model.safetensors").path))
        try rawFile(in: dir, header: #"{"model.norm.weight":{"dtype":"F32","shape":[32],"data_offsets":[0,100]}}"#, dataBytes: 128)
        guard case let .byteCountMismatch(tensor, shape, _, bytes, _) = loadError(dir) else {
            Issue.record("expected byteCountMismatch"); return
        }
        #expect(tensor == "model.norm.weight" && shape == [32] && bytes == 100)
    }

    @Test func wrongShapeAgainstConfig() throws {
        let dir = try scratchFolder { $0["intermediate_size"] = 60 }
        try rewrite(into: dir) { $0 }
        #expect(loadError(dir) == .wrongShape(tensor: "model.layers.0.mlp.gate_proj.weight", expected: [60, 32], actual: [64, 32]))
    }

    @Test func missingTensor() throws {
        let dir = try scratchFolder()
        try rewrite(into: dir) { $0.filter { $0.name != "model.layers.1.self_attn.k_proj.weight" } }
        #expect(loadError(dir) == .missingTensor(tensor: "model.layers.1.self_attn.k_proj.weight", folder: dir.path))
    }

    @Test func integerWeightIsRejected() throws {
        let dir = try scratchFolder()
        try rewrite(into: dir) { decls in
            decls.map { $0.name == "model.norm.weight" ? .init(name: $0.name, dtype: .i32, shape: $0.shape) : $0 }
        }
        guard case let .unsupportedDType(tensor, dtype, _) = loadError(dir) else {
            Issue.record("expected unsupportedDType"); return
        }
        #expect(tensor == "model.norm.weight" && dtype == "I32")
    }

    @Test func shardedIndexProblems() throws {
        let dir = try scratchFolder()
        try rewrite(into: dir) { $0 }
        try FileManager.default.moveItem(at: dir.appendingPathComponent("model.safetensors"),
                                         to: dir.appendingPathComponent("model-00001-of-00002.safetensors"))
        let file = try SafeTensorsFile(path: dir.appendingPathComponent("model-00001-of-00002.safetensors").path)
        var map = Dictionary(uniqueKeysWithValues: file.tensors.keys.map { ($0, "model-00001-of-00002.safetensors") })
        let index = dir.appendingPathComponent("model.safetensors.index.json")
        try JSONSerialization.data(withJSONObject: ["metadata": [:], "weight_map": map]).write(to: index)
        #expect(loadError(dir) == nil)
        map["lm_head.weight"] = "model-00002-of-00002.safetensors"
        try JSONSerialization.data(withJSONObject: ["metadata": [:], "weight_map": map]).write(to: index)
        guard case let .fileNotFound(path, _) = loadError(dir) else { Issue.record("expected fileNotFound"); return }
        #expect(path.hasSuffix("model-00002-of-00002.safetensors"))
        try Data("[]".utf8).write(to: index)
        guard case .badIndex = loadError(dir) else { Issue.record("expected badIndex"); return }
    }

    @Test func missingFolderContents() throws {
        let dir = try scratchFolder()
        guard case let .fileNotFound(path, hint) = loadError(dir) else { Issue.record("expected fileNotFound"); return }
        #expect(path.hasSuffix("model.safetensors") && hint.contains("safetensors"))
    }
}
