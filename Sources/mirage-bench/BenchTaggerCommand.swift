import ArgumentParser
import Dispatch
import Foundation
import MirageCLISupport
import MirageText

/// `mirage-bench tagger`: load time and throughput of the POS tagger and the WordNet lemmatizer on
/// tokenized captions, checking every tag and lemma against the reference while it measures.
struct BenchTaggerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tagger",
        abstract: "Time NLTK-exact POS tagging and WordNet lemmatization (CHAIR's text pipeline).",
        discussion: """
        Loads the averaged-perceptron tagger and WordNet, then tags and lemmatizes the tokens of every \
        caption in the given JSON-lines files (lines with "tokens", "tags" and "lemmas", as in \
        chair/reference/*.jsonl or the output of nltk-oracle words), on one thread and on --threads \
        threads, and counts tags and lemmas that differ from the file's. Build with \
        `swift build -c release` before measuring.

        Example:
          .build/release/mirage-bench tagger ../shared/data/chair/reference/*.jsonl
        """)

    @Argument(help: ArgumentHelp("JSON-lines files with tokens, tags and lemmas per caption.", valueName: "jsonl"))
    var files: [String]

    @Option(name: .long, help: ArgumentHelp(
        "Folder with averaged_perceptron_tagger_eng.{weights,tagdict,classes}.json.", valueName: "dir"))
    var taggerModel = "../shared/data/nltk/averaged_perceptron_tagger_eng"

    @Option(name: .long, help: ArgumentHelp("WordNet 3.0 database folder (Debian: apt-get install wordnet-base).",
                                            valueName: "dir"))
    var wordnet = WordNetLemmatizer.defaultDirectory.path

    @Option(name: .long, help: "Threads for the concurrent pass.")
    var threads = 2

    @Option(name: .long, help: "Timed repetitions; the fastest is reported.")
    var repetitions = 3

    func validate() throws {
        guard threads >= 1, repetitions >= 1 else { throw ValidationError("--threads and --repetitions must be at least 1.") }
    }

    private struct Caption: Decodable {
        var tokens: [String]
        var tags: [String]
        var lemmas: [String]
    }

    func run() throws {
        var captions: [Caption] = []
        let decoder = JSONDecoder()
        for file in files {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ValidationError("cannot read \(file); pass JSON-lines files such as ../shared/data/chair/reference/*.jsonl.")
            }
            for line in text.split(separator: "\n") where line.contains("\"tokens\"") {
                captions.append(try decoder.decode(Caption.self, from: Data(line.utf8)))
            }
        }
        guard !captions.isEmpty else { throw ValidationError("no captions with \"tokens\" found in the given files.") }
        let tokenCount = captions.reduce(0) { $0 + $1.tokens.count }

        var loadedTagger: PerceptronTagger?
        var loadedLemmatizer: WordNetLemmatizer?
        let taggerLoad = try measureOnce {
            loadedTagger = try PerceptronTagger(directory: URL(fileURLWithPath: taggerModel))
        }
        let wordnetLoad = try measureOnce {
            loadedLemmatizer = try WordNetLemmatizer(directory: URL(fileURLWithPath: wordnet))
        }
        let tagger = loadedTagger!, lemmatizer = loadedLemmatizer!
        print("captions: \(captions.count), tokens: \(tokenCount)")
        print(String(format: "load: tagger %.1f ms wall (%.1f ms CPU), WordNet %.1f ms wall (%.1f ms CPU)",
                     taggerLoad.wall * 1000, taggerLoad.cpu * 1000, wordnetLoad.wall * 1000, wordnetLoad.cpu * 1000))

        // One thread, tagging and lemmatizing separately; mismatches counted outside the timed part.
        var tags: [[String]] = []
        let tagTime = best { tags = captions.map { tagger.tag($0.tokens) } }
        var lemmas: [[String]] = []
        let lemmaTime = best {
            lemmas = captions.map { c in zip(c.tokens, c.tags).map { lemmatizer.lemmatize($0, pos: WordNetPOS(pennTag: $1)) } }
        }
        let tagMismatches = zip(tags, captions).reduce(0) { $0 + zip($1.0, $1.1.tags).filter { $0 != $1 }.count }
        let lemmaMismatches = zip(lemmas, captions).reduce(0) { $0 + zip($1.0, $1.1.lemmas).filter { $0 != $1 }.count }
        report("tag", tokenCount, tagTime)
        report("lemmatize", tokenCount, lemmaTime)

        // Both together on `threads` threads, captions split in interleaved shares.
        let shared = captions
        let concurrent = best {
            DispatchQueue.concurrentPerform(iterations: threads) { worker in
                var i = worker
                while i < shared.count {
                    let c = shared[i]
                    let t = tagger.tag(c.tokens)
                    _ = zip(c.tokens, t).map { lemmatizer.lemmatize($0, pos: WordNetPOS(pennTag: $1)) }
                    i += threads
                }
            }
        }
        report("tag+lemmatize, \(threads) threads", tokenCount, concurrent)
        print("mismatches against the files: \(tagMismatches) tags, \(lemmaMismatches) lemmas")
        if tagMismatches + lemmaMismatches > 0 { throw ExitCode.failure }
    }

    /// Fastest of `repetitions` runs: wall-clock seconds and the CPU seconds the whole process used
    /// meanwhile (the CPU figure is what to compare on a busy machine).
    private func best(_ body: () -> Void) -> (wall: Double, cpu: Double) {
        var fastest = (wall: Double.infinity, cpu: Double.infinity)
        for _ in 0..<repetitions {
            let cpu0 = processCPUSeconds()
            let wall = seconds(ContinuousClock().measure(body))
            let cpu = processCPUSeconds() - cpu0
            if wall < fastest.wall { fastest.wall = wall }
            if cpu < fastest.cpu { fastest.cpu = cpu }
        }
        return fastest
    }

    private func measureOnce(_ body: () throws -> Void) rethrows -> (wall: Double, cpu: Double) {
        let cpu0 = processCPUSeconds()
        let wall = try seconds(ContinuousClock().measure(body))
        return (wall, processCPUSeconds() - cpu0)
    }

    private func processCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    private func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    private func report(_ what: String, _ tokens: Int, _ time: (wall: Double, cpu: Double)) {
        print(String(format: "%@: %.1f ms wall (%.2f M tokens/s), %.1f ms CPU (%.2f M tokens/CPU-s)", what,
                     time.wall * 1000, Double(tokens) / time.wall / 1e6, time.cpu * 1000, Double(tokens) / time.cpu / 1e6))
    }
}
