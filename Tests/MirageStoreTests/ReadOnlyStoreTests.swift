import Foundation
@testable import MirageAnalysis
import Testing
import GRDB
import MirageData
import MirageRunner
@testable import MirageStore

/// Readers open the store without writing anything: no migration, no `-wal`/`-shm` files. (Tests run as root,
/// which ignores file permissions, so what is checked here is the files a reader creates; the CLI test
/// `StoreProcessTests.unprivilegedReaderListsExportsAndCompares` runs a reader as another user when it can.)
@Suite struct ReadOnlyStoreTests {
    static func sideFiles(_ path: String) -> [String] {
        ["-wal", "-shm", "-journal"].filter { FileManager.default.fileExists(atPath: path + $0) }
    }

    static func fileBytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    /// A closed database with one CHAIR run of two items (the writer is gone: no -wal left).
    static func database() throws -> String {
        let path = temporaryDatabasePath()
        do {
            let store = try SQLiteRunStore(path: path)
            let run = try store.createRun(sampleRun(label: "r", images: [1, 2])).run
            try store.recordItem(run: run.id, NewItem(key: "1", ordinal: 0, imageID: 1, outputText: "a dog\u{0}"),
                                 score: chairScore(mentions: [("dog", false)], gt: ["dog"], words: 2))
            try store.recordItem(run: run.id, NewItem(key: "2", ordinal: 1, imageID: 2, outputText: "a cat"),
                                 score: chairScore(mentions: [("cat", true)], gt: ["dog"], words: 2))
            try store.finishRun(run.id, metrics: RunEvaluation.metrics)
        }
        return path
    }

    @Test func readersCreateNoSideFilesAndChangeNothing() throws {
        let path = try Self.database()
        #expect(Self.sideFiles(path).isEmpty)
        let before = try Self.fileBytes(path)
        do {
            let store = try SQLiteRunStore(readingOnly: path)
            #expect(store.isReadOnly)
            let run = try store.resolveRun("r")
            #expect(try store.items(run: run.id).map(\.item.outputText) == ["a dog\u{0}", "a cat"])
            #expect(try store.summaries().map(\.itemCount) == [2])
            #expect(try store.metrics(run: run.id)["chair_s"] == 0.5)
            #expect(try store.itemsWithAttention(run: run.id).isEmpty)
            let table = try ComparisonBuilder(store: store).compare(runs: [run])
            #expect(table.rows.count == 1)
            #expect(Self.sideFiles(path).isEmpty, "a reader created \(Self.sideFiles(path))")
            #expect(throws: StoreError.readOnlyStore(path: path)) { try store.setLabel(run: run.id, to: "other") }
        }
        #expect(Self.sideFiles(path).isEmpty)
        #expect(try Self.fileBytes(path) == before)
    }

    @Test func aReaderSeesWhatAWriterCommitsWhileBothAreOpen() throws {
        let path = try Self.database()
        let writer = try SQLiteRunStore(path: path)           // a writer is connected: -wal and -shm exist
        let run = try writer.resolveRun("r")
        try writer.recordItem(run: run.id, NewItem(key: "3", ordinal: 2, imageID: 3, outputText: "a bird"))
        let existing = Set(Self.sideFiles(path))
        let reader = try SQLiteRunStore(readingOnly: path)
        #expect(try reader.items(run: run.id).count == 3)
        try writer.recordItem(run: run.id, NewItem(key: "4", ordinal: 3, imageID: 4, outputText: "a fish"))
        #expect(try reader.items(run: run.id).count == 4)
        #expect(Set(Self.sideFiles(path)) == existing)
    }

    @Test func aWriterThatStartsAfterAReaderIsSeen() throws {
        let path = try Self.database()
        let reader = try SQLiteRunStore(readingOnly: path)     // no -wal: the immutable way
        let run = try reader.resolveRun("r")
        #expect(try reader.items(run: run.id).count == 2)
        let writer = try SQLiteRunStore(path: path)
        try writer.recordItem(run: run.id, NewItem(key: "3", ordinal: 2, imageID: 3, outputText: "a bird"))
        #expect(try reader.items(run: run.id).map(\.item.key) == ["1", "2", "3"])
    }

