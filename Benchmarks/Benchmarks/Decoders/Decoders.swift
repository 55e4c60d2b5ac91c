import Benchmark
import Foundation
import MirageBenchSupport
import MirageDecoding
import MirageEngine

/// The decoders on the prompt of `mirage-bench decoders` (32 random text ids around 64 random image rows,
/// Qwen2-0.5B-shaped model, bf16), 16 new tokens each with EOS ignored: greedy, beam search (5 beams),
/// OPERA and VCD. The model is synthesized once into BenchmarkSupport.modelCache (~1 GB) and reused.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .cpuTotal], warmupIterations: 0,
                                           maxDuration: .seconds(6), maxIterations: 5)
    let model = PromptModel()
    let entries: [(String, () -> any Decoder)] = [
        ("greedy", { GreedyDecoder() }),
        ("beam 5", { BeamSearchDecoder(numBeams: 5) }),
        ("opera", { OperaDecoder() }),
        ("vcd", { VCDDecoder() }),
    ]
    for (label, make) in entries {
        Benchmark("\(label): 16 new tokens, 96-row prompt") { benchmark in
            let (lm, prompt, branches) = try model.get()
            let decoder = make()
            let context = DecodingContext(model: lm, prompt: prompt, branches: branches,
                                          limits: GenerationLimits(maxNewTokens: 16, eosTokenIDs: []),
                                          randomKey: RandomKey(seed: 0, item: "bench"))
            benchmark.startMeasurement()
            let result = try decoder.decode(context)
            benchmark.stopMeasurement()
            blackHole(result.tokens)
        }
    }
}

/// The model and prompt, made when a benchmark first needs them.
final class PromptModel {
    private var value: (LanguageModel, PromptLayout, [String: PromptLayout])?

    func get() throws -> (LanguageModel, PromptLayout, [String: PromptLayout]) {
        if let value { return value }
        let lm = try LanguageModel(folder: try BenchmarkSupport.qwen2HalfB(.bf16),
                                   options: LoadOptions(threads: BenchmarkSupport.threads))
        let (prompt, branches) = try BenchmarkSupport.decoderPrompt(lm, textTokens: 32, imageRows: 64)
        value = (lm, prompt, branches)
        return (lm, prompt, branches)
    }
}
