import ArgumentParser
import Foundation
import MirageBenchSupport
import MirageCLISupport
import MirageEngine
import MirageKernels

/// `mirage-bench engine`: decode and prefill speed of the language-model core against this machine's limits.
struct BenchEngine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Measure decode and prefill speed of the language-model engine.",
        discussion: """
        Without --model, synthesizes a Qwen2-0.5B-shaped model (f16 and bf16, seed 0) into --work-dir once \
        and reuses it; q8 is the f16 model quantized at load. For each weight format it reports:
          decode     tokens/s of single-sequence greedy steps, and the weight bytes streamed per second as a \
        fraction of DRAM bandwidth (\(Int(Self.bandwidth / 1e9)) GB/s): the decode roofline.
          batch-5    time of one step advancing 5 sequences divided by a single-sequence step (1.0 = free beams).
          prefill    a \(576)-token prompt in one pass: GFLOPS by wall time and by process CPU time (all threads), \
        each as a fraction of the f32 peak: the FMA ceiling measured in this process (`Kernels.measureFMACeiling`, \
        a short FMA loop timed by thread CPU time, per core × --threads), or --ceiling. On a shared machine the \
        CPU-time share stays comparable across load; the wall-time one does not.
        Build with `swift build -c release` first; on a shared machine numbers vary from run to run.

        Examples:
          mirage-bench engine
          mirage-bench engine --model ~/models/Qwen2-0.5B --formats f32,q8 --decode-tokens 64
          mirage-bench engine --formats q8 --precision fast      # q8 with int8 dot products (vpdpbusd)
        """)

    /// The decode roofline's DRAM bandwidth (measured on the 2-core Zen 5 machine these benches were first run
    /// on; the prefill's f32 peak is measured in the process instead, `Kernels.measureFMACeiling`).
    static let bandwidth = 45e9

    @Option(name: .long, help: ArgumentHelp("Model folder to measure (default: a synthesized Qwen2-0.5B).", valueName: "dir"))
    var model: String?

    @Option(name: .long, help: ArgumentHelp("Where synthesized models are kept between runs (~1 GB each; delete the folder to free it). Default: $MIRAGE_BENCHMARK_MODELS, else ~/.cache/mirage/benchmark-models.", valueName: "dir"))
    var workDir = BenchmarkSupport.modelCache.path

    @Option(name: .long, help: ArgumentHelp("Weight formats to measure (with --model: the checkpoint's own and/or q8).", valueName: "list"))
    var formats = "f16,bf16,q8"

    @Option(name: .long, help: "Timed decode steps per format.")
    var decodeTokens = 32

    @Option(name: .long, help: "Prompt length of the prefill measurement.")
    var prefillTokens = 576

    @Option(name: .long, help: "Worker threads.")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    @Option(name: .long, help: ArgumentHelp("exact (default) or fast: the engine's --precision (fast: bf16 dot products for bf16 and f16 weights where they beat f32 FMAs, int8 dot products for q8).", valueName: "exact|fast"))
    var precision = "exact"

    @Option(name: .long, help: ArgumentHelp("f32 FMA ceiling of all threads in GFLOP/s, the prefill's peak (default: measured here).", valueName: "gflops"))
    var ceiling: Double?

    @Flag(name: .long, help: "Print one tab-separated line per format (format, decode tok/s, prefill tok/s, batch-5 ratio) for scripts such as Benchmarks/side-by-side.")
    var tsv = false

    func validate() throws {
        let known = Set(["f32", "f16", "bf16", "q8"])
        for f in formatList where !known.contains(f) {
            throw ValidationError("--formats takes a comma-separated list of f32, f16, bf16, q8 (got '\(f)')")
        }
        if Precision(rawValue: precision) == nil {
            throw ValidationError("--precision takes exact or fast (got '\(precision)')")
        }
        if let ceiling, ceiling <= 0 { throw ValidationError("--ceiling must be positive GFLOP/s (e.g. 345), or left out to measure it") }
        if decodeTokens < 2 || prefillTokens < 1 { throw ValidationError("--decode-tokens must be ≥ 2 and --prefill-tokens ≥ 1") }
    }

    var formatList: [String] { formats.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }

    func folder(for format: String) throws -> (URL, WeightFormat?) {
        if let model { return (URL(fileURLWithPath: (model as NSString).expandingTildeInPath), format == "q8" ? .q8 : nil) }
        let stored: TensorDType = format == "q8" || format == "f16" ? .f16 : format == "f32" ? .f32 : .bf16
        let url = try BenchmarkSupport.qwen2HalfB(stored, in: URL(fileURLWithPath: workDir))
        return (url, format == "q8" ? .q8 : nil)
    }

    func run() throws {
        var peakFlops = 0.0
        if tsv {
            print("format\tdecode_tok_s\tprefill_tok_s\tbatch5_ratio")
        } else {
            let perCore = Kernels.measureFMACeiling()
            peakFlops = (ceiling ?? perCore * Double(threads)) * 1e9
            print(String(format: "f32 peak %.1f GFLOPS: %@", peakFlops / 1e9,
                         (ceiling == nil ? String(format: "FMA ceiling measured here, %.1f per core by thread CPU time × %d threads", perCore, threads)
                                         : String(format: "--ceiling (measured here: %.1f per core)", perCore)) as NSString))
            print("decode: median steps (best step); batch-5: median 5-row step / median 1-row step; prefill: best of 2 (wall; CPU time of that run)")
            print("format  load s  decode tok/s (best)   GB/s  of \(Int(Self.bandwidth / 1e9)) GB/s            batch-5  prefill \(prefillTokens) tok/s  GFLOPS  of peak  CPU GFLOPS  of peak")
        }
        for format in formatList {
            let (url, quantize) = try folder(for: format)
            let loadStart = now()
            let lm = try LanguageModel(folder: url, options: LoadOptions(quantize: quantize, threads: threads,
                                                                     precision: Precision(rawValue: precision)!))
            let loadSeconds = now() - loadStart
            let c = lm.config
            let prompt: [PromptItem] = (0..<8).map { .token(($0 * 7919) % c.vocabSize) }

            // Decode: one sequence, one token per step; every step timed on its own.
            let session = lm.makeSession()
            var logits = try session.append(prompt)
            for _ in 0..<2 { logits = try session.step([argmax(logits.logits(0))]) }
            var single: [Double] = []
            for _ in 0..<decodeTokens {
                let t = now()
                logits = try session.step([argmax(logits.logits(0))])
                single.append(now() - t)
            }
            let stepSeconds = Self.median(single)
            let bytesPerSecond = Double(lm.weightBytesPerToken) / stepSeconds
            let bestBytesPerSecond = Double(lm.weightBytesPerToken) / single.min()!

            // Batch of 5: five sequences advanced together.
            let beams = lm.makeSession()
            try beams.append(prompt)
            for _ in 0..<4 { beams.fork(0) }
            try beams.step([1, 2, 3, 4, 5])
            var batched: [Double] = []
            for i in 0..<max(2, decodeTokens / 2) {
                let t = now()
                try beams.step((0..<5).map { ($0 * 31 + i) % c.vocabSize })
                batched.append(now() - t)
            }
            let batchRatio = Self.median(batched) / stepSeconds

            // Prefill: best of two.
            let long: [PromptItem] = (0..<prefillTokens).map { .token(($0 * 104_729 + 11) % c.vocabSize) }
            var prefillSeconds = Double.infinity, prefillCPU = Double.infinity
            for _ in 0..<2 {
                let t = now(), cpu = cpuSeconds()
                try lm.makeSession().append(long)
                if now() - t < prefillSeconds { (prefillSeconds, prefillCPU) = (now() - t, cpuSeconds() - cpu) }
            }
            let flops = Self.prefillFlops(c, tokens: prefillTokens)

            if tsv {
                print(String(format: "%@\t%.3f\t%.3f\t%.3f", format as NSString, 1 / stepSeconds,
                             Double(prefillTokens) / prefillSeconds, batchRatio))
                fflush(stdout)
                continue
            }
            // By CPU time the work is spread over `threads` cores, so its rate is compared with the same peak.
            let cpuFlops = flops / prefillCPU * Double(threads)
            print(String(format: "%-6@ %7.2f %8.1f (%5.1f) %6.1f %6.1f%% (best %5.1f%%) %10.2f %18.1f %7.1f %7.1f%% %11.1f %7.1f%%",
                         format as NSString, loadSeconds, 1 / stepSeconds, 1 / single.min()!, bytesPerSecond / 1e9,
                         100 * bytesPerSecond / Self.bandwidth, 100 * bestBytesPerSecond / Self.bandwidth, batchRatio,
                         Double(prefillTokens) / prefillSeconds, flops / prefillSeconds / 1e9,
                         100 * flops / prefillSeconds / peakFlops, cpuFlops / 1e9, 100 * cpuFlops / peakFlops))
            fflush(stdout)
        }
        if !tsv { print("(weights per token: projections + LM head; machine shared with other jobs: expect variance)") }
    }

    /// Multiply-adds ×2 of a prefill: every projection for every token, causal attention (q·k and p·v over
    /// the keys each query sees), and the LM head for the last token only.
    static func prefillFlops(_ c: ModelConfig, tokens n: Int) -> Double {
        let h = Double(c.hiddenSize), i = Double(c.intermediateSize)
        let q = Double(c.numHeads * c.headDim), kv = Double(c.numKVHeads * c.headDim)
        let perToken = h * q + 2 * h * kv + q * h + 3 * h * i
        let attention = 2 * q * Double(n) * Double(n + 1) / 2
        return Double(c.numLayers) * 2 * (perToken * Double(n) + attention) + 2 * h * Double(c.vocabSize)
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted[sorted.count / 2]
    }

    func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}
