import Foundation
import MirageTestSupport
import Testing
import MirageMetrics
import MirageRunner
import MirageData
@testable import MirageStore

/// What only the PostgreSQL store has: its migrations table, read-only sessions, reconnecting. The rest of the
/// store tests run on both backends (`Backend.available`).
@Suite(.dropsScratchDatabases) struct PostgresStoreTests {
    static var configured: Bool { PostgresTestServer.url != nil }

    static func postgres(_ store: any RunRepository) throws -> PostgresRunStore { try #require(store as? PostgresRunStore) }

    @Test(.enabled(if: configured)) func newerSchemaIsRefusedAndLeftUntouched() throws {
        let url = try Backend.postgres.freshLocation()
        let store = try Self.postgres(try RunStores.open(url))
        _ = try store.createRun(sampleRun(label: "keep"))
        // This build recorded itself beside every migration it applied; a newer one adds a migration as 9.9.0.
        let versions = try store.session.transaction { t in
            try t.query("SELECT mirage_version FROM schema_migrations ORDER BY identifier").map { try $0.string("mirage_version") ?? "NULL" }
        }
        #expect(versions == Array(repeating: MirageRelease.version, count: Schema.version))
        _ = try store.session.transaction { t in
            try t.execute("INSERT INTO schema_migrations (identifier, applied_at, mirage_version) VALUES ('v9-from-the-future', 'now', '9.9.0')")
        }
        let shown = RunStores.redacted(url)
        let refusal = StoreError.newerSchema(path: shown, unknownMigrations: ["v9-from-the-future"], writtenBy: "9.9.0", generation: Schema.version + 1)
        #expect(throws: refusal) { _ = try RunStores.open(url) }
        #expect(throws: refusal) { _ = try RunStores.openForReading(url) }
        #expect(refusal.description.contains("Upgrade Mirage to 9.9.0 or later"))
        #expect(try store.runs().map(\.details.label) == ["keep"])
    }

    @Test(.enabled(if: configured)) func anEmptyDatabaseIsNotAStoreToReadAndAReaderNeverWrites() throws {
        let url = try Backend.postgres.freshLocation()
        #expect(throws: StoreError.databaseMissing(path: RunStores.redacted(url))) { _ = try RunStores.openForReading(url) }
        #expect(throws: StoreError.databaseMissing(path: RunStores.redacted(url))) { _ = try RunStores.open(url, create: false) }
        let writer = try RunStores.open(url)
        let run = try writer.createRun(sampleRun(label: "r")).run
        try writer.recordItem(run: run.id, NewItem(key: "1", ordinal: 1, outputText: "a dog"))
        let reader = try RunStores.openForReading(url)
        #expect(reader.isReadOnly)
        #expect(try reader.items(run: run.id).map(\.item.outputText) == ["a dog"])
        #expect(throws: StoreError.readOnlyStore(path: reader.location)) { try reader.setLabel(run: run.id, to: "x") }
    }

    @Test(.enabled(if: configured)) func aTerminatedConnectionIsOpenedAgainAndNothingCommittedIsLost() throws {
        let url = try Backend.postgres.freshLocation()
        // The reconnect note goes to the opener's callback (the CLI's progress notes), not to standard error.
        let notes = Notes()
        let store = try Self.postgres(try RunStores.open(url, note: { notes.add($0) }))
        let run = try store.createRun(sampleRun(source: "reconnect")).run
        try store.recordItem(run: run.id, NewItem(key: "1", ordinal: 1, outputText: "a dog"))
        let pid = try store.session.transaction { t in try t.required(t.scalar("SELECT pg_backend_pid()::bigint AS pid")?.int64("pid")) }
        // Another session ends the store's backend, as a server restart or an administrator would.
        let admin = try Self.postgres(try RunStores.open(url))
        let ended = try admin.session.transaction { t in try t.scalar("SELECT pg_terminate_backend(?::int) AS ok", [.int(pid)])?.bool("ok") }
        #expect(ended == true)
        try store.recordItem(run: run.id, NewItem(key: "2", ordinal: 2, outputText: "a cat"))
        #expect(try store.items(run: run.id).map(\.item.key) == ["1", "2"])
        let newPid = try store.session.transaction { t in try t.required(t.scalar("SELECT pg_backend_pid()::bigint AS pid")?.int64("pid")) }
        #expect(newPid != pid)
        #expect(notes.lines.count == 1, "\(notes.lines)")
        #expect(notes.lines.allSatisfy { $0.hasPrefix("note: lost the connection to ") && $0.contains("reconnecting") }, "\(notes.lines)")
    }

    /// Lines a store reported through its note callback.
    final class Notes: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: [String] = []
        func add(_ line: String) { lock.lock(); stored.append(line); lock.unlock() }
        var lines: [String] { lock.lock(); defer { lock.unlock() }; return stored }
    }

