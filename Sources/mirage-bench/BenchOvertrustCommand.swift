import ArgumentParser
import Foundation
import MirageAnalysis
import MirageBenchSupport
import MirageCLISupport
import MirageDecoding
import MirageEngine
import MirageKernels
import MirageStore

/// `mirage-bench overtrust`: the cost of recording attention (next to the greedy decode it follows),
/// detecting summary tokens, storing the map and rendering its heatmap.
struct BenchOvertrust: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "overtrust",
        abstract: "Time attention capture, summary-token detection, the attention store and the heatmap.",
        discussion: """
        Uses the Qwen2-0.5B-shaped random model of `mirage-bench engine` (or --model) and the prompt of \
        `mirage-bench decoders` (random text ids around --image-rows random embedding rows). A greedy decode of \
        --new-tokens tokens (EOS ignored) gives the response; capture is one teacher-forced pass over prompt + \
        response with the last layer's attention. Capture prints its GFLOPS (projections, MLP and attention of \
        every layer, no LM head), by wall and by CPU time, the CPU-time figure as a share of the f32 FMA ceiling \
        measured in the same process (`Kernels.measureFMACeiling`, per core by thread CPU time, × threads; as \
        `mirage-bench blip2`), and its time as a ratio to the greedy decode. Build with `swift build -c release` \
        first.

        Examples:
          mirage-bench overtrust
          mirage-bench overtrust --new-tokens 512 --image-rows 576 --repeats 3
        """)

    @Option(name: .long, help: ArgumentHelp("Model folder (default: the synthesized Qwen2-0.5B, bf16).", valueName: "dir"))
    var model: String?
    @Option(name: .long, help: ArgumentHelp("Where `mirage-bench engine` keeps synthesized models between runs (~1 GB each; delete the folder to free it).", valueName: "dir"))
    var workDir = BenchmarkSupport.modelCache.path
    @Option(name: .long, help: "Response tokens.") var newTokens = 256
    @Option(name: .long, help: "Text tokens of the prompt.") var textTokens = 32
    @Option(name: .long, help: "Image embedding rows of the prompt.") var imageRows = 576
    @Option(name: .long, help: "Repeat each measurement and keep the fastest (the machine is shared).") var repeats = 1
    @Option(name: .long, help: "Worker threads.") var threads = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        if repeats < 1 || newTokens < 2 || textTokens < 2 || imageRows < 1 {
            throw ValidationError("--repeats ≥ 1, --new-tokens ≥ 2, --text-tokens ≥ 2 and --image-rows ≥ 1")
        }
    }

    func run() throws {
        try runReportingErrors {
            let folder = try model.map { URL(fileURLWithPath: ($0 as NSString).expandingTildeInPath) }
                ?? BenchEngine.parse(["--work-dir", workDir]).folder(for: "bf16").0
            let lm = try LanguageModel(folder: folder, options: LoadOptions(threads: threads))
            let (prompt, _) = try BenchDecoders.parse(["--text-tokens", String(textTokens), "--image-rows", String(imageRows)])
                .benchPrompt(lm)
            func best<T>(_ body: () throws -> T) rethrows -> (T, Double) {
                var result: (T, Double)? = nil
                for _ in 0..<repeats {
                    let r = try timed(body)
                    if result == nil || r.1 < result!.1 { result = r }
                }
                return result!
            }
            let (decoded, decodeSeconds) = try best {
                try GreedyDecoder().decode(DecodingContext(model: lm, prompt: prompt,
                                                           limits: GenerationLimits(maxNewTokens: newTokens, eosTokenIDs: [])))
            }
            var captureCPU = Double.infinity
            let (map, captureSeconds) = try best {
                let start = cpuSeconds()
                defer { captureCPU = min(captureCPU, cpuSeconds() - start) }
                return try AttentionCapture().capture(model: lm, prompt: prompt, response: decoded.tokens, tokenizer: nil)
            }
            let detector = try SummaryTokenDetector()
            let (detection, detectSeconds) = best { detector.detect(map) }
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mirage-bench-overtrust-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: dir) }
            let store = try RunStores.open(dir.appendingPathComponent("runs.sqlite").path)
            let (run, _) = try store.createRun(NewRun(evalProtocol: EvalProtocol(task: .chair, imageIDs: [1], maxNewTokens: newTokens),
                                                      model: ModelSpec(name: "bench"), decoder: DecoderSpec(name: "greedy"),
                                                      mirageVersion: MirageVersion.string))
            try store.recordItem(run: run.id, NewItem(key: "1", ordinal: 0, outputText: "", outputTokens: decoded.tokens))
            let (_, storeSeconds) = try best { try store.recordAttention(run: run.id, itemKey: "1", map.stored) }
            let (_, loadSeconds) = try best { try AttentionMap(try store.attention(run: run.id, itemKey: "1")!) }
            let (png, renderSeconds) = try best {
                try OvertrustFigures.heatmap(map, summary: detection.tokens, hallucinated: [], title: "bench").png().png
            }

            let c = lm.config
            let q = c.numHeads * c.headDim, kv = c.numKVHeads * c.headDim
            let layerParams = Double(c.hiddenSize * (q + 2 * kv) + q * c.hiddenSize + 3 * c.hiddenSize * c.intermediateSize)
            let R = prompt.responseStart, n = map.count
            let rows = Double(R + n)
            let keys = Double((R + n) * (R + n + 1) / 2)      // causal (query, key) pairs over the whole pass
            let flops = Double(c.numLayers) * (2 * layerParams * rows + 4 * Double(q) * keys)
            let gflops = flops / captureSeconds / 1e9
            let owned = flops / (captureCPU / Double(threads)) / 1e9
            let perCore = Kernels.measureFMACeiling()
            let peak = perCore * Double(threads)
            print("model \(folder.lastPathComponent) (\(lm.weightFormat)), prompt \(R) rows, \(n) response tokens, \(threads) threads")
            print(String(format: "greedy decode        %8.3f s", decodeSeconds))
            print(String(format: "attention capture    %8.3f s   %.1f GFLOPS wall; by CPU time (%.3f s over %d threads) %.1f GFLOPS "
                         + "= %.0f%% of the %.0f GFLOPS f32 FMA ceiling (measured here, %.1f per core); %.2f× the greedy decode",
                         captureSeconds, gflops, captureCPU, threads, owned, owned / peak * 100, peak, perCore,
                         captureSeconds / decodeSeconds))
            print(String(format: "summary detection    %8.2f ms  (%d columns found)", detectSeconds * 1e3, detection.tokens.count))
            print(String(format: "store write / read   %8.2f / %.2f ms  (%.2f MB blob)", storeSeconds * 1e3, loadSeconds * 1e3,
                         Double(map.stored.data.count) / 1e6))
            print(String(format: "heatmap PNG          %8.2f ms  (%.0f KB)", renderSeconds * 1e3, Double(png.count) / 1e3))
        }
    }
}
