import Foundation
import MirageTestSupport
import Testing
import GRDB
import MirageData
import MirageMetrics
import MirageRunner
@testable import MirageStore

func temporaryDatabasePath() -> String {
    let dir = TestTemporary.root.appendingPathComponent("mirage-store-\(UUID().uuidString)")
    return dir.appendingPathComponent("runs.sqlite").path
}

func sampleRun(label: String? = nil, source: String? = nil, images: [Int] = [1, 2, 3]) -> NewRun {
    NewRun(evalProtocol: EvalProtocol(task: .chair, imageIDs: images, maxNewTokens: 512),
           model: ModelSpec(name: "llava-1.5"), decoder: DecoderSpec(name: "greedy"), label: label,
           sourceHash: source, mirageVersion: "test")
}

func chairScore(mentions: [(String, Bool)], gt: [String], words: Int) -> ItemScore {
    .chair(ChairItemScore(mentions: mentions.enumerated().map {
        ObjectMention(word: $0.element.0, node: $0.element.0, position: $0.offset, hallucinated: $0.element.1)
    }, groundTruth: gt, wordCount: words))
}

@Test func protocolIdentityIgnoresImageOrderAndNilFields() {
    let a = EvalProtocol(task: .chair, imageIDs: [3, 1, 2, 2])
    let b = EvalProtocol(task: .chair, imageIDs: [1, 2, 3])
    #expect(a.hash == b.hash)
    #expect(a.canonicalJSON == #"{"imageIDs":[1,2,3],"task":"chair"}"#)
    let c = EvalProtocol(task: .chair, imageIDs: [1, 2, 3], maxNewTokens: 64)
    #expect(c.hash != a.hash)
    #expect(c.differences(from: a) == ["max new tokens 64 vs unset"])
    let padded = EvalProtocol(task: .chair, imageIDs: [1, 2, 3], imagePreprocessing: "pad-to-square")
    #expect(padded.hash != a.hash)
    #expect(padded.differences(from: a) == ["image preprocessing pad-to-square vs unset"])
}

@Test(.dropsScratchDatabases, arguments: Backend.available) func recordsItemsScoresAndMetrics(backend: Backend) throws {
    let store = try backend.fresh()
    let (run, created) = try store.createRun(sampleRun(label: "base", source: "abc"))
    #expect(created)
    // Caption 1: dog (gt), cat (hallucinated) -> hallucinates. Caption 2: dog twice, gt {dog, car}.
    try store.recordItem(run: run.id, NewItem(key: "0", ordinal: 0, imageID: 1, outputText: "a dog and a cat"),
                         score: chairScore(mentions: [("dog", false), ("cat", true)], gt: ["dog"], words: 5))
    try store.recordItem(run: run.id, NewItem(key: "1", ordinal: 1, imageID: 2, outputText: "dog dog"),
                         score: chairScore(mentions: [("dog", false), ("dog", false)], gt: ["dog", "car"], words: 3))
    // Idempotent re-record of the same item, refusal of a different output.
    try store.recordItem(run: run.id, NewItem(key: "1", ordinal: 1, imageID: 2, outputText: "dog dog"))
    #expect(throws: StoreError.self) {
        try store.recordItem(run: run.id, NewItem(key: "1", ordinal: 1, outputText: "other"))
    }
    let metrics = try store.finishRun(run.id, metrics: RunEvaluation.metrics)
    #expect(metrics["chair_s"] == 0.5)       // 1 of 2 captions
    #expect(metrics["chair_i"] == 0.25)      // 1 of 4 mentions
    #expect(metrics["recall"] == 2.0 / 3.0)  // {dog} + {dog} of {dog} + {dog, car}
    #expect(metrics["len"] == 0.04)      // 0.01 * mean words, as OPERA
    #expect(metrics["object_precision"] == 2.0 / 3.0) // distinct: {dog,cat} -> 1, {dog} -> 1
    #expect(try store.metrics(run: run.id)["chair_s"] == 0.5)
    #expect(try store.run(id: run.id).status == .complete)
    let items = try store.items(run: run.id)
    #expect(items.map(\.item.key) == ["0", "1"])
    if case .chair(let s)? = items[0].score { #expect(s.mentions[1].node == "cat" && s.mentions[1].hallucinated) }
    else { Issue.record("score missing") }

    // Same source hash resumes the same run.
    let again = try store.createRun(sampleRun(source: "abc"))
    #expect(!again.created && again.run.id == run.id)
    #expect(try store.resolveRun("base").id == run.id)
    #expect(throws: StoreError.labelTaken("base", run: run.id)) { try store.createRun(sampleRun(label: "base")) }
    try store.deleteRun(id: run.id)
    #expect(try store.runs().isEmpty)
    #expect(throws: StoreError.runNotFound("base")) { try store.resolveRun("base") }
}