    @Test(.enabled(if: configured)) func aTestCasesDatabasesAreDroppedWhenItEndsEvenByFailing() async throws {
        struct Failure: Error {}
        let created = Notes()
        // A test case that creates a database and then fails: the trait drops the database all the same.
        await #expect(throws: Failure.self) {
            try await ScratchDatabases().provideScope(for: try #require(Test.current), testCase: Test.Case.current) {
                created.add(try Backend.scratchDatabase())
                throw Failure()
            }
        }
        let name = try PostgresLocation(try #require(created.lines.first)).database
        let server = try PostgresSession(location: try PostgresLocation(try #require(PostgresTestServer.url)), readOnly: true)
        let left = try server.transaction { t in try t.scalar("SELECT count(*) AS n FROM pg_database WHERE datname = ?", [.text(name)])?.int64("n") }
        #expect(left == 0, "the database \(name) was left on the server")
    }

    @Test(.enabled(if: configured)) func twoWorkersClaimingTogetherNeverShareAnItem() async throws {
        let url = try Backend.postgres.freshLocation()
        let setup = try RunStores.open(url)
        let run = try setup.createRun(sampleRun(source: "race")).run.id
        let all = (0..<200).map { ItemRef(run: run, key: String($0)) }
        // Overlapping windows: each worker also asks again for items it holds (and gets them again).
        let claims = try await withThrowingTaskGroup(of: Set<ItemRef>.self) { group in
            for w in 0..<4 {
                group.addTask {
                    let store = try RunStores.open(url)
                    var mine = Set<ItemRef>()
                    for start in stride(from: 0, to: all.count, by: 10) {
                        mine.formUnion(try store.claimItems(Array(all[start..<min(start + 20, all.count)]), worker: "w\(w)", lease: 60))
                    }
                    return mine
                }
            }
            return try await group.reduce(into: [Set<ItemRef>]()) { $0.append($1) }
        }
        let union = claims.reduce(Set<ItemRef>()) { $0.union($1) }
        #expect(claims.map(\.count).reduce(0, +) == union.count, "an item was claimed by two workers: \(claims.map(\.count))")
        #expect(union == Set(all))
    }
}

@Test(.dropsScratchDatabases, arguments: Backend.available) func attentionIsRecordedReplacedAndChecked(backend: Backend) throws {
    let store = try backend.fresh()
    let (run, _) = try store.createRun(sampleRun(label: "att"))
    try store.recordItem(run: run.id, NewItem(key: "1", ordinal: 0, outputText: "a dog", outputTokens: [5, 6]))
    try store.recordItem(run: run.id, NewItem(key: "2", ordinal: 1, outputText: "a cat", outputTokens: [7]))
    let record = StoredAttention(formatVersion: 1, n: 2, tokens: [5, 6], labels: ["a", " dog"],
                                 data: Data((0..<9).flatMap { withUnsafeBytes(of: Float($0).bitPattern.littleEndian, Array.init) }))
    try store.recordAttention(run: run.id, itemKey: "1", record)
    #expect(try store.attention(run: run.id, itemKey: "1") == record)
    #expect(try store.attention(run: run.id, itemKey: "2") == nil)
    #expect(try store.itemsWithAttention(run: run.id) == ["1"])
    #expect(try store.itemsLackingAttention(run: run.id) == ["2"])
    var replaced = record
    replaced.labels = ["A", " dog"]
    try store.recordAttention(run: run.id, itemKey: "1", replaced)
    #expect(try store.attention(run: run.id, itemKey: "1") == replaced)
    var bad = record
    bad.tokens = [5]
    #expect(throws: StoreError.self) { try store.recordAttention(run: run.id, itemKey: "1", bad) }
    #expect(throws: StoreError.self) { try store.recordAttention(run: run.id, itemKey: "9", record) }
}

/// `mirage merge` between backends: SQLite shards into PostgreSQL, a PostgreSQL experiment into a SQLite file.
@Suite(.dropsScratchDatabases) struct CrossBackendMergeTests {
    /// A SQLite shard `i` of 2 of one run, its items scored, the first with attention.
    static func shard(_ i: Int, keys: [Int]) throws -> SQLiteRunStore {
        let store = try SQLiteRunStore(path: temporaryDatabasePath())
        var new = sampleRun(source: "experiment:shard=\(i)/2")
        new.details.expectedItems = keys.count
        let run = try store.createRun(new).run.id
        for k in keys {
            try store.recordItem(run: run, NewItem(key: "\(k)", ordinal: k, imageID: k, prompt: "describe\u{0}", outputText: "a dog \(k)\u{0}!",
                                                   outputTokens: [k, 2]),
                                 score: chairScore(mentions: [("dog", k % 2 == 0)], gt: ["dog"], words: 3))
        }
        try store.recordAttention(run: run, itemKey: "\(keys[0])", StoredAttention(formatVersion: 1, n: 2, tokens: [keys[0], 2], labels: ["a", "b"],
                                                                                  data: Data([1, 2, 3, 4])))
        try store.finishRun(run, metrics: RunEvaluation.metrics)
        return store
    }

    static func content(_ store: any RunRepository, run: Int64) throws -> [String] {
        try store.items(run: run).map { stored in
            "\(stored.item.key) \(stored.item.outputText.unicodeScalars.map { String($0.value) }) \(stored.item.prompt ?? "-") "
                + "\(String(describing: stored.score)) \(String(describing: try store.attention(run: run, itemKey: stored.item.key)))"
        }
    }

    @Test(.enabled(if: PostgresStoreTests.configured)) func sqliteShardsIntoPostgresAndBackIntoSQLiteIdempotently() throws {
        let a = try Self.shard(0, keys: [0, 2, 4]), b = try Self.shard(1, keys: [1, 3])
        let url = try Backend.postgres.freshLocation()
        let pg = try RunStores.open(url)
        let other = try pg.createRun(sampleRun(label: "already-there")).run.id   // ids in the output are kept
        let first = try pg.merge(from: [a.path, b.path], metrics: RunEvaluation.metrics)
        let run = try #require(first.runs.first)
        #expect(first.runs.count == 1 && run.id != other && run.status == .complete && run.details.sourceHash == "experiment")
        #expect(first.sources.map(\.itemsAdded) == [3, 2])
        #expect(try pg.items(run: run.id).map(\.item.key) == ["0", "1", "2", "3", "4"])
        #expect(try pg.metrics(run: run.id)["chair_s"] == 0.6)   // 3 of 5 captions hallucinate
        let merged = try Self.content(pg, run: run.id)

        // Again: nothing changes.
        let second = try pg.merge(from: [a.path, b.path], metrics: RunEvaluation.metrics)
        #expect(second.sources.map(\.itemsAdded) == [0, 0] && second.sources.map(\.itemsAlreadyPresent) == [3, 2])
        #expect(try Self.content(pg, run: run.id) == merged && (try pg.runs().count) == 2)
        // The output goes on working: new runs and items get fresh ids.
        let later = try pg.createRun(sampleRun(label: "later")).run.id
        #expect(later > run.id)
        try pg.recordItem(run: later, NewItem(key: "x", ordinal: 0, outputText: "a cat"))

        // PostgreSQL into a SQLite file, twice.
        let file = try SQLiteRunStore(path: temporaryDatabasePath())
        let out = try file.merge(from: [url], metrics: RunEvaluation.metrics)
        #expect(out.sources.map(\.itemsAdded).sorted() == [0, 1, 5])
        let copied = try #require(try file.run(sourceHash: "experiment"))
        #expect(try Self.content(file, run: copied.id) == merged && copied.status == .complete)
        let again = try file.merge(from: [url], metrics: RunEvaluation.metrics)
        #expect(again.sources.map(\.itemsAdded) == [0, 0, 0])
        #expect(try Self.content(file, run: copied.id) == merged)
        #expect(throws: StoreError.self) { _ = try pg.merge(from: [url], metrics: RunEvaluation.metrics) }   // into itself
    }

    /// A merge into PostgreSQL writes what is new in multi-row statements, and merging the same inputs again writes
    /// nothing (no row of any table gets a new version).
    @Test(.enabled(if: PostgresStoreTests.configured)) func aLargeMergeWritesInBatchesAndARepeatedMergeWritesNothing() throws {
        let a = try Self.shard(0, keys: Array(stride(from: 0, to: 2000, by: 2)))
        let b = try Self.shard(1, keys: Array(stride(from: 1, to: 2000, by: 2)))
        let url = try Backend.postgres.freshLocation()
        let pg = try PostgresStoreTests.postgres(try RunStores.open(url))
        _ = try pg.createRun(sampleRun(label: "already-there"))
        let run = try #require(try pg.merge(from: [a.path], metrics: RunEvaluation.metrics).runs.first)

        // The second shard joins the run the first made: 1,000 items and their scores in a few dozen statements
        // (row by row it took one statement per item and per score, over 2,000).
        let before = pg.session.statements.current
        let second = try pg.merge(from: [b.path], metrics: RunEvaluation.metrics)
        let statements = pg.session.statements.current - before
        #expect(second.sources.map(\.itemsAdded) == [1000] && second.runs.map(\.id) == [run.id])
        #expect(statements < 80, "\(statements) statements to merge 1,000 items")
        let merged = try #require(second.runs.first)
        #expect(merged.status == .complete && merged.details.sourceHash == "experiment" && merged.details.expectedItems == 2000)
        #expect(try pg.items(run: run.id).map(\.item.key) == (0..<2000).map(String.init))
        #expect(try pg.metrics(run: run.id)["chair_s"] == 0.5)   // the even keys hallucinate

        // Both shards again: nothing is written.
        let versions = try Self.rowVersions(pg)
        let third = try pg.merge(from: [a.path, b.path], metrics: RunEvaluation.metrics)
        #expect(third.sources.map(\.itemsAdded) == [0, 0] && third.sources.map(\.itemsAlreadyPresent) == [1000, 1000])
        #expect(try Self.rowVersions(pg) == versions, "merging the same shards again wrote rows")

        // What a SQLite merge of the same shards holds, item for item.
        let file = try SQLiteRunStore(path: temporaryDatabasePath())
        let reference = try #require(try file.merge(from: [a.path, b.path], metrics: RunEvaluation.metrics).runs.first)
        #expect(try Self.content(pg, run: run.id) == Self.content(file, run: reference.id))
        #expect(String(describing: try pg.metrics(run: run.id).sorted { $0.key < $1.key })
                == String(describing: try file.metrics(run: reference.id).sorted { $0.key < $1.key }))
    }

    /// Per table: its rows and the sum of their row versions (`xmin`), which any write changes.
    static func rowVersions(_ pg: PostgresRunStore) throws -> [String] {
        try pg.session.transaction { t in
            try CrossBackendCopy.tables.map { table in
                let row = try t.scalar("SELECT count(*) AS n, coalesce(sum(xmin::text::bigint), 0)::bigint AS versions FROM \(table)")
                return "\(table): \(try row?.int64("n") ?? -1) rows, versions \(try row?.int64("versions") ?? -1)"
            }
        }
    }
}