    @Test func anOlderSchemaIsReadWithoutMigrating() throws {
        let path = temporaryDatabasePath()
        try FileManager.default.createDirectory(at: URL(fileURLWithPath: path).deletingLastPathComponent(),
                                                withIntermediateDirectories: true)
        let queue = try DatabaseQueue(path: path)
        try Schema.migrator.migrate(queue, upTo: "v1-runs-items-scores")
        try queue.close()
        let before = try Self.fileBytes(path)
        let store = try SQLiteRunStore(readingOnly: path)
        #expect(try store.runs().isEmpty)
        #expect(try store.attention(run: 1, itemKey: "1") == nil)
        #expect(try store.itemsLackingAttention(run: 1).isEmpty)
        #expect(try Self.fileBytes(path) == before)
        #expect(Self.sideFiles(path).isEmpty)
    }

    @Test func missingAndNewerDatabasesAreRefused() throws {
        let path = temporaryDatabasePath()
        #expect(throws: StoreError.databaseMissing(path: path)) { _ = try SQLiteRunStore(readingOnly: path) }
        do { _ = try SQLiteRunStore(path: path) }
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in try db.execute(sql: "PRAGMA user_version = \(Schema.version + 1)") }
        try queue.close()
        #expect(throws: StoreError.newerSchema(path: path, unknownMigrations: ["schema version \(Schema.version + 1)"], generation: Schema.version + 1)) {
            _ = try SQLiteRunStore(readingOnly: path)
        }
    }

    @Test func mergeReadsItsInputsWithoutSideFiles() throws {
        let input = try Self.database()
        let out = try SQLiteRunStore(path: temporaryDatabasePath())
        let outcome = try out.merge(from: [input], metrics: RunEvaluation.metrics)
        #expect(outcome.sources.map(\.itemsAdded) == [2])
        #expect(Self.sideFiles(input).isEmpty)
    }
}

@Test func compareRefusesAPartialRunBesideACompleteOneUnlessAllowed() throws {
    let store = try SQLiteRunStore(path: temporaryDatabasePath())
    func run(_ label: String, items: Int, expected: Int) throws -> RunRecord {
        var new = sampleRun(label: label, images: [1, 2, 3, 4])
        new.expectedItems = expected
        let run = try store.createRun(new).run
        for i in 0..<items {
            try store.recordItem(run: run.id, NewItem(key: "\(i)", ordinal: i, imageID: i + 1, outputText: "a dog"),
                                 score: chairScore(mentions: [("dog", i == 0)], gt: ["dog"], words: 2))
        }
        try store.finishRun(run.id, metrics: RunEvaluation.metrics)
        return try store.run(id: run.id)
    }
    let complete = try run("complete", items: 4, expected: 4)
    let partial = try run("partial", items: 1, expected: 4)
    let builder = ComparisonBuilder(store: store)
    let refusal = PartialRun(run: partial.id, label: "partial", stored: 1, expected: 4)
    #expect(throws: CompareError.partialRuns(partial: [refusal], complete: [complete.id])) {
        try builder.compare(runs: [complete, partial])
    }
    let message = CompareError.partialRuns(partial: [refusal], complete: [complete.id]).description
    #expect(message.contains("run \(partial.id) (partial) has 1 of 4 items (3 missing)"))
    #expect(message.contains("--allow-partial"))
    let allowed = try builder.compare(runs: [complete, partial], options: ComparisonOptions(allowPartial: true))
    #expect(allowed.rows.count == 2)
    #expect(allowed.notes.contains("partial: run \(partial.id) (partial) has 1 of 4 items (3 missing)"))
    // Alone, a partial run is shown (with the note).
    #expect(try builder.compare(runs: [partial]).notes.count == 1)
    #expect(try store.summaries().map(\.missingItems) == [0, 3])
}
