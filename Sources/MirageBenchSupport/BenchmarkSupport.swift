import Foundation
import MirageDecoding
import MirageEngine
import MirageKernels

/// What `mirage-bench` and the package-benchmark suite in Benchmarks/ share, so both measure the same work:
/// synthesized models kept between runs, the decoder benchmarks' prompt, random weight matrices, and the
/// repository's reference data.
public enum BenchmarkSupport {
    /// Worker threads for every benchmark: the machine's cores, as `mirage` uses by default.
    public static let threads = ProcessInfo.processInfo.activeProcessorCount

    /// The repository root, from where this file was compiled (Sources/MirageBenchSupport/BenchmarkSupport.swift).
    public static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The reference data next to the repository (`../shared/data`), as the tests look for it; nil when absent.
    public static var sharedData: URL? {
        let url = repository.deletingLastPathComponent().appendingPathComponent("shared/data")
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }

    /// Folder where synthesized models are kept between runs: `$MIRAGE_BENCHMARK_MODELS`, else
    /// `~/.cache/mirage/benchmark-models`. A Qwen2-0.5B-shaped f16 model takes ~1 GB; delete the folder to
    /// free it (the next run synthesizes it again).
    public static var modelCache: URL {
        if let dir = ProcessInfo.processInfo.environment["MIRAGE_BENCHMARK_MODELS"], !dir.isEmpty {
            return URL(fileURLWithPath: dir)
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/mirage/benchmark-models")
    }

    /// A synthesized model folder, written once into `folder` (default `modelCache`) and reused. Written
    /// beside and renamed when complete, so an interrupted run never leaves a short file.
    public static func syntheticModel(_ spec: SyntheticModelSpec, name: String, in folder: URL = modelCache) throws -> URL {
        let url = folder.appendingPathComponent(name)
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("model.safetensors").path) { return url }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        FileHandle.standardError.write(Data("synthesizing \(url.path) (once)…\n".utf8))
        let partial = url.appendingPathExtension("partial")
        try? FileManager.default.removeItem(at: partial)
        try spec.write(to: partial)
        try? FileManager.default.removeItem(at: url)
        try FileManager.default.moveItem(at: partial, to: url)
        return url
    }

    /// The Qwen2-0.5B-shaped model (seed 0) `mirage-bench engine` and `decoders` measure, stored as `dtype`
    /// (f32, f16 or bf16).
    public static func qwen2HalfB(_ dtype: TensorDType, in folder: URL = modelCache) throws -> URL {
        let name = dtype == .f32 ? "f32" : dtype == .f16 ? "f16" : "bf16"
        return try syntheticModel(SyntheticModelSpec(architecture: .qwen2, size: .halfB, seed: 0, dtype: dtype),
                                  name: "qwen2-0.5b-\(name)-seed0", in: folder)
    }

    /// A fresh temporary folder; the caller removes it.
    public static func temporaryFolder(_ prefix: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// The prompt of `mirage-bench decoders`: seeded random text ids around an image span of random
    /// embedding rows (scaled like the model's embeddings), plus the contrast (other image rows) and
    /// unconditional (text only) branches the contrastive decoders use.
    public static func decoderPrompt(_ lm: LanguageModel, textTokens: Int, imageRows: Int) throws
        -> (PromptLayout, [String: PromptLayout]) {
        var state: UInt64 = 0x5EED
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        let vocab = lm.config.vocabSize
        let text = (0..<textTokens).map { _ in Int(next() % UInt64(min(vocab, 30000))) }
        let scale = try lm.embedding(of: text[0]).map { $0 * $0 }.reduce(0, +).squareRoot()
            / Float(lm.config.hiddenSize).squareRoot()
        func image() -> [PromptItem] {
            (0..<imageRows).map { _ in
                .embedding((0..<lm.config.hiddenSize).map { _ in (Float(next() % 2001) / 1000 - 1) * scale * 1.7 })
            }
        }
        let before = text.prefix(textTokens / 2).map { PromptItem.token($0) }
        let after = text.suffix(from: textTokens / 2).map { PromptItem.token($0) }
        let span = before.count..<(before.count + imageRows)
        let main = PromptLayout(items: before + image() + after, imageSpan: span)
        let contrast = PromptLayout(items: before + image() + after, imageSpan: span)
        return (main, ["contrast": contrast, "unconditional": PromptLayout(items: before + after)])
    }

    /// A weight matrix of uniform values in ±0.05 (xorshift: the values only need to be finite and varied),
    /// in `format`; q8 is quantized from f16, as loading an f16 checkpoint with `--quantize q8` does. Values
    /// are made 4,096 at a time, so an LM-head-sized matrix needs no float copy of itself.
    public static func randomMatrix(rows: Int, cols: Int, format: WeightFormat, seed: UInt32) -> WeightMatrix {
        let count = rows * cols
        let stored: WeightFormat = format == .q8 ? .f16 : format
        let buffer = AlignedBuffer(byteCount: count * stored.bytesPerElement)
        let chunk = 4096
        let values = UnsafeMutablePointer<Float>.allocate(capacity: chunk)
        defer { values.deallocate() }
        var state = seed | 1
        var start = 0
        while start < count {
            let length = min(chunk, count - start)
            for i in 0..<length {
                state ^= state << 13; state ^= state >> 17; state ^= state << 5
                values[i] = (Float(state >> 8) / Float(1 << 24) - 0.5) * 0.1
            }
            let destination = buffer.pointer + start * stored.bytesPerElement
            switch stored {
            case .f32: destination.copyMemory(from: values, byteCount: length * 4)
            case .f16: Kernels.convertF32ToF16(values, count: length, into: destination)
            case .bf16, .q8: Kernels.convertF32ToBF16(values, count: length, into: destination)
            }
            start += length
        }
        let matrix = WeightMatrix(rows: rows, cols: cols, format: stored, data: buffer.pointer, owner: buffer)
        return format == .q8 ? matrix.quantizedQ8() : matrix
    }
}
