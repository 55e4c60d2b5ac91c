import Foundation
import MirageTestSupport
import Testing
@testable import MirageText

/// Committed fixtures produced by the real NLTK 3.8.1 (see Scripts/fixtures/).
enum TaggerLemmaFixtures {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let oracleCases = folder.appendingPathComponent("tagger-lemma-oracle.jsonl")
    static let lemmaPairs = folder.appendingPathComponent("wordnet-lemma-pairs.tsv")
}

@Suite("Tagger and lemmatizer on hard cases, against NLTK 3.8.1 (Scripts/fixtures/tagger_lemma_oracle_cases.sh)")
struct TaggerLemmaOracleTests {
    @Test("irregular forms, hyphens, numbers, non-ASCII digits and letters, quotes, capitals, empty tokens",
          .enabled(if: TaggerLemmaModels.taggerAvailable, SharedData.missingMessage),
          .enabled(if: TaggerLemmaModels.wordNetAvailable, TaggerLemmaModels.wordNetMissing))
    func hardCases() throws {
        let cases = try readReferenceAnalyses(TaggerLemmaFixtures.oracleCases)
        #expect(cases.count == 60)
        let result = compareWithReference(cases, label: "fixture", tagger: TaggerLemmaModels.tagger,
                                          lemmatizer: TaggerLemmaModels.lemmatizer)
        #expect(result.tagMismatches.isEmpty, "\(result.tagMismatches.joined(separator: "\n"))")
        #expect(result.lemmaMismatches.isEmpty, "\(result.lemmaMismatches.joined(separator: "\n"))")
    }
}
