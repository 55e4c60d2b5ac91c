import Foundation
import MirageTestSupport
import Testing
@testable import MirageText

/// Hand-picked hard cases (abbreviations, initials, numbers, contractions, quotes, dashes, ellipses,
/// brackets, whitespace variants, non-ASCII) with NLTK 3.8.1's own output, in mixed case and lower-cased.
/// Fixture: Tests/MirageTextTests/Fixtures/tokenizer-oracle.jsonl, made by Scripts/fixtures/text_oracle_cases.sh.
@Suite struct WordTokenizerOracleTests {
    struct Case: Decodable, CustomTestStringConvertible {
        var text: String
        var sentences: [String]
        var tokens: [String]
        var lower_tokens: [String]
        var line_tokens: [String]
        var testDescription: String { String(reflecting: text) }
    }

    static let cases: [Case] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/tokenizer-oracle.jsonl")
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(Case.self, from: Data($0.utf8)) }
    }()

    @Test func fixtureIsComplete() {
        #expect(Self.cases.count >= 80, "Fixtures/tokenizer-oracle.jsonl is missing or unreadable")
    }

    @Test(.enabled(if: TokenizerTestData.hasPunkt, TokenizerTestData.missingPunkt), arguments: cases)
    func wordTokenize(_ c: Case) throws {
        let tokenizer = WordTokenizer(punkt: try TokenizerTestData.punkt())
        #expect(tokenizer.tokenize(c.text) == c.tokens)
        #expect(tokenizer.tokenize(PythonStr.lowercased(c.text)) == c.lower_tokens)
        #expect(tokenizer.tokenizeLowercased(c.text) == c.lower_tokens)
        #expect(tokenizer.tokenizeSentence(c.text) == c.line_tokens)
    }

    @Test(.enabled(if: TokenizerTestData.hasPunkt, TokenizerTestData.missingPunkt), arguments: cases)
    func sentTokenize(_ c: Case) throws {
        let splitter = PunktSentenceTokenizer(parameters: try TokenizerTestData.punkt())
        #expect(splitter.sentences(c.text) == c.sentences)
    }
}
