import Foundation
import MirageKernels
import MirageTestSupport
import Testing
@testable import MirageEngine

/// `Q8Checkpoint` (`mirage models quantize --q8`): a pre-quantized folder loads by mapping and computes
/// exactly what `--quantize q8` computes at load.
@Suite struct Q8CheckpointTests {
    /// Untied f32 with GQA, tied f32, and bf16 fixtures.
    @Test(arguments: ["llama-gqa-f32", "qwen2-tied-f32", "llama-llama3-bf16"])
    func preQuantizedFolderEqualsQuantizingAtLoad(_ name: String) throws {
        let source = EngineFixtures.folder(name)
        let output = TestTemporary.url("q8-\(name)")
        let pool = WorkerPool(threadCount: 2)
        var calls = 0
        let summary = try Q8Checkpoint.write(from: source, to: output, pool: pool) { _, _ in calls += 1 }
        #expect(summary.quantizedMatrices > 0 && calls == summary.quantizedMatrices + summary.copiedTensors)
        #expect(summary.copiedFiles.contains("generation_config.json"))

        let written = try TensorStore(folder: output)
        #expect(written.isPreQuantized)
        #expect(!written.tensorNames.contains { $0.hasSuffix("q_proj.weight") })
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("config.json"))) as! [String: Any]
        #expect((config[Q8Checkpoint.configKey] as? [String: Any])?["method"] as? String == "q8")

        let atLoad = try LanguageModel(folder: source, options: LoadOptions(quantize: .q8, threads: 2))
        let mapped = try LanguageModel(folder: output, options: LoadOptions(threads: 2))
        #expect(mapped.weightFormat == .q8)
        #expect(mapped.weightBytesPerToken == atLoad.weightBytesPerToken)
        let prompt: [PromptItem] = [1, 5, 9, 2, 7, 3, 11, 4, 6, 8, 10, 12].map { .token($0) }
        let a = try atLoad.makeSession().append(prompt, options: ForwardOptions(logits: .all))
        let b = try mapped.makeSession().append(prompt, options: ForwardOptions(logits: .all))
        for row in prompt.indices {
            #expect(Array(a.logits(row)) == Array(b.logits(row)), "\(name): logits of row \(row) differ")
        }
        // The f32/bf16 model and its q8 copy disagree a little (quantization), so the comparison above is not vacuous.
        let full = try LanguageModel(folder: source, options: LoadOptions(threads: 2)).makeSession()
            .append(prompt, options: ForwardOptions(logits: .all))
        #expect(Array(full.logits(prompt.count - 1)) != Array(b.logits(prompt.count - 1)))
    }

    @Test func refusesToOverwriteOrToQuantizeTwice() throws {
        let source = EngineFixtures.folder("llama-gqa-f32")
        let output = TestTemporary.url("q8-twice")
        let pool = WorkerPool(threadCount: 1)
        _ = try Q8Checkpoint.write(from: source, to: output, pool: pool)
        #expect(throws: ModelError.self) { try Q8Checkpoint.write(from: source, to: output, pool: pool) }
        do { _ = try Q8Checkpoint.write(from: source, to: output, pool: pool) } catch {
            #expect("\(error)".contains("--force"))
        }
        _ = try Q8Checkpoint.write(from: source, to: output, replace: true, pool: pool)
        do { _ = try Q8Checkpoint.write(from: output, to: TestTemporary.url("q8-again"), pool: pool) } catch {
            #expect("\(error)".contains("already pre-quantized"))
        }
        // No partial folder is left beside the output.
        let siblings = try FileManager.default.contentsOfDirectory(atPath: output.deletingLastPathComponent().path)
        #expect(!siblings.contains { $0.hasPrefix(".\(output.lastPathComponent).partial-") })
    }

    /// The pages of a mapped matrix are handed back and read again correctly afterwards.
    @Test func releasedPagesReadBackUnchanged() throws {
        let store = try TensorStore(folder: EngineFixtures.folder("llama-gqa-f32"))
        let name = "lm_head.weight"
        let entry = try #require(store.entry(name))
        let matrix = try store.matrix(name, rows: entry.shape[0], cols: entry.shape[1])
        func rows() -> [[Float]] {
            (0..<matrix.rows).map { r in
                [Float](unsafeUninitializedCapacity: matrix.cols) { buffer, count in
                    matrix.copyRow(r, into: buffer.baseAddress!)
                    count = matrix.cols
                }
            }
        }
        let before = rows()
        matrix.releaseSourcePages()
        #expect(rows() == before)
    }
}
