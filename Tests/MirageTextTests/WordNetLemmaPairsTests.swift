import Foundation
import MirageTestSupport
import Testing
@testable import MirageText

@Suite("WordNet lemmatizer over many (word, pos) pairs, against NLTK 3.8.1 (Scripts/fixtures/wordnet_lemma_pairs.sh)")
struct WordNetLemmaPairsTests {
    /// `MIRAGE_LEMMA_PAIRS_TSV` may name a bigger file in the same format (made by the same script).
    static let file = ProcessInfo.processInfo.environment["MIRAGE_LEMMA_PAIRS_TSV"].map(URL.init(fileURLWithPath:))
        ?? TaggerLemmaFixtures.lemmaPairs

    @Test("every exception-list form and sampled inflections, for noun, verb, adjective and adverb",
          .enabled(if: TaggerLemmaModels.wordNetAvailable, TaggerLemmaModels.wordNetMissing))
    func lemmaPairs() throws {
        let text = try String(contentsOf: Self.file, encoding: .utf8)
        let lemmatizer = TaggerLemmaModels.lemmatizer
        let order: [WordNetPOS] = [.noun, .verb, .adjective, .adverb]
        var checked = 0
        var mismatches: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) where !line.isEmpty {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            try #require(fields.count == 5, "malformed fixture line \(line.debugDescription)")
            let word = fields[0]
            for (pos, expected) in zip(order, fields.dropFirst()) {
                let want = expected == "=" ? word : expected
                let got = lemmatizer.lemmatize(word, pos: pos)
                checked += 1
                if Array(got.utf8) != Array(want.utf8) {
                    mismatches.append("\(word.debugDescription)/\(pos.rawValue): got \(got.debugDescription), NLTK \(want.debugDescription)")
                }
            }
        }
        #expect(checked > 40_000)
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(checked) differ:\n\(mismatches.prefix(20).joined(separator: "\n"))")
    }

    @Test("_morphy order and min-by-length tie-breaking",
          .enabled(if: TaggerLemmaModels.wordNetAvailable, TaggerLemmaModels.wordNetMissing))
    func morphyOrder() {
        let wn = TaggerLemmaModels.lemmatizer
        // Expected lists are NLTK 3.8.1's `wn._morphy` output (checked with the nltk-oracle venv).
        // Exception list hit: filter([form] + exceptions[form]); rules are not tried.
        #expect(wn.morphy("leaves", pos: .noun) == ["leaf", "leave"])
        #expect(wn.morphy("axes", pos: .noun) == ["ax", "axis"])
        #expect(wn.lemmatize("axes", pos: .noun) == "ax")
        #expect(wn.morphy("better", pos: .adjective) == ["better", "good", "well"])
        #expect(wn.morphy("saw", pos: .verb) == ["saw", "see"])
        // A length tie keeps the first candidate: "men" stays "men" as a noun.
        #expect(wn.morphy("men", pos: .noun) == ["men", "man"])
        #expect(wn.lemmatize("men", pos: .noun) == "men")
        // Rules once: "glasses" itself is a noun lemma and comes first; "glass" is shorter and wins.
        #expect(wn.morphy("glasses", pos: .noun) == ["glasses", "glass"])
        #expect(wn.lemmatize("glasses", pos: .noun) == "glass")
        #expect(wn.morphy("lying", pos: .verb) == ["lie"])
        // Repeated rule application: "ieses" -> "iese", "ies" ... -> ["ie", "y"].
        #expect(wn.morphy("ieses", pos: .noun) == ["ie", "y"])
        #expect(wn.lemmatize("ieses", pos: .noun) == "y")
        // Not in WordNet, and no lower-casing.
        #expect(wn.morphy("Dogs", pos: .noun) == [])
        #expect(wn.lemmatize("Dogs", pos: .noun) == "Dogs")
        #expect(wn.lemmatize("", pos: .verb) == "")
        #expect(wn.contains("hot_dog", pos: .noun))
        #expect(!wn.contains("hot dog", pos: .noun))
    }

    @Test("a missing or damaged WordNet file gives an error that names it and the fix")
    func errors() throws {
        let folder = TestTemporary.root.appendingPathComponent("mirage-wordnet-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let indexNoun = folder.appendingPathComponent("index.noun").path
        #expect(throws: WordNetError.fileMissing(path: indexNoun)) { try WordNetLemmatizer(directory: folder) }
        #expect(WordNetError.fileMissing(path: indexNoun).description.contains("apt-get install wordnet-base"))

        // A tiny database: the license header is skipped, a line without a part of speech is an error.
        for (name, text) in [("index.noun", "  1 license text\ndog n 1 0 1 0 02084071\n"),
                             ("index.verb", "lie v 1 0 1 0 00001\n"), ("index.adj", ""), ("index.adv", ""),
                             ("noun.exc", "geese goose\n"), ("verb.exc", "lay lie\n"), ("adj.exc", ""), ("adv.exc", "")] {
            try Data(text.utf8).write(to: folder.appendingPathComponent(name))
        }
        let tiny = try WordNetLemmatizer(directory: folder)
        #expect(tiny.lemmatize("dogs", pos: .noun) == "dog")
        #expect(tiny.lemmatize("geese", pos: .noun) == "geese")  // "goose" is not in this index
        #expect(tiny.lemmatize("lay", pos: .verb) == "lie")
        #expect(tiny.lemmatize("1", pos: .noun) == "1")
        try Data("  1 license\ndog\n".utf8).write(to: folder.appendingPathComponent("index.noun"))
        #expect(throws: WordNetError.malformed(file: indexNoun, line: 2, problem: "expected a lemma and a part of speech")) {
            try WordNetLemmatizer(directory: folder)
        }
    }
}
