import Foundation
import Testing
@testable import MirageText

/// The demo-mode analyzer: Treebank tokens of the lower-cased caption, every tag NN, WordNet noun lemmas.
@Test(.enabled(if: FileManager.default.fileExists(atPath: "/usr/share/wordnet/index.noun"),
               "skipped: needs Debian's wordnet-base in /usr/share/wordnet"))
func untrainedAnalyzerTagsNounsAndLemmatizesAsNouns() throws {
    let analyzer = UntrainedCaptionAnalyzer(lemmatizer: try WordNetLemmatizer(directory: URL(fileURLWithPath: "/usr/share/wordnet")))
    let result = analyzer.analyze("Two Dogs are running past the benches. A man's bicycles.")
    #expect(result.tokens == ["two", "dogs", "are", "running", "past", "the", "benches", ".",
                              "a", "man", "'s", "bicycles", "."])
    #expect(result.tags == Array(repeating: "NN", count: result.tokens.count))
    // Noun lemmas only: "running" stays (a noun), "are" is not turned into "be".
    #expect(result.lemmas == ["two", "dog", "are", "running", "past", "the", "bench", ".",
                              "a", "man", "'s", "bicycle", "."])
}
