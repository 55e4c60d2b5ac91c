import Foundation
@testable import MirageAnalysis
import Testing
import GRDB
import MirageData
import MirageMetrics
import MirageRunner
@testable import MirageStore

/// Text whose bytes a store, an export or a merge could change: every entry must come back scalar for scalar.
private let edgeCases: [(name: String, text: String)] = [
    ("NUL inside", "a cat\u{0} and a dog on a sofa"),
    ("NUL first and last", "\u{0}dog\u{0}"),
    ("only NUL", "\u{0}"),
    ("C0 controls", (1...0x1F).map { String(UnicodeScalar(UInt8($0))) }.joined() + "\u{7F}"),
    ("C1 controls", (0x80...0x9F).map { String(UnicodeScalar(UInt32($0))!) }.joined()),
    ("line and paragraph separators", "one\u{2028}two\u{2029}three\u{85}four"),
    // Swift literals refuse noncharacters; Unicode.Scalar(UInt32) builds them.
    ("noncharacters", [0xFFFE, 0xFFFF, 0x10FFFF, 0xFDD0].map { String(Unicode.Scalar(UInt32($0))!) }.joined()),
    ("combining sequence", "e\u{301}\u{323}\u{302} q\u{307}\u{323}"),
    ("emoji ZWJ sequences", "👩‍👩‍👧‍👦 🏳️‍🌈 👍🏽"),
    ("BOM at start", "\u{FEFF}A dog."),
    ("CRLF and lone CR", "line one\r\nline two\rline three\n"),
    ("NFC", "caf\u{E9} na\u{EF}ve \u{212B}ngstr\u{F6}m"),
    ("NFD", "cafe\u{301} nai\u{308}ve A\u{30A}ngstro\u{308}m"),
    ("very long line", String(repeating: "a dog and a cat \u{0} ", count: 20_000)),
    ("empty", ""),
]

private func items(_ texts: [(name: String, text: String)]) -> [NewItem] {
    texts.enumerated().map { i, e in
        NewItem(key: "k\(i)", ordinal: i, imageID: 1, prompt: "prompt \(e.text)", outputText: e.text,
                failureReason: e.name == "empty" ? "reason with \u{0} NUL" : nil)
    }
}

private func sameScalars(_ a: String?, _ b: String?) -> Bool {
    guard let a, let b else { return a == nil && b == nil }
    return a.unicodeScalars.elementsEqual(b.unicodeScalars)
}

@Test func everyEdgeCaseRoundTripsThroughTheStore() throws {
    // NFC and NFD spell the same characters: Swift's == calls them equal, the store must not.
    #expect(edgeCases[11].text == edgeCases[12].text)
    #expect(!sameScalars(edgeCases[11].text, edgeCases[12].text))

    let store = try SQLiteRunStore(path: temporaryDatabasePath())
    let run = try store.createRun(sampleRun(images: [1])).run
    let written = items(edgeCases)
    for item in written { try store.recordItem(run: run.id, item) }
    let read = try store.items(run: run.id)
    #expect(read.count == written.count)
    for (stored, original) in zip(read, written) {
        #expect(sameScalars(stored.item.outputText, original.outputText), "output of \(original.key)")
        #expect(sameScalars(stored.item.prompt, original.prompt), "prompt of \(original.key)")
        #expect(sameScalars(stored.item.failureReason, original.failureReason), "failure reason of \(original.key)")
    }
    // The value is still TEXT of the full length for other tools (SQLite counts the bytes, NULs included).
    let queue = try DatabaseQueue(path: store.path)
    let (type, bytes) = try queue.read { db in
        let row = try Row.fetchOne(db, sql: "SELECT typeof(output_text) AS t, length(CAST(output_text AS BLOB)) AS n FROM items WHERE item_key = 'k0'")!
        return (row["t"] as String, row["n"] as Int)
    }
    try queue.close()
    #expect(type == "text")
    #expect(bytes == edgeCases[0].text.utf8.count)
}

@Test(.dropsScratchDatabases, arguments: Backend.available) func recordingTheSameItemAgainIsIdempotentAndADifferentSpellingIsRefused(backend: Backend) throws {
    let store = try backend.fresh()
    let run = try store.createRun(sampleRun(images: [1])).run
    let score = chairScore(mentions: [("dog", false)], gt: ["dog"], words: 7)
    for item in items(edgeCases) {
        let first = try store.recordItem(run: run.id, item, score: score)
        let again = try store.recordItem(run: run.id, item, score: score)   // a resumed runner re-records it
        #expect(first == again)
    }
    // Only the text after the NUL differs: before exact storage both were "a cat".
    let cut = NewItem(key: "k0", ordinal: 0, imageID: 1, outputText: "a cat\u{0} and a bird")
    #expect(throws: StoreError.self) { try store.recordItem(run: run.id, cut) }
    // Canonically equivalent but different scalars: a different output.
    let nfd = NewItem(key: "k11", ordinal: 11, imageID: 1, outputText: edgeCases[12].text)
    #expect(throws: StoreError.self) { try store.recordItem(run: run.id, nfd) }
    #expect(try store.items(run: run.id).count == edgeCases.count)
}