@Test(.dropsScratchDatabases, arguments: Backend.available) func popeRunMetricsCountUnknownAsWrong(backend: Backend) throws {
    let store = try backend.fresh()
    let run = try store.createRun(NewRun(
        evalProtocol: EvalProtocol(task: .pope, imageIDs: [1], questionFile: "q.json", answerParser: "strict"),
        model: ModelSpec(name: "m"), decoder: DecoderSpec(name: "greedy"), mirageVersion: "test")).run
    let pairs: [(POPELabel, POPEPrediction)] = [(.yes, .yes), (.yes, .no), (.no, .yes), (.no, .no), (.no, .unknown), (.yes, .unknown)]
    for (i, p) in pairs.enumerated() {
        try store.recordItem(run: run.id, NewItem(key: "\(i)", ordinal: i, questionID: i + 1, outputText: "x"),
                             score: .pope(PopeItemScore(label: p.0, parsed: p.1)))
    }
    let m = try store.finishRun(run.id, metrics: RunEvaluation.metrics)
    #expect(m["items"] == 6 && m["unknown"] == 2)
    #expect(m["accuracy"] == 2.0 / 6.0)
    #expect(m["precision"] == 0.5)            // TP 1, FP 1
    #expect(m["recall"] == 1.0 / 3.0)         // TP 1 of 3 labelled yes
    #expect(m["yes_ratio"] == 2.0 / 6.0)
}

@Test func newerSchemaIsRefusedAndLeftUntouched() throws {
    let path = temporaryDatabasePath()
    do {
        let store = try SQLiteRunStore(path: path)
        _ = try store.createRun(sampleRun(label: "keep"))
    }
    // This build recorded itself beside every migration it applied.
    let queue = try DatabaseQueue(path: path)
    let writers = try queue.read { db in try Row.fetchAll(db, sql: "SELECT identifier, mirage_version, generation FROM mirage_migrations ORDER BY generation") }
    #expect(writers.map { $0["identifier"] as String } == Schema.migrations.map(\.identifier))
    #expect(writers.allSatisfy { $0["mirage_version"] as String == MirageRelease.version })
    #expect(writers.map { $0["generation"] as Int } == Array(1...Schema.version))
    // Simulate a newer Mirage: one more migration applied, recorded as Mirage 9.9.0's.
    try queue.write { db in
        try db.execute(sql: "INSERT INTO grdb_migrations VALUES ('v9-from-the-future')")
        try db.execute(sql: "INSERT INTO mirage_migrations VALUES ('v9-from-the-future', '9.9.0', 4, 'now')")
        try db.execute(sql: "PRAGMA user_version = 4")
    }
    try queue.close()
    let before = try Data(contentsOf: URL(fileURLWithPath: path))
    let refusal = StoreError.newerSchema(path: path, unknownMigrations: ["v9-from-the-future"], writtenBy: "9.9.0", generation: 4)
    #expect(throws: refusal) { _ = try SQLiteRunStore(path: path) }
    #expect(throws: refusal) { _ = try SQLiteRunStore(readingOnly: path) }
    #expect(refusal.description.contains("written by Mirage 9.9.0, schema generation 4; this is Mirage \(MirageRelease.version)"))
    #expect(refusal.description.contains("v9-from-the-future. Nothing was changed. Upgrade Mirage to 9.9.0 or later"))
    let after = try Data(contentsOf: URL(fileURLWithPath: path))
    #expect(before == after)
}

@Test func missingDatabaseIsReportedWhenNotCreating() {
    let path = temporaryDatabasePath()
    #expect(throws: StoreError.databaseMissing(path: path)) { _ = try SQLiteRunStore(path: path, create: false) }
    #expect(!FileManager.default.fileExists(atPath: path))
}

@Test(.dropsScratchDatabases, arguments: Backend.available) func concurrentWritersInOneProcessBothSucceed(backend: Backend) async throws {
    let path = try backend.freshLocation()
    _ = try RunStores.open(path)
    try await withThrowingTaskGroup(of: Void.self) { group in
        for w in 0..<2 {
            group.addTask {
                let store = try RunStores.open(path)
                let run = try store.createRun(sampleRun(label: "w\(w)")).run
                for i in 0..<50 {
                    try store.recordItem(run: run.id, NewItem(key: "\(i)", ordinal: i, outputText: "x"))
                }
            }
        }
        try await group.waitForAll()
    }
    let store = try RunStores.open(path)
    #expect(try store.summaries().map(\.itemCount) == [50, 50])
}

/// The store's timestamps, formatted by hand, are what Foundation's ISO 8601 formatter writes (the reference) for
/// instants whose milliseconds are exact in binary (so rounding cannot differ), over leap days and centuries.
@Test func storeClockWritesWhatISO8601DateFormatterWrites() {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    for seconds in [0, 951_782_400.5, 1_700_000_000.125, 1_765_151_492.25, 4_102_444_799.875, 86_399.375] as [Double] {
        let date = Date(timeIntervalSince1970: seconds)
        #expect(StoreClock.string(date) == formatter.string(from: date))
    }
}
