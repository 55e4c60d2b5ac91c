import Foundation
import MirageTestSupport
import Testing
@testable import MirageText

/// Shared fixtures for the tokenizer tests: NLTK's English Punkt parameters from ../shared/data.
enum TokenizerTestData {
    static let punktFolder = "nltk/punkt_tab/english"
    static var hasPunkt: Bool { SharedData.has(punktFolder + "/ortho_context.tab") }
    static let missingPunkt: Comment =
        "skipped: ../shared/data/nltk/punkt_tab/english not found (set MIRAGE_SHARED_DATA to the shared data folder)"

    static func punkt() throws -> PunktParameters {
        try PunktParameters(directory: SharedData.url(punktFolder))
    }

    /// Reads a JSON-lines file into dictionaries.
    static func jsonLines(_ url: URL) throws -> [[String: Any]] {
        let text = try String(contentsOf: url, encoding: .utf8)
        return try text.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    /// Prints the first mismatches so a failure says which caption and where.
    static func describe(_ caption: String, _ got: [String], _ want: [String]) -> String {
        let k = zip(got, want).prefix(while: { $0 == $1 }).count
        return "caption \(String(reflecting: caption))\n  first difference at token \(k): "
            + "got \(Array(got[k...].prefix(6))) want \(Array(want[k...].prefix(6)))"
    }
}

/// `word_tokenize(caption.lower())` against the reference CHAIR outputs for the 12 OPERA logs (6,000 captions).
@Suite struct WordTokenizerParityTests {
    static let logs = ["instructblip", "llava-1.5", "minigpt4", "shikra"].flatMap { model in
        ["greedy", "beam5", "ours"].map { "chair/reference/\(model)-\($0).jsonl" }
    }

    @Test(.enabled(if: SharedData.isAvailable && TokenizerTestData.hasPunkt, SharedData.missingMessage),
          arguments: logs)
    func referenceTokens(_ log: String) throws {
        try #require(SharedData.has(log), "missing ../shared/data/\(log)")
        let tokenizer = WordTokenizer(punkt: try TokenizerTestData.punkt())
        var checked = 0
        var mismatches: [String] = []
        for record in try TokenizerTestData.jsonLines(SharedData.url(log)) where record["overall_metrics"] == nil {
            let caption = try #require(record["caption"] as? String)
            let want = try #require(record["tokens"] as? [String])
            let got = tokenizer.tokenize(caption.pythonLowercased)
            if got != want { mismatches.append(TokenizerTestData.describe(caption, got, want)) }
            checked += 1
        }
        #expect(checked == 500)
        #expect(mismatches.isEmpty, Comment(rawValue: "\(mismatches.count) of \(checked) captions differ:\n"
            + mismatches.prefix(5).joined(separator: "\n")))
    }

    /// Held-out breadth check against the NLTK oracle: set `MIRAGE_TOKENIZER_ORACLE` to a JSON-lines file
    /// of `{"caption": ..., "tokens": word_tokenize(caption.lower())}` (see Scripts/fixtures/text_oracle_cases.sh,
    /// `heldout` mode, which builds it from ../shared/data/captions-extra with nltk-oracle).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["MIRAGE_TOKENIZER_ORACLE"] != nil
                   && TokenizerTestData.hasPunkt,
                   "skipped: set MIRAGE_TOKENIZER_ORACLE to an oracle JSON-lines file to run the held-out check"))
    func heldOutOracle() throws {
        let path = try #require(ProcessInfo.processInfo.environment["MIRAGE_TOKENIZER_ORACLE"])
        let tokenizer = WordTokenizer(punkt: try TokenizerTestData.punkt())
        var mismatches: [String] = []
        let records = try TokenizerTestData.jsonLines(URL(fileURLWithPath: path))
        for record in records {
            let caption = try #require(record["caption"] as? String)
            let want = try #require(record["tokens"] as? [String])
            let got = tokenizer.tokenize(caption.pythonLowercased)
            if got != want { mismatches.append(TokenizerTestData.describe(caption, got, want)) }
        }
        #expect(!records.isEmpty)
        #expect(mismatches.isEmpty, Comment(rawValue: "\(mismatches.count) of \(records.count) captions differ:\n"
            + mismatches.prefix(10).joined(separator: "\n")))
    }
}
