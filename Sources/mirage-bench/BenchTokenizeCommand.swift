import ArgumentParser
import Foundation
import MirageCLISupport
import MirageMetrics
import MirageText

/// `mirage-bench tokenize`: throughput of NLTK's `word_tokenize` (Punkt sentences + Treebank words).
struct BenchTokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Time CHAIR's word tokenizer (NLTK 3.8.1 word_tokenize of the lower-cased caption).",
        discussion: """
        Reads every *.jsonl/*.json caption log in the folder and times, on one thread, best of --repeat: \
        Punkt sentence splitting alone, then the whole of word_tokenize(caption.lower()). Budget: the \
        tokenizer's share of CHAIR's 2 s for the 6,000 OPERA captions is about 0.3 s (release build). \
        Tokenizing is branchy scalar code, far from memory or FLOP limits, so no hardware ratio is given.

        EXAMPLE:
          swift build -c release
          .build/release/mirage-bench tokenize --from ../shared/data/chair/opera-logs --nltk-data ../shared/data/nltk
        """)

    @Option(name: .long, help: ArgumentHelp("Folder of caption logs (JSON Lines with image_id and caption).", valueName: "dir"))
    var from: String

    @Option(name: .long, help: ArgumentHelp("NLTK data folder holding punkt_tab/english/ (default: the data store).", valueName: "dir"))
    var nltkData: String?

    @Option(name: .customLong("repeat"), help: "Timed rounds; the best is reported.")
    var repetitions = 5

    func run() throws {
        try runReportingErrors {
            let captions = try readCaptionLogs(in: URL(fileURLWithPath: from)).flatMap { $0.file.captions.map(\.caption) }
            let resources = ChairResources(nltkData: nltkData, threads: 1)
            let punktFolder = try resources.nltkComponent(["punkt_tab/english", "tokenizers/punkt_tab/english"],
                                                          id: "punkt", flag: "--nltk-data DIR")
            let (tokenizer, loadSeconds) = try timed { WordTokenizer(punkt: try PunktParameters(directory: punktFolder)) }
            let bytes = captions.reduce(0) { $0 + $1.utf8.count }
            print("loaded Punkt parameters in \(String(format: "%.3f", loadSeconds)) s; \(captions.count) captions, \(String(format: "%.2f", Double(bytes) / 1e6)) MB")

            /// Best wall-clock seconds over the rounds; the thread's CPU seconds of that round are kept too,
            /// since on a shared machine the wall clock also counts time the thread spent waiting.
            func best(_ body: () -> Int) -> (Int, Double, Double) {
                var result = (0, Double.infinity, Double.infinity)
                for _ in 0..<max(1, repetitions) {
                    let cpuStart = threadCPUSeconds()
                    let (count, seconds) = timed(body)
                    let cpu = threadCPUSeconds() - cpuStart
                    if seconds < result.1 { result.1 = seconds }
                    result = (count, result.1, min(result.2, cpu))
                }
                return result
            }
            let (sentences, splitSeconds, splitCPU) = best {
                captions.reduce(0) { $0 + tokenizer.sentenceTokenizer.sentences($1).count }
            }
            let (tokens, tokenizeSeconds, tokenizeCPU) = best {
                captions.reduce(0) { $0 + tokenizer.tokenizeLowercased($1).count }
            }
            for (what, count, seconds, cpu) in [("sent_tokenize", "\(sentences) sentences", splitSeconds, splitCPU),
                                                ("word_tokenize(lower)", "\(tokens) tokens", tokenizeSeconds, tokenizeCPU)] {
                print("  \(what.padding(toLength: 21, withPad: " ", startingAt: 0)) \(String(format: "%.3f", seconds)) s "
                    + "(CPU \(String(format: "%.3f", cpu)) s)  "
                    + "\(String(format: "%5.1f", seconds / Double(captions.count) * 1e6)) µs/caption  "
                    + "\(String(format: "%.0f", Double(captions.count) / seconds)) captions/s  "
                    + "\(String(format: "%.1f", Double(bytes) / seconds / 1e6)) MB/s  (\(count))")
            }
        }
    }
}

/// CPU time consumed by the calling thread, in seconds.
private func threadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
