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

    private static let loaded = Result { try PunktParameters(directory: SharedData.url(punktFolder)) }

    /// Loaded once per test process.
    static func punkt() throws -> PunktParameters { try loaded.get() }

    /// One line of a reference or oracle JSON-lines file (the reference's summary line has no caption).
    struct Record: Decodable {
        var caption: String?
        var tokens: [String]?
        var mixed_tokens: [String]?
        var sentences: [String]?
    }

    /// Reads a JSON-lines file. `JSONDecoder`, not `JSONSerialization`: the latter drops a U+FEFF that
    /// starts a string (swift-corelibs-foundation), which would corrupt tokens.
    static func jsonLines(_ url: URL) throws -> [Record] {
        let data = try Data(contentsOf: url)
        let decoder = JSONDecoder()
        return try data.split(separator: UInt8(ascii: "\n")).map { try decoder.decode(Record.self, from: Data($0)) }
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
        for record in try TokenizerTestData.jsonLines(SharedData.url(log)) {
            guard let caption = record.caption else { continue }  // the overall_metrics line
            let want = try #require(record.tokens)
            let got = tokenizer.tokenize(PythonStr.lowercased(caption))
            if got != want { mismatches.append(TokenizerTestData.describe(caption, got, want)) }
            checked += 1
        }
        #expect(checked == 500)
        #expect(mismatches.isEmpty, Comment(rawValue: "\(mismatches.count) of \(checked) captions differ:\n"
            + mismatches.prefix(5).joined(separator: "\n")))
    }

    /// Held-out breadth check against the NLTK oracle: set `MIRAGE_TOKENIZER_ORACLE` to a JSON-lines file
    /// of `{"caption": c, "tokens": word_tokenize(c.lower())}`, optionally with `"mixed_tokens":
    /// word_tokenize(c)` and `"sentences": sent_tokenize(c)`. `Scripts/fixtures/text_oracle_cases.sh heldout F`
    /// builds it from ../shared/data/captions-extra with nltk-oracle.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["MIRAGE_TOKENIZER_ORACLE"] != nil
                   && TokenizerTestData.hasPunkt,
                   "skipped: set MIRAGE_TOKENIZER_ORACLE to an oracle JSON-lines file to run the held-out check"))
    func heldOutOracle() throws {
        let path = try #require(ProcessInfo.processInfo.environment["MIRAGE_TOKENIZER_ORACLE"])
        let tokenizer = WordTokenizer(punkt: try TokenizerTestData.punkt())
        var mismatches: [String] = []
        let records = try TokenizerTestData.jsonLines(URL(fileURLWithPath: path))
        for record in records {
            let caption = try #require(record.caption)
            let want = try #require(record.tokens)
            let got = tokenizer.tokenize(PythonStr.lowercased(caption))
            if got != want { mismatches.append("lower-cased " + TokenizerTestData.describe(caption, got, want)) }
            if let mixed = record.mixed_tokens {
                let got = tokenizer.tokenize(caption)
                if got != mixed { mismatches.append("mixed-case " + TokenizerTestData.describe(caption, got, mixed)) }
            }
            if let sentences = record.sentences {
                let got = tokenizer.sentenceTokenizer.sentences(caption)
                if got != sentences { mismatches.append("sentences " + TokenizerTestData.describe(caption, got, sentences)) }
            }
        }
        #expect(!records.isEmpty)
        #expect(mismatches.isEmpty, Comment(rawValue: "\(mismatches.count) differences in \(records.count) captions:\n"
            + mismatches.prefix(10).joined(separator: "\n")))
    }
}
