import Foundation
import GRDB
import MirageData
import MirageMetrics

/// The SQLite run store (the embedded default `RunRepository`): protocols, models, decoders, runs, items,
/// per-item scores, run metrics and item claims.
///
/// One `SQLiteRunStore` may be shared by threads; several processes may write to one database at once (WAL mode,
/// immediate write transactions, a busy timeout). Every `recordItem` is its own transaction, so a killed
/// process loses at most the item it was writing.
public final class SQLiteRunStore: RunRepository {
    public let path: String
    public var location: String { path }
    /// Nil when the store was opened read-only.
    private let pool: DatabasePool?
    private let reader: ReadOnlyConnection?
    /// True when the store was opened with `readOnly:`.
    public var isReadOnly: Bool { pool == nil }

    /// Opens (creating it and its folder if needed) and migrates the database at `path`.
    /// - Throws: `StoreError.newerSchema` without touching the file when a newer Mirage wrote it.
    public init(path: String, create: Bool = true) throws {
        self.path = path
        reader = nil
        let fm = FileManager.default
        let exists = fm.fileExists(atPath: path)
        if !exists && !create { throw StoreError.databaseMissing(path: path) }
        if exists { try Self.checkSchemaReadOnly(path: path) }
        else {
            let dir = URL(fileURLWithPath: path).deletingLastPathComponent()
            try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        }
        var config = Configuration()
        config.busyMode = .callback(Self.waitForWriter)
        config.foreignKeysEnabled = true
        // WAL + NORMAL: a commit survives the process being killed (the WAL is in the OS), only a power loss
        // may drop the last commits; one fsync per item would make imports I/O-bound.
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        do {
            pool = try Self.openAndMigrate(path: path, configuration: config)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.sqlite(path: path, message: "\(error)")
        }
    }

    /// SQLite's busy handler for writers of several processes: waits up to a minute for the other
    /// process's transaction, polling every 50 µs for the first 0.1 s and every millisecond after that.
    /// SQLite's own timeout (`busy_timeout`) sleeps 1, 2, 5, 10, … ms between tries; with item
    /// transactions of under a millisecond that made two workers on one file wait more than they worked
    /// (1,000 tiny-model items: 1.7 s with one worker, 3.6 s with two).
    @Sendable static func waitForWriter(_ tries: Int) -> Bool {
        let quickTries = 2_000 // 2,000 × 50 µs = 0.1 s
        if tries < quickTries { usleep(50); return true }
        guard tries < quickTries + 59_900 else { return false } // then 59.9 s of 1 ms waits
        usleep(1_000)
        return true
    }

    /// Opens the pool and migrates, one process at a time, retrying while another process holds a lock.
    ///
    /// Switching a new file to WAL (`PRAGMA journal_mode = WAL`, run when the pool opens) does not wait on
    /// the busy timeout: SQLite answers SQLITE_BUSY at once when a second process is opening the same new
    /// file. Two `mirage` processes started together on a fresh database hit this, so opening retries
    /// with a short random back-off for up to a minute (the busy timeout everything else uses).
    private static func openAndMigrate(path: String, configuration: Configuration) throws -> DatabasePool {
        // Migrations read the applied list and then create tables in separate steps, so two processes
        // migrating one new file race ("table already exists"). An exclusive flock on the database's folder
        // serializes opening across processes for the few milliseconds it takes (flock, not fcntl, so it
        // never interacts with SQLite's own locks).
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let folderDescriptor = open(folder, O_RDONLY)
        if folderDescriptor >= 0 { _ = flock(folderDescriptor, LOCK_EX) }
        defer { if folderDescriptor >= 0 { _ = flock(folderDescriptor, LOCK_UN); close(folderDescriptor) } }
        let deadline = Date().addingTimeInterval(60)
        var generator = SystemRandomNumberGenerator()
        while true {
            do {
                let pool = try DatabasePool(path: path, configuration: configuration)
                let migrator = Schema.migrator
                // Re-check through the pool: another process may have migrated since the read-only check.
                try pool.read { db in
                    let unknown = try migrator.hasBeenSuperseded(db) ? try Self.unknownMigrations(db) : []
                    if !unknown.isEmpty { throw try Schema.newerSchema(db, path: path, unknown: unknown) }
                }
                try migrator.migrate(pool)
                return pool
            } catch let error as DatabaseError
                        where (error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED)
                        && Date() < deadline {
                usleep(UInt32.random(in: 5_000...40_000, using: &generator))
            }
        }
    }

