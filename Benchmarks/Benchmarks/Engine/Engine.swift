import Benchmark
import Foundation
import MirageBenchSupport
import MirageEngine
import MirageKernels

/// The language-model engine on the Qwen2-0.5B-shaped synthesized model `mirage-bench engine` measures
/// (f16, and q8 quantized at load): 8 decode steps of one sequence, 4 steps of 5 sequences, a 128-token
/// prefill. The model is synthesized once into BenchmarkSupport.modelCache (~1 GB) and reused.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .cpuTotal, .peakMemoryResident],
                                           warmupIterations: 1, maxDuration: .seconds(4), maxIterations: 20)
    for quantize in [nil, WeightFormat.q8] {
        let label = quantize == nil ? "f16" : "q8"
        let model = Loaded(quantize: quantize)

        Benchmark("decode \(label): 8 steps, 1 sequence") { benchmark in
            let lm = try model.get()
            let session = lm.makeSession()
            var logits = try session.append(prompt(lm, 8))
            benchmark.startMeasurement()
            for _ in 0..<8 { logits = try session.step([argmax(logits.logits(0))]) }
            benchmark.stopMeasurement()
        }

        Benchmark("batch-5 \(label): 4 steps of 5 sequences") { benchmark in
            let lm = try model.get()
            let session = lm.makeSession()
            try session.append(prompt(lm, 8))
            for _ in 0..<4 { session.fork(0) }
            benchmark.startMeasurement()
            for step in 0..<4 { try session.step((0..<5).map { ($0 * 31 + step) % lm.config.vocabSize }) }
            benchmark.stopMeasurement()
        }

        Benchmark("prefill \(label): 128 tokens") { benchmark in
            let lm = try model.get()
            let long = prompt(lm, 128)
            benchmark.startMeasurement()
            try lm.makeSession().append(long)
            benchmark.stopMeasurement()
        }
    }
}

/// Deterministic token ids spread over the vocabulary.
func prompt(_ lm: LanguageModel, _ count: Int) -> [PromptItem] {
    (0..<count).map { .token(($0 * 104_729 + 11) % lm.config.vocabSize) }
}

/// The model, loaded when a benchmark first needs it.
final class Loaded {
    let quantize: WeightFormat?
    private var model: LanguageModel?

    init(quantize: WeightFormat?) { self.quantize = quantize }

    func get() throws -> LanguageModel {
        if let model { return model }
        let folder = try BenchmarkSupport.qwen2HalfB(.f16)
        let loaded = try LanguageModel(folder: folder, options: LoadOptions(quantize: quantize, threads: BenchmarkSupport.threads))
        model = loaded
        return loaded
    }
}
