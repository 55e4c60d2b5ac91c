import Foundation
import Testing
import MirageTestSupport

/// `mirage models convert` and `mirage models apply-delta` end to end on the checkpoint fixtures
/// (Scripts/fixtures/make_torch_checkpoint_fixtures.py): the converted folder must hold exactly the tensors
/// torch wrote, and a delta applied to its tiny base must give exactly the target torch computed with
/// Shikra's recipe.
@Suite struct ModelsCheckpointCLITests {
    static let fixtures = SharedData.repositoryRoot.appendingPathComponent("Tests/MirageEngineTests/Fixtures")
    static let checkpoints = fixtures.appendingPathComponent("checkpoints")

    func mirage(_ arguments: [String]) throws -> ProcessResult {
        let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        return try runProcess(binary, arguments)
    }

    struct Tensor: Equatable { var dtype: String; var shape: [Int]; var bytes: Data }

    /// The tensors of a safetensors model folder (model.safetensors or the shards its index lists), read with
    /// a reader independent of Mirage's: 8-byte header length, JSON header, data.
    static func tensors(in folder: URL) throws -> [String: Tensor] {
        let fm = FileManager.default
        var files = ["model.safetensors"]
        let index = folder.appendingPathComponent("model.safetensors.index.json")
        if fm.fileExists(atPath: index.path) {
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: index)) as! [String: Any]
            files = Array(Set((json["weight_map"] as! [String: String]).values)).sorted()
        }
        var out: [String: Tensor] = [:]
        for file in files {
            let data = try Data(contentsOf: folder.appendingPathComponent(file))
            let length = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + length))) as! [String: Any]
            for (name, value) in header where name != "__metadata__" {
                let v = value as! [String: Any]
                let offsets = (v["data_offsets"] as! [Any]).map { ($0 as! NSNumber).intValue }
                out[name] = Tensor(dtype: v["dtype"] as! String, shape: (v["shape"] as! [Any]).map { ($0 as! NSNumber).intValue },
                                   bytes: data.subdata(in: (8 + length + offsets[0])..<(8 + length + offsets[1])))
            }
        }
        return out
    }

    @Test func convertsAShardedBinFolderToTheSameWeights() throws {
        let out = TestTemporary.url("mirage-convert")
        defer { try? FileManager.default.removeItem(at: out) }
        let input = Self.checkpoints.appendingPathComponent("sharded-llama")
        let result = try mirage(["models", "convert", input.path, out.path, "--max-shard-size", "40KB"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("pytorch, 2 files"))
        #expect(result.stdout.contains("model.safetensors.index.json"))
        #expect(result.stdout.contains("sha256 "))
        #expect(result.stdout.contains("copied: config.json, generation_config.json"))
        // The bf16 fixture the .bin shards were written from holds the same tensors, byte for byte.
        let original = try Self.tensors(in: Self.fixtures.appendingPathComponent("models/llama-llama3-bf16"))
        let converted = try Self.tensors(in: out)
        #expect(converted == original)
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasSuffix(".safetensors") }.count > 1)
        // The converted folder runs: the same logits as the safetensors fixture.
        let ids = "1,5,9,17,33"
        let a = try mirage(["inspect", "logits", "--model", out.path, "--ids", ids, "--top", "5", "--json"])
        let b = try mirage(["inspect", "logits", "--model", Self.fixtures.appendingPathComponent("models/llama-llama3-bf16").path,
                            "--ids", ids, "--top", "5", "--json"])
        #expect(a.status == 0, "\(a.stderr)")
        func top(_ r: ProcessResult) throws -> [[String: Any]] {
            try #require((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["top"] as? [[String: Any]])
        }
        let (topA, topB) = (try top(a), try top(b))
        #expect(topA.map { $0["id"] as? Int } == topB.map { $0["id"] as? Int })
        #expect(topA.map { $0["logit"] as? Double } == topB.map { $0["logit"] as? Double })
        // Nor is the folder overwritten without --force.
        let again = try mirage(["models", "convert", input.path, out.path])
        #expect(again.status != 0)
        #expect(again.stderr.contains("--force"))
        let forced = try mirage(["models", "convert", input.path, out.path, "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        // One shard now; the earlier shards and their index are gone.
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path).sorted()
                == ["config.json", "generation_config.json", "model.safetensors"])
        #expect(try Self.tensors(in: out) == original)
    }

    @Test func convertsASinglePthWithStridedViews() throws {
        let out = TestTemporary.url("mirage-convert-pth")
        defer { try? FileManager.default.removeItem(at: out) }
        let result = try mirage(["models", "convert", Self.checkpoints.appendingPathComponent("nested-model.pth").path, out.path])
        #expect(result.status == 0, "\(result.stderr)")
        let converted = try Self.tensors(in: out)
        let reference = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.checkpoints.appendingPathComponent("reference.json"))) as! [String: Any]
        let expected = ((reference["files"] as! [String: Any])["nested-model.pth"] as! [String: Any])["tensors"] as! [String: Any]
        #expect(Set(converted.keys) == Set(expected.keys))
        // The transposed float16 view comes out row-major with torch's values.
        let transposed = expected["transposed"] as! [String: Any]
        let t = try #require(converted["transposed"])
        #expect(t.dtype == "F16" && t.shape == [5, 3])
        let values = t.bytes.withUnsafeBytes { raw in
            (0..<15).map { Double(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
        }
        #expect(values == (transposed["values"] as! [String]).map { Double($0)! })
        let i64 = try #require(converted["i64"])
        let ints = i64.bytes.withUnsafeBytes { raw in (0..<5).map { raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self) } }
        #expect(ints == [0, -1, 1 << 40, -(1 << 52) - 1, 7])
        // A file's neighbours are not copied.
        #expect(!result.stdout.contains("copied:"))
    }

    @Test func convertRefusesHostileFilesAndNamesWhy() throws {
        let out = TestTemporary.url("mirage-convert-hostile")
        defer { try? FileManager.default.removeItem(at: out) }
        let result = try mirage(["models", "convert", Self.checkpoints.appendingPathComponent("hostile-os-system.pth").path, out.path])
        #expect(result.status != 0)
        #expect(result.stderr.contains("global os.system is not on the allow-list"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("model.safetensors").path))
        let legacy = try mirage(["models", "convert", Self.checkpoints.appendingPathComponent("legacy.pth").path, out.path])
        #expect(legacy.status != 0)
        #expect(legacy.stderr.contains("legacy torch.save format"), "\(legacy.stderr)")
    }

    @Test func applyDeltaRebuildsTheTargetExactly() throws {
        let out = TestTemporary.url("mirage-delta")
        defer { try? FileManager.default.removeItem(at: out) }
        let root = Self.checkpoints.appendingPathComponent("delta")
        let result = try mirage(["models", "apply-delta", "--base", root.appendingPathComponent("base").path,
                                 "--delta", root.appendingPathComponent("delta").path, "--out", out.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("7 tensors (3 summed, 2 with rows beyond the base's vocabulary kept from the delta, 2 only in the delta)"),
                "\(result.stdout)")
        let target = try Self.tensors(in: root.appendingPathComponent("target"))
        let rebuilt = try Self.tensors(in: out)
        #expect(Set(rebuilt.keys) == Set(target.keys))
        for (name, expected) in target {
            #expect(rebuilt[name] == expected, "\(name) differs from the target torch computed")
        }
        for file in ["config.json", "tokenizer_config.json"] {
            #expect(try Data(contentsOf: out.appendingPathComponent(file))
                    == Data(contentsOf: root.appendingPathComponent("delta").appendingPathComponent(file)))
        }
    }

    @Test func applyDeltaNamesTheMismatchingTensor() throws {
        let out = TestTemporary.url("mirage-delta-bad")
        defer { try? FileManager.default.removeItem(at: out) }
        let root = Self.checkpoints.appendingPathComponent("delta")
        // Base and delta swapped: the "delta" has the smaller vocabulary.
        let swapped = try mirage(["models", "apply-delta", "--base", root.appendingPathComponent("delta").path,
                                  "--delta", root.appendingPathComponent("base").path, "--out", out.path])
        #expect(swapped.status != 0)
        #expect(swapped.stderr.contains("tensor 'lm_head.weight' has shape [24, 16] in the delta but [28, 16] in the base"),
                "\(swapped.stderr)")
        // A base of another model: the delta's tensors are missing from it.
        let other = try mirage(["models", "apply-delta", "--base", Self.checkpoints.appendingPathComponent("sharded-llama").path,
                                "--delta", root.appendingPathComponent("delta").path, "--out", out.path])
        #expect(other.status != 0)
        #expect(other.stderr.contains("tensor 'lm_head.weight' is in the delta but not in the base"), "\(other.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }
}
