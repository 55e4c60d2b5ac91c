import Foundation
import Testing
import MirageTestSupport
@testable import MirageEngine

/// NaN weights make the forward pass fail with a typed error naming the pass and position, instead of
/// producing logits every decoder would turn into an arbitrary (or empty) output.
@Suite struct NonFiniteLogitsTests {
    /// A tiny f32 synthetic model whose tensor `name` is overwritten with `value` (every element).
    static func modelFolder(poisoning name: String, with value: Float, seed: UInt64 = 4) throws -> URL {
        let dir = TestTemporary.url("mirage-nan")
        try SyntheticModelSpec(architecture: .llama, size: .tiny, seed: seed, dtype: .f32).write(to: dir)
        let path = dir.appendingPathComponent("model.safetensors").path
        let entry = try #require(try SafeTensorsFile(path: path).tensors[name])
        let values = [Float](repeating: value, count: entry.byteCount / 4)
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        try handle.seek(toOffset: UInt64(entry.fileOffset))
        handle.write(values.withUnsafeBytes { Data($0) })
        try handle.close()
        return dir
    }

    @Test func nanWeightsFailThePrefillWithTheirPosition() throws {
        let dir = try Self.modelFolder(poisoning: "model.norm.weight", with: .nan)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try LanguageModel(folder: dir, options: LoadOptions(threads: 1))
        let session = model.makeSession()
        do {
            try session.append([.token(1), .token(2), .token(3)])
            Issue.record("NaN weights gave logits")
        } catch let error as ModelError {
            guard case let .nonFiniteLogits(pass, sequence, position, _, value) = error else {
                Issue.record("\(error)"); return
            }
            #expect(pass == 1 && sequence == 0 && position == 2 && value == "nan")
            #expect(error.description.contains("forward pass 1"))
            #expect(error.description.contains("position 2"))
        }
    }

    @Test func infiniteWeightsFailADecodeStep() throws {
        // Infinite MLP weights overflow the last layer's output, so the logits come out NaN.
        let dir = try Self.modelFolder(poisoning: "model.layers.1.mlp.down_proj.weight", with: .infinity)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try LanguageModel(folder: dir, options: LoadOptions(threads: 1))
        let session = model.makeSession()
        #expect(throws: ModelError.self) { try session.append([.token(5)]) }
        #expect(session.passCount == 1)
    }

    @Test func finiteLogitsPassAndTheScanFindsTheFirstBadValue() throws {
        let dir = try Self.modelFolder(poisoning: "model.norm.weight", with: 1)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try LanguageModel(folder: dir, options: LoadOptions(threads: 1))
        let session = model.makeSession()
        try session.append([.token(1), .token(2)])
        try session.step([7])
        #expect(session.passCount == 2)
        var values = [Float](repeating: 0.5, count: 100)
        #expect(Session.firstNonFinite(values) == nil)
        values[37] = -.infinity
        values[90] = .nan
        let found = try #require(Session.firstNonFinite(values))
        #expect(found.0 == 37 && found.1 == -.infinity)
        // Large finite values whose sum overflows are not reported.
        #expect(Session.firstNonFinite([Float](repeating: .greatestFiniteMagnitude, count: 33)) == nil)
    }
}
