import ArgumentParser
import Foundation
import MirageBenchSupport
import MirageDecoding
import MirageEngine

/// One measured decoder of `mirage-bench decoders`, optionally compared with a baseline entry.
struct DecoderBenchmark {
    /// Label printed and used as a baseline name.
    var label: String
    var make: () throws -> any Decoder
    /// Label of the entry this one is compared with, and the largest wall-time ratio the decoder's
    /// cost target allows (docs/decoders.md).
    var baseline: String?
    var limit: Double?
}

/// `mirage-bench decoders`: wall time of each decoder on one prompt, as a ratio to its baseline.
struct BenchDecoders: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decoders",
        abstract: "Time the decoders (greedy, beam, OPERA, VCD, ...) on a Qwen2-0.5B-shaped model and print their cost ratios.",
        discussion: """
        Without --model, uses the Qwen2-0.5B-shaped random model `mirage-bench engine` synthesizes (bf16, seed 0; \
        made once in --work-dir). The prompt is --text-tokens random token ids around an "image" span of \
        --image-rows random embedding rows; each decoder gets the branches it declares: the prompt's text-only \
        form, or for a transformed image or changed instruction a prompt of the same shape whose image rows are \
        different random rows. EOS is ignored so every \
        decoder generates exactly --new-tokens tokens. Each entry prints prefill and decode wall time, forward \
        passes and rows, and its total wall time as a ratio to its baseline entry, against the decoder's cost \
        target (e.g. OPERA ≤ 2× beam search, VCD ≤ 2.2× greedy; docs/decoders.md). Build with \
        `swift build -c release` first; the machine is shared, so repeat for stable numbers.

        Examples:
          mirage-bench decoders
          mirage-bench decoders --repeats 3
          mirage-bench decoders --new-tokens 32 --only greedy,beam
        """)

    /// Every entry, in run order. Decoder engineers add theirs here, one line each (baselines first).
    static let entries: [DecoderBenchmark] = [
        DecoderBenchmark(label: "greedy", make: { GreedyDecoder() }),
        DecoderBenchmark(label: "sample", make: { SamplingDecoder() }, baseline: "greedy", limit: 1.1),
        DecoderBenchmark(label: "beam", make: { BeamSearchDecoder(numBeams: 5) }),
        DecoderBenchmark(label: "opera", make: { OperaDecoder() }, baseline: "beam", limit: 2.0),
        DecoderBenchmark(label: "vcd", make: { try VCDDecoder.descriptor.makeDecoder() }, baseline: "greedy", limit: 2.2),
        DecoderBenchmark(label: "apc", make: { try PlausibilityCutoffDecoder.descriptor.makeDecoder() }, baseline: "greedy", limit: 1.1),
        DecoderBenchmark(label: "dola", make: { try DoLaDecoder.descriptor.makeDecoder() }, baseline: "greedy", limit: nil),
        // The paper's anchors 20..<29 of 32 layers, scaled to Qwen2-0.5B's 24.
        DecoderBenchmark(label: "deco", make: { try DeCoDecoder.descriptor.makeDecoder(overrides: [("start_layer", "15"), ("end_layer", "22")]) },
                         baseline: "greedy", limit: nil),
        DecoderBenchmark(label: "icd", make: { try ICDDecoder.descriptor.makeDecoder() }, baseline: "greedy", limit: nil),
        DecoderBenchmark(label: "m3id", make: { try M3IDDecoder.descriptor.makeDecoder() }, baseline: "greedy", limit: nil),
        // PAI, VISTA, SID at their published settings, layers scaled to the 24-layer Qwen2-0.5B (VISTA's 25–30 of 32
        // → 18–22; SID keeps 100 of 576 vision tokens → 11 of the 64 image rows).
        DecoderBenchmark(label: "pai", make: { PAIDecoder() }, baseline: "greedy", limit: nil),
        DecoderBenchmark(label: "vista", make: { VISTADecoder(logitsLayers: [18, 22]) }, baseline: "greedy", limit: nil),
        DecoderBenchmark(label: "sid", make: { SIDDecoder(attentionRank: 11) }, baseline: "greedy", limit: nil),
    ]

    @Option(name: .long, help: ArgumentHelp("Model folder (default: the synthesized Qwen2-0.5B).", valueName: "dir"))
    var model: String?

    @Option(name: .long, help: ArgumentHelp("Where `mirage-bench engine` keeps synthesized models between runs (~1 GB each; delete the folder to free it).", valueName: "dir"))
    var workDir = BenchmarkSupport.modelCache.path

    @Option(name: .long, help: "Quantize at load (q8) or run the checkpoint's dtype.")
    var quantize: String?

    @Option(name: .long, help: "New tokens per decoder.")
    var newTokens = 128

    @Option(name: .long, help: "Text tokens of the prompt (split around the image span).")
    var textTokens = 32

    @Option(name: .long, help: "Image embedding rows of the prompt.")
    var imageRows = 64

    @Option(name: .long, help: ArgumentHelp("Run only these entries (comma-separated labels; baselines are added).", valueName: "list"))
    var only: String?

    @Option(name: .long, help: "Rounds over all entries; each entry keeps its fastest round (the machine is shared: use 3).")
    var repeats = 1

    @Option(name: .long, help: "Worker threads.")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        if repeats < 1 { throw ValidationError("--repeats must be at least 1") }
        if newTokens < 2 { throw ValidationError("--new-tokens must be at least 2") }
        if textTokens < 2 || imageRows < 0 { throw ValidationError("--text-tokens must be ≥ 2 and --image-rows ≥ 0") }
        if let quantize, quantize != "q8" { throw ValidationError("--quantize takes q8") }
        if let only {
            let labels = Set(Self.entries.map(\.label))
            for l in only.split(separator: ",").map(String.init) where !labels.contains(l) {
                throw ValidationError("--only: no entry '\(l)'; entries are \(Self.entries.map(\.label).joined(separator: ", "))")
            }
        }
    }

    func run() throws {
        let folder: URL
        if let model {
            folder = URL(fileURLWithPath: (model as NSString).expandingTildeInPath)
        } else {
            folder = try BenchEngine.parse(["--work-dir", workDir]).folder(for: "bf16").0
        }
        let lm = try LanguageModel(folder: folder, options: LoadOptions(quantize: quantize == "q8" ? .q8 : nil, threads: threads))
        let (prompt, branches) = try benchPrompt(lm)
        var wanted = Set(only.map { $0.split(separator: ",").map(String.init) } ?? Self.entries.map(\.label))
        for e in Self.entries where wanted.contains(e.label) { if let b = e.baseline { wanted.insert(b) } }
        print("model \(folder.lastPathComponent) (\(lm.weightFormat)), prompt \(prompt.items.count) rows "
              + "(image \(prompt.imageSpan.map { "\($0.lowerBound)..<\($0.upperBound)" } ?? "none")), \(newTokens) new tokens, \(threads) threads")
        let entries = Self.entries.filter { wanted.contains($0.label) }
        let decoders = try entries.map { try $0.make() }
        // Rounds outer, entries inner: a load change on the shared machine hits every entry alike.
        var best: [String: DecodeResult] = [:]
        for round in 0..<repeats {
            for (entry, decoder) in zip(entries, decoders) {
                let context = DecodingContext(model: lm, prompt: prompt, branches: Self.branches(for: decoder, prompt, branches),
                                              limits: GenerationLimits(maxNewTokens: newTokens, eosTokenIDs: []),
                                              randomKey: RandomKey(seed: 0, item: "bench"))
                let r = try decoder.decode(context)
                if best[entry.label].map({ $0.prefillSeconds + $0.decodeSeconds > r.prefillSeconds + r.decodeSeconds }) ?? true {
                    best[entry.label] = r
                }
                FileHandle.standardError.write(Data(String(format: "round %d %@: %.2f s\n", round + 1, entry.label,
                                                           r.prefillSeconds + r.decodeSeconds).utf8))
            }
        }
        print("decoder          prefill s  decode s  total s  passes   rows  tok/s   ratio  (limit)")
        for entry in entries {
            let r = best[entry.label]!
            let total = r.prefillSeconds + r.decodeSeconds
            var ratio = ""
            if let b = entry.baseline, let base = best[b].map({ $0.prefillSeconds + $0.decodeSeconds }) {
                ratio = String(format: "%5.2f× %@", total / base, b)
                if let limit = entry.limit { ratio += String(format: " (≤ %.1f: %@)", limit, total / base <= limit ? "ok" : "OVER") }
            }
            let label = entry.label.padding(toLength: max(16, entry.label.count), withPad: " ", startingAt: 0)
            print(label + String(format: " %9.3f %9.3f %8.3f %7d %6d %6.1f   %@", r.prefillSeconds,
                                 r.decodeSeconds, total, r.forwardPasses, r.forwardRows, Double(r.tokens.count) / total, ratio))
        }
    }

    /// The branches a decoder declares: the prompt again or its text-only form as declared; a branch with a
    /// transformed image or a changed instruction gets the benchmark's "contrast" prompt (same shape, other
    /// image rows), which costs what the real one would.
    static func branches(for decoder: any Decoder, _ prompt: PromptLayout,
                         _ standIns: [String: PromptLayout]) -> [String: PromptLayout] {
        var built = standIns
        for spec in decoder.inputs.branches {
            built[spec.role] = spec.derived(from: prompt) ?? standIns["contrast"]
        }
        return built
    }

    /// The shared decoder-benchmark prompt (BenchmarkSupport.decoderPrompt) at this command's sizes.
    func benchPrompt(_ lm: LanguageModel) throws -> (PromptLayout, [String: PromptLayout]) {
        try BenchmarkSupport.decoderPrompt(lm, textTokens: textTokens, imageRows: imageRows)
    }
}
