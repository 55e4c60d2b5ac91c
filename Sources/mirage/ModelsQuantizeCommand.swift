import ArgumentParser
import Foundation
import MirageEngine
import MirageKernels

/// `mirage models quantize --q8 IN OUT`: a pre-quantized folder that loads by mmap.
struct ModelsQuantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Write a pre-quantized copy of a model folder (8-bit decoder weights) that loads without converting.",
        discussion: """
        `--quantize q8` converts the decoder's projections and LM head to group-wise int8 every time a model \
        loads. This command does it once and writes the result: the folder it writes loads by memory-mapping \
        (seconds instead of minutes for 7B, no f16 pages resident) and computes exactly what `--quantize q8` \
        computes. Vision towers, projectors and embeddings stay as they are. Needs about the size of the \
        quantized folder on disk (7B: ~7.5 GB) and memory for one matrix at a time.

        The copy has its own fingerprint, so runs on it are separate from runs on the original folder with \
        --quantize q8 (same outputs, different identity).

        Example:
          mirage models quantize --q8 llava-1.5-7b-hf llava-1.5-7b-q8
          mirage run experiment.yaml      # with model: llava-1.5-7b-q8
        """)

    @Flag(name: .long, help: "Group-wise int8 (32 inputs per f32 scale), as --quantize q8. The only format so far.")
    var q8 = false

    @Argument(help: ArgumentHelp("The model folder to quantize (safetensors).", valueName: "in"))
    var input: String

    @Argument(help: ArgumentHelp("The folder to write (must not exist unless --force).", valueName: "out"))
    var output: String

    @Flag(name: .long, help: "Replace the output folder if it exists.")
    var force = false

    @Option(name: .long, help: "Threads that quantize (default: all cores).")
    var threads: Int?

    func validate() throws {
        guard q8 else { throw ValidationError("name the format: --q8 (the only one so far)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1 (got \(threads))") }
    }

    func run() throws {
        let input = URL(fileURLWithPath: (self.input as NSString).expandingTildeInPath)
        let output = URL(fileURLWithPath: (self.output as NSString).expandingTildeInPath)
        let pool = WorkerPool(threadCount: ThreadCount.capped(threads ?? ProcessInfo.processInfo.activeProcessorCount))
        let start = Date()
        var lastReport = Date.distantPast
        let summary = try Q8Checkpoint.write(from: input, to: output, replace: force, pool: pool) { done, total in
            if Date().timeIntervalSince(lastReport) > 1 || done == total {
                lastReport = Date()
                FileHandle.standardError.write(Data("\r[quantize] \(done)/\(total) tensors".utf8))
            }
        }
        FileHandle.standardError.write(Data("\n".utf8))
        let gb = { (bytes: Int64) in String(format: "%.2f GB", Double(bytes) / 1e9) }
        print("""
        wrote \(output.path) in \(String(format: "%.1f", Date().timeIntervalSince(start))) s: \
        \(summary.quantizedMatrices) matrices quantized, \(summary.copiedTensors) tensors copied; \
        weights \(gb(summary.inputBytes)) → \(gb(summary.outputBytes)); files copied: \
        \(summary.copiedFiles.isEmpty ? "none" : summary.copiedFiles.joined(separator: ", "))
        """)
    }
}