@Test(.dropsScratchDatabases, arguments: Backend.available) func exportKeepsEveryCodePoint(backend: Backend) throws {
    let store = try backend.fresh()
    let run = try store.createRun(sampleRun(images: [1])).run
    for item in items(edgeCases) { try store.recordItem(run: run.id, item) }
    let stored = try store.items(run: run.id)

    // JSON Lines: one line per item even for U+2028/U+2029/U+0085 (escaped), text back scalar for scalar.
    let jsonl = ItemExport.jsonl(stored)
    #expect(!jsonl.unicodeScalars.contains { [0x85, 0x2028, 0x2029].contains($0.value) })
    let lines = jsonl.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
    #expect(lines.count == edgeCases.count)
    // Read back with JSONDecoder: Foundation's JSONSerialization on Linux drops a U+FEFF that starts a string.
    struct Record: Decodable { var output: String }
    for (line, edge) in zip(lines, edgeCases) {
        let record = try JSONDecoder().decode(Record.self, from: Data(line.utf8))
        #expect(sameScalars(record.output, edge.text), "JSON Lines output of \(edge.name)")
    }

    // CSV (RFC 4180): parse it back and compare the output column.
    let rows = parseCSV(ItemExport.csv(stored))
    let output = rows[0].firstIndex(of: "output")!
    #expect(rows.count == edgeCases.count + 1)
    for (row, edge) in zip(rows.dropFirst(), edgeCases) {
        #expect(sameScalars(row[output], edge.text), "CSV output of \(edge.name)")
    }
}

@Test func mergeCopiesAndComparesTextExactly() throws {
    func database(_ texts: [(name: String, text: String)]) throws -> SQLiteRunStore {
        let store = try SQLiteRunStore(path: temporaryDatabasePath())
        let run = try store.createRun(sampleRun(source: "same-run", images: [1])).run
        for item in items(texts) { try store.recordItem(run: run.id, item) }
        try store.finishRun(run.id, metrics: RunEvaluation.metrics)
        return store
    }
    let a = try database(edgeCases), b = try database(edgeCases)
    let out = try SQLiteRunStore(path: temporaryDatabasePath())
    let outcome = try out.merge(from: [a.path, b.path], metrics: RunEvaluation.metrics)
    #expect(outcome.sources.map(\.itemsAdded) == [edgeCases.count, 0])
    #expect(outcome.sources.map(\.itemsAlreadyPresent) == [0, edgeCases.count])
    let merged = try out.items(run: outcome.runs[0].id)
    for (stored, original) in zip(merged, items(edgeCases)) {
        #expect(sameScalars(stored.item.outputText, original.outputText), "merged output of \(original.key)")
        #expect(sameScalars(stored.item.prompt, original.prompt), "merged prompt of \(original.key)")
    }

    // Texts that differ only after a NUL, or only in normalisation, are a conflict, not the same item.
    for changed in [edgeCases[0].text + "!", edgeCases[12].text] {
        var texts = edgeCases
        texts[changed == edgeCases[12].text ? 11 : 0].text = changed
        let c = try database(texts)
        let target = try SQLiteRunStore(path: temporaryDatabasePath())
        _ = try target.merge(from: [a.path], metrics: RunEvaluation.metrics)
        #expect(throws: StoreError.self) { try target.merge(from: [c.path], metrics: RunEvaluation.metrics) }
    }
}

/// A minimal RFC 4180 reader (quoted fields may hold commas, quotes and line breaks).
private func parseCSV(_ text: String) -> [[String]] {
    var rows: [[String]] = [], row: [String] = [], field = String.UnicodeScalarView()
    var quoted = false, afterQuote = false
    let scalars = Array(text.unicodeScalars)
    var i = 0
    while i < scalars.count {
        let c = scalars[i]
        if quoted {
            if c == "\"" {
                if i + 1 < scalars.count && scalars[i + 1] == "\"" { field.append("\""); i += 1 } else { quoted = false; afterQuote = true }
            } else {
                field.append(c)
            }
        } else if c == "\"" && field.isEmpty && !afterQuote {
            quoted = true
        } else if c == "," {
            row.append(String(field)); field = String.UnicodeScalarView(); afterQuote = false
        } else if c == "\n" {
            row.append(String(field)); rows.append(row); row = []; field = String.UnicodeScalarView(); afterQuote = false
        } else {
            field.append(c)
        }
        i += 1
    }
    if !field.isEmpty || !row.isEmpty { row.append(String(field)); rows.append(row) }
    return rows
}

@Test func popeAnswerFilesKeepEveryCodePoint() throws {
    // Each answer written the way a JSON writer writes it (JSONEncoder escapes controls, keeps the rest raw).
    let encoder = JSONEncoder()
    var file = Data()
    for (i, edge) in edgeCases.enumerated() {
        file += try encoder.encode(["question_id": String(i + 1), "answer": edge.text]) + Data("\n".utf8)
    }
    let answers = try PopeAnswerFile.parse(file, source: "answers.jsonl").answers
    #expect(answers.count == edgeCases.count)
    for (answer, edge) in zip(answers, edgeCases) {
        #expect(sameScalars(answer.text, edge.text), "answer of \(edge.name)")
    }
}
