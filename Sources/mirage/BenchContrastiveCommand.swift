import ArgumentParser
import Foundation
import MirageDecoding
import MirageEngine

/// `mirage bench contrastive`: the cost of VCD, the cut-off control and DoLa relative to greedy.
struct BenchContrastiveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contrastive",
        abstract: "Time VCD, the plausibility cut-off control and DoLa against greedy decoding.",
        discussion: """
        Runs greedy, vcd, apc and dola (default parameters) on one LLaVA-shaped prompt: 35 text tokens, \
        --image-rows embedding rows, 20 text tokens; VCD's branch has the image rows noised at step 500. \
        Each decoder generates exactly --new-tokens tokens (EOS ignored), so the work is the same. Prints \
        wall time split into prefill and decode, forward passes and rows, and the ratio to greedy \
        (target: VCD ≤ 2.2× greedy). VCD's branch shares the text before the image and runs in the same \
        pass as the prompt at every step, so its decode steps cost about one greedy step; its prefill \
        recomputes the image and what follows it, which VCD cannot avoid.

        Without --model, uses the Qwen2-0.5B-shaped synthetic model of `mirage bench-engine` (f16, \
        seed 0; synthesized into --work-dir once). Build with `swift build -c release` first.

        Examples:
          mirage bench contrastive
          mirage bench contrastive --model ~/models/Qwen2-0.5B --new-tokens 64 --image-rows 576
        """)

    @Option(name: .long, help: ArgumentHelp("Model folder (default: a synthesized Qwen2-0.5B, f16).", valueName: "dir"))
    var model: String?

    @Option(name: .long, help: ArgumentHelp("Where the synthesized model is kept.", valueName: "dir"))
    var workDir = FileManager.default.temporaryDirectory.appendingPathComponent("mirage-bench-engine").path

    @Option(name: .long, help: "New tokens per decoder.")
    var newTokens = 128

    @Option(name: .long, help: "Image rows in the prompt (LLaVA-1.5: 576).")
    var imageRows = 576

    @Option(name: .long, help: "Worker threads.")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        if newTokens < 1 || imageRows < 1 { throw ValidationError("--new-tokens and --image-rows must be ≥ 1") }
    }

    func run() throws {
        let folder: URL
        if let model {
            folder = URL(fileURLWithPath: (model as NSString).expandingTildeInPath)
        } else {
            folder = try BenchEngine.parse(["--work-dir", workDir]).folder(for: "f16").0
        }
        let lm = try LanguageModel(folder: folder, options: LoadOptions(threads: threads))
        let rows = try ContrastiveBenchmark.run(model: lm, newTokens: newTokens, imageRows: imageRows)
        print(Self.table(rows))
    }

    /// One line per decoder and its ratio to the first (greedy) row.
    static func table(_ rows: [ContrastiveBenchmark.Row]) -> String {
        guard let base = rows.first else { return "" }
        var lines = ["decoder   total s  prefill s  decode s  passes   rows   decode ms/token  × greedy (total / decode)"]
        for r in rows {
            let res = r.result
            let steps = max(res.tokens.count - 1, 1)
            lines.append(r.decoder.padding(toLength: 8, withPad: " ", startingAt: 0) + String(format: " %8.2f %10.2f %9.2f %7d %6d %17.1f %10.2f / %.2f", r.seconds,
                                res.prefillSeconds, res.decodeSeconds, res.forwardPasses, res.forwardRows,
                                1000 * res.decodeSeconds / Double(steps), r.seconds / base.seconds,
                                res.decodeSeconds / max(base.result.decodeSeconds, 1e-9)))
        }
        return lines.joined(separator: "\n")
    }
}