    static func unknownMigrations(_ db: Database) throws -> [String] {
        let known = Set(Schema.migrator.migrations)
        return try Schema.migrator.appliedIdentifiers(db).filter { !known.contains($0) }.sorted()
    }

    /// Opens an existing file read-only (creating no side files) and refuses it when it comes from a newer schema.
    static func checkSchemaReadOnly(path: String) throws {
        do {
            try ReadOnlyConnection(path: path).read { db in try checkSchema(db, path: path) }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.sqlite(path: path, message: "\(error) (is it a Mirage run database?)")
        }
    }

    /// Opens an existing database for reading only: no migration, no write, and no `-wal`/`-shm` files created
    /// (see `ReadOnlyConnection`), so a database the user may read but not write can be listed, exported and
    /// compared, and readers of other users never leave files that lock the owner out. A database of an older
    /// schema is read as it is (the attention of a version-1 database reads as absent).
    /// - Parameter warn: receives a warning when commits still in the write-ahead log cannot be read.
    public init(readingOnly path: String, warn: (String) -> Void = { _ in }) throws {
        self.path = path
        pool = nil
        guard FileManager.default.fileExists(atPath: path) else { throw StoreError.databaseMissing(path: path) }
        guard access(path, R_OK) == 0 else {
            throw StoreError.sqlite(path: path, message: "cannot read the file (\(String(cString: strerror(errno)))); "
                + "ask its owner for read access or copy it somewhere you can read")
        }
        do {
            let connection = try ReadOnlyConnection(path: path)
            try connection.read { db in try Self.checkSchema(db, path: path) }
            if let warning = connection.warning { warn(warning) }
            reader = connection
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.sqlite(path: path, message: "\(error) (is it a Mirage run database?)")
        }
    }

    // MARK: Transactions

