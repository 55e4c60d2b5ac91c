import Foundation
import Testing
import MirageTestSupport
import MirageDecoding
@testable import MirageEngine

/// Every decoder stops with the engine's `nonFiniteLogits` error on a model with NaN weights, instead of
/// returning an empty or arbitrary output (which CHAIR would score as a perfect caption).
@Suite struct NonFiniteDecodingTests {
    @Test(arguments: ["greedy", "sample", "beam", "opera", "dola"])
    func decoderFailsOnNaNWeights(_ name: String) throws {
        let dir = TestTemporary.url("mirage-nan-decoder")
        defer { try? FileManager.default.removeItem(at: dir) }
        try SyntheticModelSpec(architecture: .llama, size: .tiny, seed: 6, dtype: .f32).write(to: dir)
        let path = dir.appendingPathComponent("model.safetensors").path
        let entry = try #require(try SafeTensorsFile(path: path).tensors["model.norm.weight"])
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        try handle.seek(toOffset: UInt64(entry.fileOffset))
        handle.write([Float](repeating: .nan, count: entry.byteCount / 4).withUnsafeBytes { Data($0) })
        try handle.close()

        let model = try LanguageModel(folder: dir, options: LoadOptions(threads: 1))
        let decoder = try DecoderRegistry.standard.makeDecoder(name, preset: nil, overrides: [])
        let context = DecodingContext(model: model, prompt: PromptLayout(items: [1, 2, 3, 4].map { .token($0) }, imageSpan: 1..<3),
                                      limits: GenerationLimits(maxNewTokens: 4))
        do {
            let result = try decoder.decode(context)
            Issue.record("\(name) decoded \(result.tokens) from NaN logits")
        } catch let error as ModelError {
            guard case .nonFiniteLogits = error else { Issue.record("\(name): \(error)"); return }
        }
    }
}
