import Foundation
import Testing
import MirageTestSupport
@testable import MirageRunner

/// A model folder of PyTorch checkpoints gets a store identity from its weights, not only from config.json.
@Suite struct ModelFingerprintCheckpointTests {
    static let checkpoints = SharedData.repositoryRoot.appendingPathComponent("Tests/MirageEngineTests/Fixtures/checkpoints")

    /// A folder with `config.json` and one checkpoint copied in as `weights.pth`.
    static func folder(with checkpoint: String) throws -> URL {
        let dir = TestTemporary.url("mirage-fingerprint")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data(#"{"model_type": "llama"}"#.utf8).write(to: dir.appendingPathComponent("config.json"))
        try FileManager.default.copyItem(at: checkpoints.appendingPathComponent(checkpoint), to: dir.appendingPathComponent("weights.pth"))
        return dir
    }

    @Test func pytorchWeightsEnterTheFingerprint() throws {
        let a = try Self.folder(with: "state.pth"), b = try Self.folder(with: "v3.pth")
        defer { for d in [a, b] { try? FileManager.default.removeItem(at: d) } }
        let fa = try ModelFingerprint.compute(folder: a)
        #expect(fa == (try ModelFingerprint.compute(folder: a)))
        #expect(fa != (try ModelFingerprint.compute(folder: b)), "same config.json, different checkpoints, same identity")
        let sharded = try ModelFingerprint.compute(folder: Self.checkpoints.appendingPathComponent("sharded-llama"))
        #expect(sharded.count == 64)
    }
}
