import ArgumentParser
import Foundation
import MirageEngine
import MirageTokenizers

/// `mirage-bench model-tokenizer`: tokenizer load, encode and decode speed.
struct BenchTokenizer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model-tokenizer",
        abstract: "Measure how fast a model's tokenizer loads, encodes and decodes.",
        discussion: """
        Encodes every line of --file (or a built-in English text when none is given) --repeat times on one \
        thread, then decodes the ids. The first pass runs with an empty word cache ("cold"), later passes \
        reuse it ("warm"), as a long evaluation run does. Tokenization is far below memory bandwidth, so \
        results are reported as throughput (MB of UTF-8 text and tokens per second), not as a fraction of \
        a hardware limit.

        Example:
          mirage-bench model-tokenizer --model ~/models/llava-1.5-7b-hf --file captions.txt
        """
    )

    @Option(name: .long, help: ArgumentHelp("Model folder containing tokenizer.json.", valueName: "dir"))
    var model: String

    @Option(name: .long, help: ArgumentHelp("Text file, one text per line.", valueName: "path"))
    var file: String?

    @Option(name: .long, help: "Encoding passes over the text.")
    var `repeat` = 5

    func validate() throws {
        guard `repeat` >= 1 else { throw ValidationError("--repeat must be at least 1") }
    }

    func run() throws {
        let texts: [String]
        if let file {
            let content = try String(contentsOfFile: (file as NSString).expandingTildeInPath, encoding: .utf8)
            texts = content.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        } else {
            texts = SyntheticTokenizer.trainingText.split(separator: "\n").map(String.init)
        }
        let bytes = texts.reduce(0) { $0 + $1.utf8.count }
        guard bytes > 0 else { throw ValidationError("the text is empty") }

        let clock = ContinuousClock()
        var tokenizer: Tokenizer? = nil
        let loadTime = try clock.measure {
            tokenizer = try Tokenizer(folder: URL(fileURLWithPath: (model as NSString).expandingTildeInPath))
        }
        let tok = tokenizer!
        print("tokenizer: \(model) (\(tok.tokenizerClass ?? "tokenizer.json pipeline"), \(tok.vocabularySize) ids)")
        print("load: \(format(loadTime)) s")
        print("text: \(texts.count) lines, \(bytes) bytes")

        var ids: [[Int]] = []
        for pass in 0..<`repeat` {
            var result: [[Int]] = []
            result.reserveCapacity(texts.count)
            let time = clock.measure { for text in texts { result.append(tok.encode(text)) } }
            let tokens = result.reduce(0) { $0 + $1.count }
            let seconds = seconds(time)
            print("encode \(pass == 0 ? "cold" : "warm"): \(format(time)) s  "
                  + String(format: "%.2f MB/s  %.0f tokens/s  (%.2f bytes/token)",
                           Double(bytes) / seconds / 1e6, Double(tokens) / seconds, Double(bytes) / Double(tokens)))
            ids = result
        }
        var decodedBytes = 0
        let time = clock.measure { for sequence in ids { decodedBytes += tok.decode(sequence).utf8.count } }
        let tokens = ids.reduce(0) { $0 + $1.count }
        print("decode: \(format(time)) s  "
              + String(format: "%.2f MB/s  %.0f tokens/s", Double(decodedBytes) / seconds(time) / 1e6,
                       Double(tokens) / seconds(time)))
    }

    private func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }

    private func format(_ duration: Duration) -> String { String(format: "%.4f", seconds(duration)) }
}
