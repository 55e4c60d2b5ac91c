import Foundation
import Testing
import GRDB
import MirageRunner
@testable import MirageStore

@Suite struct AttentionStoreTests {
    @Test func version1DatabaseIsMigratedAndKeepsItsRuns() throws {
        let path = temporaryDatabasePath()
        try FileManager.default.createDirectory(at: URL(fileURLWithPath: path).deletingLastPathComponent(),
                                                withIntermediateDirectories: true)
        // A database as the previous build wrote it: only the v1 migration.
        let queue = try DatabaseQueue(path: path)
        try Schema.migrator.migrate(queue, upTo: "v1-runs-items-scores")
        let hasTable = try queue.read { db in try db.tableExists("item_attention") }
        #expect(!hasTable)
        try queue.close()
        let store = try SQLiteRunStore(path: path)
        let (run, _) = try store.createRun(sampleRun(label: "old"))
        try store.recordItem(run: run.id, NewItem(key: "1", ordinal: 0, outputText: "a dog"))
        let record = StoredAttention(formatVersion: 1, n: 2, tokens: [5, 6], labels: ["a", " dog"],
                                     data: Data((0..<9).flatMap { withUnsafeBytes(of: Float($0).bitPattern.littleEndian, Array.init) }))
        try store.recordAttention(run: run.id, itemKey: "1", record)
        #expect(try store.attention(run: run.id, itemKey: "1") == record)
        #expect(try store.attention(run: run.id, itemKey: "2") == nil)
        var replaced = record
        replaced.labels = ["A", " dog"]
        try store.recordAttention(run: run.id, itemKey: "1", replaced)        // replaces
        #expect(try store.attention(run: run.id, itemKey: "1") == replaced)
        var bad = record
        bad.tokens = [5]
        #expect(throws: StoreError.self) { try store.recordAttention(run: run.id, itemKey: "1", bad) }
        let version = try DatabaseQueue(path: path).read { db in try Int.fetchOne(db, sql: "PRAGMA user_version") }
        #expect(version == 3)
    }

    @Test func newerUserVersionIsRefused() throws {
        let path = temporaryDatabasePath()
        do { _ = try SQLiteRunStore(path: path) }
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in try db.execute(sql: "PRAGMA user_version = \(Schema.version + 1)") }
        try queue.close()
        #expect(throws: StoreError.newerSchema(path: path, unknownMigrations: ["schema version \(Schema.version + 1)"], generation: Schema.version + 1)) {
            _ = try SQLiteRunStore(path: path)
        }
    }
}

@Test func mergeCopiesAttentionAndRefusesDifferentAttention() throws {
    func database(_ value: Float) throws -> SQLiteRunStore {
        let store = try SQLiteRunStore(path: temporaryDatabasePath())
        let (run, _) = try store.createRun(sampleRun(source: "attention-merge"))
        try store.recordItem(run: run.id, NewItem(key: "1", ordinal: 0, outputText: "a dog"))
        try store.recordAttention(run: run.id, itemKey: "1", StoredAttention(
            formatVersion: 1, n: 1, tokens: [5], labels: ["a"],
            data: Data([1, 1, 1, value].flatMap { withUnsafeBytes(of: Float($0).bitPattern.littleEndian, Array.init) })))
        return store
    }
    let a = try database(0.5), b = try database(0.25)
    let out = try SQLiteRunStore(path: temporaryDatabasePath())
    let outcome = try out.merge(from: [a.path], metrics: RunEvaluation.metrics)
    let run = try #require(outcome.runs.first?.id)
    #expect(try out.attention(run: run, itemKey: "1") == a.attention(run: 1, itemKey: "1"))
    #expect(throws: StoreError.self) { _ = try out.merge(from: [b.path], metrics: RunEvaluation.metrics) }   // same item, other attention
}
