import Foundation
import MirageTestSupport
import Testing
@testable import MirageText

/// Models shared by the tagger and lemmatizer tests (loaded once, immutable).
enum TaggerLemmaModels {
    static let taggerFolder = "nltk/averaged_perceptron_tagger_eng"
    static let wordNetFolder = WordNetLemmatizer.defaultDirectory

    static var taggerAvailable: Bool { SharedData.has(taggerFolder) }
    static var wordNetAvailable: Bool {
        FileManager.default.fileExists(atPath: wordNetFolder.appendingPathComponent("index.noun").path)
    }
    static let wordNetMissing: Comment =
        "skipped: WordNet 3.0 not found at /usr/share/wordnet (apt-get install wordnet-base)"

    static let tagger: PerceptronTagger = {
        do { return try PerceptronTagger(directory: SharedData.url(taggerFolder)) } catch {
            fatalError("tagger model present but failed to load: \(error)")
        }
    }()

    static let lemmatizer: WordNetLemmatizer = {
        do { return try WordNetLemmatizer(directory: wordNetFolder) } catch {
            fatalError("WordNet present but failed to load: \(error)")
        }
    }()
}

/// One analysed caption as NLTK 3.8.1 produced it.
struct ReferenceAnalysis: Decodable {
    var tokens: [String]
    var tags: [String]
    var lemmas: [String]
}

/// Reads JSON lines with `tokens`/`tags`/`lemmas`, skipping lines without them (CHAIR's summary line).
func readReferenceAnalyses(_ url: URL) throws -> [ReferenceAnalysis] {
    let text = try String(contentsOf: url, encoding: .utf8)
    let decoder = JSONDecoder()
    return try text.split(separator: "\n").compactMap { line in
        guard line.contains("\"tokens\"") else { return nil }
        return try decoder.decode(ReferenceAnalysis.self, from: Data(line.utf8))
    }
}

/// Byte-exact equality: Swift's `==` on strings treats canonically equivalent forms as equal, Python
/// does not.
func sameBytes(_ a: [String], _ b: [String]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { Array($0.utf8) == Array($1.utf8) }
}

func firstDifference(_ a: [String], _ b: [String]) -> Int {
    Array(zip(a, b)).firstIndex { Array($0.utf8) != Array($1.utf8) } ?? min(a.count, b.count)
}

/// Tags and lemmas of every caption compared with the reference; returns a description of the first
/// few mismatches (empty when everything matches) and the number of tokens checked.
func compareWithReference(_ analyses: [ReferenceAnalysis], label: String,
                          tagger: PerceptronTagger, lemmatizer: WordNetLemmatizer)
    -> (tagMismatches: [String], lemmaMismatches: [String], tokens: Int) {
    var tagMismatches: [String] = [], lemmaMismatches: [String] = []
    var tokens = 0
    for (n, reference) in analyses.enumerated() {
        tokens += reference.tokens.count
        let tags = tagger.tag(reference.tokens)
        if !sameBytes(tags, reference.tags) {
            let i = firstDifference(tags, reference.tags)
            tagMismatches.append("\(label) #\(n) token \(i) \(reference.tokens[i].debugDescription): " +
                                 "got \(tags[i]), NLTK \(reference.tags[i]) in \(reference.tokens)")
        }
        let lemmas = zip(reference.tokens, reference.tags).map {
            lemmatizer.lemmatize($0, pos: WordNetPOS(pennTag: $1))
        }
        if !sameBytes(lemmas, reference.lemmas) {
            let i = firstDifference(lemmas, reference.lemmas)
            lemmaMismatches.append("\(label) #\(n) \(reference.tokens[i].debugDescription)/\(reference.tags[i]): " +
                                   "got \(lemmas[i].debugDescription), NLTK \(reference.lemmas[i].debugDescription)")
        }
    }
    return (tagMismatches, lemmaMismatches, tokens)
}

@Suite("Perceptron tagger and WordNet lemmatizer parity with CHAIR's reference output")
struct TaggerParityTests {
    static let referenceFiles = [
        "instructblip-beam5", "instructblip-greedy", "instructblip-ours",
        "llava-1.5-beam5", "llava-1.5-greedy", "llava-1.5-ours",
        "minigpt4-beam5", "minigpt4-greedy", "minigpt4-ours",
        "shikra-beam5", "shikra-greedy", "shikra-ours",
    ]

    @Test("tags and lemmas of all 12 reference caption files are identical to NLTK 3.8.1's",
          .enabled(if: SharedData.isAvailable, SharedData.missingMessage),
          .enabled(if: TaggerLemmaModels.wordNetAvailable, TaggerLemmaModels.wordNetMissing),
          arguments: referenceFiles)
    func referenceParity(file: String) throws {
        let analyses = try readReferenceAnalyses(SharedData.url("chair/reference/\(file).jsonl"))
        #expect(analyses.count == 500)
        let result = compareWithReference(analyses, label: file, tagger: TaggerLemmaModels.tagger,
                                          lemmatizer: TaggerLemmaModels.lemmatizer)
        #expect(result.tagMismatches.isEmpty,
                "\(result.tagMismatches.count) captions tagged differently:\n\(result.tagMismatches.prefix(5).joined(separator: "\n"))")
        #expect(result.lemmaMismatches.isEmpty,
                "\(result.lemmaMismatches.count) captions lemmatized differently:\n\(result.lemmaMismatches.prefix(5).joined(separator: "\n"))")
    }
}

/// Any oracle output (`nltk-oracle words`, one JSON line per caption) named by
/// `MIRAGE_TAGGER_ORACLE_JSONL`, e.g. the held-out `captions-extra` captions run through the oracle.
@Suite("Perceptron tagger and WordNet lemmatizer parity with an oracle output file")
struct TaggerOracleFileParityTests {
    static let path = ProcessInfo.processInfo.environment["MIRAGE_TAGGER_ORACLE_JSONL"] ?? ""

    @Test("tags and lemmas of every caption in $MIRAGE_TAGGER_ORACLE_JSONL are identical to NLTK 3.8.1's",
          .enabled(if: !path.isEmpty, "skipped: set MIRAGE_TAGGER_ORACLE_JSONL to an nltk-oracle output file"),
          .enabled(if: SharedData.isAvailable, SharedData.missingMessage),
          .enabled(if: TaggerLemmaModels.wordNetAvailable, TaggerLemmaModels.wordNetMissing))
    func oracleFileParity() throws {
        let analyses = try readReferenceAnalyses(URL(fileURLWithPath: Self.path))
        let result = compareWithReference(analyses, label: Self.path, tagger: TaggerLemmaModels.tagger,
                                          lemmatizer: TaggerLemmaModels.lemmatizer)
        print("checked \(analyses.count) captions, \(result.tokens) tokens: " +
              "\(result.tagMismatches.count) tag and \(result.lemmaMismatches.count) lemma mismatches")
        #expect(!analyses.isEmpty)
        #expect(result.tagMismatches.isEmpty,
                "\(result.tagMismatches.count) captions tagged differently:\n\(result.tagMismatches.prefix(10).joined(separator: "\n"))")
        #expect(result.lemmaMismatches.isEmpty,
                "\(result.lemmaMismatches.count) captions lemmatized differently:\n\(result.lemmaMismatches.prefix(10).joined(separator: "\n"))")
    }
}