    /// A write in an IMMEDIATE transaction (takes the write lock up front, so two processes queue on the
    /// busy timeout instead of failing on a lock upgrade).
    func write<T>(_ body: (Database) throws -> T) throws -> T {
        guard let pool else { throw StoreError.readOnlyStore(path: path) }
        do {
            return try pool.writeWithoutTransaction { db in
                var result: T?
                try db.inTransaction(.immediate) {
                    result = try body(db)
                    return .commit
                }
                return result!
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.sqlite(path: path, message: "\(error)")
        }
    }

    func read<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            if let reader { return try reader.read(body) }
            return try pool!.read(body)
        } catch let error as StoreError { throw error } catch {
            throw StoreError.sqlite(path: path, message: "\(error)")
        }
    }

    static func now() -> String { StoreClock.now() }

    // MARK: Registration

    private func upsertProtocol(_ db: Database, _ p: EvalProtocol, name: String?) throws -> Int64 {
        let hash = p.hash
        if let id = try Int64.fetchOne(db, sql: "SELECT id FROM protocols WHERE hash = ?", arguments: [hash]) {
            if let name { try db.execute(sql: "UPDATE protocols SET name = ? WHERE id = ? AND name IS NULL", arguments: [name, id]) }
            return id
        }
        try db.execute(sql: """
            INSERT INTO protocols (hash, name, task, image_ids, image_count, prompt_template, max_new_tokens,
                question_file, question_checksum, split, answer_parser, vocabulary_checksum, ground_truth_checksum,
                canonical_json) VALUES (?, ?, ?, ?, ?, \(ExactText.placeholder), ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [hash, name, p.task.rawValue, CanonicalJSON.string(p.imageIDs), p.imageIDs.count,
                             ExactText.bind(p.promptTemplate), p.maxNewTokens, p.questionFile, p.questionChecksum, p.split,
                             p.answerParser, p.vocabularyChecksum, p.groundTruthChecksum, p.canonicalJSON])
        return db.lastInsertedRowID
    }

    private func upsertModel(_ db: Database, _ m: ModelSpec) throws -> Int64 {
        try db.execute(sql: "INSERT OR IGNORE INTO models (name, architecture, fingerprint) VALUES (?, ?, ?)",
                       arguments: [m.name, m.architecture, m.fingerprint])
        return try Int64.fetchOne(db, sql: "SELECT id FROM models WHERE name = ? AND architecture = ? AND fingerprint = ?",
                                  arguments: [m.name, m.architecture, m.fingerprint])!
    }

    private func upsertDecoder(_ db: Database, _ d: DecoderSpec) throws -> Int64 {
        try db.execute(sql: "INSERT OR IGNORE INTO decoders (name, parameters) VALUES (?, ?)",
                       arguments: [d.name, d.parametersJSON])
        return try Int64.fetchOne(db, sql: "SELECT id FROM decoders WHERE name = ? AND parameters = ?",
                                  arguments: [d.name, d.parametersJSON])!
    }

    // MARK: Runs

    /// Creates a run, or returns the existing run with the same `sourceHash` (so an interrupted import
    /// resumes, and two processes importing the same file end up with one run).
    public func createRun(_ new: NewRun) throws -> (run: RunRecord, created: Bool) {
        let id: Int64 = try write { db in
            if let hash = new.sourceHash,
               let existing = try Int64.fetchOne(db, sql: "SELECT id FROM runs WHERE source_hash = ?", arguments: [hash]) {
                return -existing
            }
            if let label = new.label,
               let other = try Int64.fetchOne(db, sql: "SELECT id FROM runs WHERE label = ?", arguments: [label]) {
                throw StoreError.labelTaken(label, run: other)
            }
            let protocolID = try upsertProtocol(db, new.evalProtocol, name: new.protocolName)
            let modelID = try upsertModel(db, new.model)
            let decoderID = try upsertDecoder(db, new.decoder)
            let now = Self.now()
            try db.execute(sql: """
                INSERT INTO runs (protocol_id, model_id, decoder_id, seed, label, source_hash, source_path,
                    expected_items, mirage_version, git_revision, host, created_at, updated_at, status)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running')
                """, arguments: [protocolID, modelID, decoderID, new.seed, new.label, new.sourceHash, new.sourcePath,
                                 new.expectedItems, new.mirageVersion, new.gitRevision, new.host, now, now])
            return db.lastInsertedRowID
        }
        return (try run(id: abs(id)), id > 0)
    }

    /// The run imported from this source hash, if any.
    public func run(sourceHash: String) throws -> RunRecord? {
        try read { db in
            try Int64.fetchOne(db, sql: "SELECT id FROM runs WHERE source_hash = ?", arguments: [sourceHash])
        }.map { try run(id: $0) }
    }

    static let runSelect = StoredRows.runSelect

    static func runRecord(_ row: Row) throws -> RunRecord { try StoredRows.runRecord(GRDBColumns(row)) }

    public func run(id: Int64) throws -> RunRecord {
        guard let run = try read({ db in
            try Row.fetchOne(db, sql: Self.runSelect + " WHERE r.id = ?", arguments: [id]).map(Self.runRecord)
        }) else { throw StoreError.runNotFound(String(id)) }
        return run
    }

    /// Finds a run by id or by label.
    public func resolveRun(_ reference: String) throws -> RunRecord {
        if let id = Int64(reference), let run = try? run(id: id) { return run }
        let ids = try read { db in
            try Int64.fetchAll(db, sql: "SELECT id FROM runs WHERE label = ?", arguments: [reference])
        }
        guard let id = ids.first else { throw StoreError.runNotFound(reference) }
        return try run(id: id)
    }

    /// All runs matching `filter`, oldest first.
    public func runs(_ filter: RunFilter = RunFilter()) throws -> [RunRecord] {
        let (clauses, args) = StoredRows.conditions(filter)
        let sql = Self.runSelect + (clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ")) + " ORDER BY r.id"
        return try read { db in
            try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)).map(Self.runRecord)
        }
    }

    /// Runs with item counts and stored metrics, for listings.
    public func summaries(_ filter: RunFilter = RunFilter()) throws -> [RunSummary] {
        try runs(filter).map { run in
            let (items, scored) = try read { db in
                (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM items WHERE run_id = ?", arguments: [run.id]) ?? 0,
                 try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM item_scores WHERE run_id = ?", arguments: [run.id]) ?? 0)
            }
            return RunSummary(run: run, itemCount: items, scoredCount: scored, metrics: try metrics(run: run.id))
        }
    }

    public func setLabel(run id: Int64, to label: String?) throws {
        try write { db in
            if let label, let other = try Int64.fetchOne(db, sql: "SELECT id FROM runs WHERE label = ? AND id != ?",
                                                          arguments: [label, id]) {
                throw StoreError.labelTaken(label, run: other)
            }
            try db.execute(sql: "UPDATE runs SET label = ?, updated_at = ? WHERE id = ?", arguments: [label, Self.now(), id])
            if db.changesCount == 0 { throw StoreError.runNotFound(String(id)) }
        }
    }

    /// Deletes a run with its items, scores and metrics (protocols, models and decoders stay).
    public func deleteRun(id: Int64) throws {
        try write { db in
            try db.execute(sql: "DELETE FROM runs WHERE id = ?", arguments: [id])
            if db.changesCount == 0 { throw StoreError.runNotFound(String(id)) }
        }
    }

    // MARK: Items

    /// Keys of the items already recorded for a run (a resuming runner skips them).
    public func recordedItemKeys(run: Int64) throws -> Set<String> {
        Set(try read { db in try String.fetchAll(db, sql: "SELECT item_key FROM items WHERE run_id = ?", arguments: [run]) })
    }

    /// Deletes the run's failed items (their scores and side rows go with them) so a resumed run decodes them
    /// again, and marks the run running until `finishRun`. Returns how many were deleted.
    @discardableResult
    public func deleteFailedItems(run: Int64) throws -> Int {
        try write { db in
            try db.execute(sql: "DELETE FROM items WHERE run_id = ? AND status = 'failed'", arguments: [run])
            let deleted = db.changesCount
            if deleted > 0 {
                try db.execute(sql: "UPDATE runs SET status = 'running', finished_at = NULL, updated_at = ? WHERE id = ?",
                               arguments: [Self.now(), run])
            }
            return deleted
        }
    }

    /// Keys of the items that have a score.
    public func scoredItemKeys(run: Int64) throws -> Set<String> {
        Set(try read { db in
            try String.fetchAll(db, sql: """
                SELECT i.item_key FROM items i JOIN item_scores s ON s.item_id = i.id WHERE i.run_id = ?
                """, arguments: [run])
        })
    }

    /// Records one item, and its score when given, in one transaction. Recording a key twice is an error
    /// unless the stored item is identical (then nothing happens), so resuming is idempotent.
    @discardableResult
    public func recordItem(run: Int64, _ item: NewItem, score: ItemScore? = nil) throws -> Int64 {
        // Everything that needs no database is done before the write transaction: other workers wait for it.
        // Statements are cached (prepared once per connection, not parsed and authorized per item).
        let now = Self.now(), tokens = item.outputTokens.map { CanonicalJSON.string($0) }
        return try write { db in
            if let existing = try Row.fetchOne(db.cachedStatement(sql: """
                SELECT id, \(ExactText.column("output_text", as: "output_exact")) FROM items WHERE run_id = ? AND item_key = ?
                """), arguments: [run, item.key]) {
                // Compared as Unicode scalars: String's == treats canonically equivalent spellings (NFC and NFD)
                // as equal, and the store keeps them apart.
                let text = ExactText.string(existing["output_exact"]) ?? ""
                guard text.unicodeScalars.elementsEqual(item.outputText.unicodeScalars) else {
                    throw StoredRows.differentOutput(run: run, key: item.key)
                }
                let id: Int64 = existing["id"]
                if let score { try Self.upsertScore(db, run: run, itemID: id, score) }
                return id
            }
            try db.cachedStatement(sql: """
                INSERT INTO items (run_id, item_key, ordinal, image_id, question_id, prompt, output_text, output_tokens,
                    prefill_seconds, decode_seconds, forward_passes, seed, status, failure_reason, created_at)
                VALUES (?, ?, ?, ?, ?, \(ExactText.placeholder), \(ExactText.placeholder), ?, ?, ?, ?, ?, ?,
                        \(ExactText.placeholder), ?)
                """).execute(arguments: [run, item.key, item.ordinal, item.imageID, item.questionID, ExactText.bind(item.prompt),
                                         ExactText.bind(item.outputText), tokens,
                                         item.prefillSeconds, item.decodeSeconds, item.forwardPasses, item.seed,
                                         item.failureReason == nil ? "ok" : "failed", ExactText.bind(item.failureReason), now])
            let id = db.lastInsertedRowID
            if let score { try Self.upsertScore(db, run: run, itemID: id, score) }
            try db.cachedStatement(sql: "UPDATE runs SET updated_at = ? WHERE id = ?").execute(arguments: [now, run])
            try db.cachedStatement(sql: "DELETE FROM item_claims WHERE run_id = ? AND item_key = ?").execute(arguments: [run, item.key])
            return id
        }
    }

    /// Records (or replaces) the score of an item already stored.
    public func recordScore(run: Int64, itemKey: String, _ score: ItemScore) throws {
        try write { db in
            guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM items WHERE run_id = ? AND item_key = ?",
                                              arguments: [run, itemKey]) else {
                throw StoreError.invalid("run \(run) has no item '\(itemKey)' to score")
            }
            try Self.upsertScore(db, run: run, itemID: id, score)
        }
    }

    private static func upsertScore(_ db: Database, run: Int64, itemID: Int64, _ score: ItemScore) throws {
        let c = StoredRows.scoreColumns(score)
        try db.cachedStatement(sql: """
            INSERT OR REPLACE INTO item_scores (item_id, run_id, kind, mentions, ground_truth, mention_count,
                hallucinated_count, word_count, label, parsed_answer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [itemID, run, c.kind, c.mentions, c.groundTruth, c.mentionCount, c.hallucinatedCount,
                                     c.wordCount, c.label, c.parsed])
    }

    /// All items of a run in ordinal order, with their scores.
    public func items(run: Int64) throws -> [StoredItem] {
        try read { db in try Self.items(db, run: run) }
    }

    /// The run's items with their scores. The free-text columns are selected once, exactly (`ExactText`), not
    /// also through `i.*`.
    static func items(_ db: Database, run: Int64) throws -> [StoredItem] {
        try Row.fetchAll(db, sql: """
            SELECT i.id, i.item_key, i.ordinal, i.image_id, i.question_id, i.output_tokens, i.prefill_seconds,
                   i.decode_seconds, i.forward_passes, i.seed, i.created_at,
                   \(ExactText.column("i.prompt", as: "prompt_exact")),
                   \(ExactText.column("i.output_text", as: "output_exact")),
                   \(ExactText.column("i.failure_reason", as: "failure_exact")),
                   s.kind, s.mentions, s.ground_truth, s.word_count, s.label, s.parsed_answer
            FROM items i LEFT JOIN item_scores s ON s.item_id = i.id WHERE i.run_id = ? ORDER BY i.ordinal, i.id
            """, arguments: [run]).map(Self.storedItem)
    }

    private static func storedItem(_ row: Row) throws -> StoredItem { try StoredRows.storedItem(GRDBColumns(row)) }

    // MARK: Metrics

    /// Computes the run's metrics from its items with `metrics` (inside the transaction that stores them),
    /// stores them, and sets the run's status.
    @discardableResult
    public func finishRun(_ id: Int64, status: RunStatus = .complete, metrics: RunMetricsFunction) throws -> [String: Double] {
        try write { db in try Self.finishRun(db, id: id, status: status, metrics: metrics) }
    }

    /// `finishRun` inside a caller's transaction (a merge recomputes the metrics of the runs it combined).
    static func finishRun(_ db: Database, id: Int64, status: RunStatus, metrics compute: RunMetricsFunction) throws -> [String: Double] {
        guard let run = try Row.fetchOne(db, sql: runSelect + " WHERE r.id = ?", arguments: [id]).map(runRecord) else {
            throw StoreError.runNotFound(String(id))
        }
        let metrics = try compute(run, try items(db, run: id))
        try db.execute(sql: "DELETE FROM run_metrics WHERE run_id = ?", arguments: [id])
        for (name, value) in metrics.sorted(by: { $0.key < $1.key }) {
            try db.execute(sql: "INSERT INTO run_metrics (run_id, name, value) VALUES (?, ?, ?)",
                           arguments: [id, name, value.isNaN ? nil : value])
        }
        let now = Self.now()
        try db.execute(sql: "UPDATE runs SET status = ?, finished_at = ?, updated_at = ? WHERE id = ?",
                       arguments: [status.rawValue, now, now, id])
        return metrics
    }

    /// The stored metrics of a run (empty until `finishRun`); undefined ratios are NaN.
    public func metrics(run: Int64) throws -> [String: Double] {
        try read { db in
            var out: [String: Double] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT name, value FROM run_metrics WHERE run_id = ?", arguments: [run]) {
                out[row["name"]] = (row["value"] as Double?) ?? .nan
            }
            return out
        }
    }
}
