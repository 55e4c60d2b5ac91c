import Foundation
import MirageData
import MirageMetrics

/// The PostgreSQL run store (`--db postgres://...`): the tables, identities and semantics of `SQLiteRunStore` on a
/// database server, so workers on several machines share one experiment. Open it through `RunStores`.
///
/// Each method is one transaction on the store's connection (one connection per store; calls from several
/// threads queue). Every `recordItem` is its own transaction, so a killed worker loses at most the items it had
/// claimed and not yet recorded; those return to the pool when its lease expires.
public final class PostgresRunStore: RunRepository {
    let session: PostgresSession
    public var location: String { session.location.shown }
    public var isReadOnly: Bool { session.readOnly }

    /// Connects and migrates (`create`), or checks that the database already holds a Mirage store (`!create`).
    /// - Throws: `StoreError.newerSchema` without changing anything when a newer Mirage migrated the database.
    /// `note` receives what the store has to say while it works (a lost connection being opened again).
    convenience init(url: String, create: Bool, environment: [String: String] = ProcessInfo.processInfo.environment,
                     note: @escaping @Sendable (String) -> Void = { _ in }) throws {
        try self.init(url: url, readOnly: false, environment: environment, note: note) { t, applied, shown in
            if applied.isEmpty && !create { throw StoreError.databaseMissing(path: shown) }
            if applied.count < PostgresSchema.migrations.count { try PostgresSchema.migrate(t, location: shown) }
        }
    }

    /// Connects for reading only (no migration; the session refuses writes), checking the schema.
    convenience init(readingOnly url: String, environment: [String: String] = ProcessInfo.processInfo.environment,
                     note: @escaping @Sendable (String) -> Void = { _ in }) throws {
        try self.init(url: url, readOnly: true, environment: environment, note: note) { _, applied, shown in
            if applied.isEmpty { throw StoreError.databaseMissing(path: shown) }
        }
    }

    /// Both initialisers: connects, then in one transaction refuses a database a newer Mirage migrated and runs
    /// `prepare` with the migrations already applied and the location as messages show it.
    private init(url: String, readOnly: Bool, environment: [String: String], note: @escaping @Sendable (String) -> Void,
                 prepare: (SQLTransaction, [String], String) throws -> Void) throws {
        let location = try PostgresLocation(url, environment: environment)
        session = try PostgresSession(location: location, readOnly: readOnly, environment: environment, note: note)
        let shown = location.shown
        try session.transaction { t in
            let applied = try PostgresSchema.applied(t)
            try PostgresSchema.checkNotNewer(t, applied, location: shown)
            try prepare(t, applied, shown)
        }
    }

    func read<T>(_ body: (SQLTransaction) throws -> T) throws -> T { try session.transaction(body) }

    func write<T>(_ body: (SQLTransaction) throws -> T) throws -> T {
        guard !isReadOnly else { throw StoreError.readOnlyStore(path: location) }
        return try session.transaction(body)
    }

    // MARK: Registration

    private func upsertProtocol(_ t: SQLTransaction, _ p: EvalProtocol, name: String?) throws -> Int64 {
        let hash = p.hash
        if let id = try t.scalar("SELECT id FROM protocols WHERE hash = ?", [.text(hash)])?.int64("id") {
            if let name { try t.execute("UPDATE protocols SET name = ? WHERE id = ? AND name IS NULL", [.text(name), .int(id)]) }
            return id
        }
        return try t.id("""
            INSERT INTO protocols (hash, name, task, image_ids, image_count, prompt_template, max_new_tokens,
                question_file, question_checksum, split, answer_parser, vocabulary_checksum, ground_truth_checksum,
                canonical_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id
            """, [.text(hash), SQLValue(name), .text(p.task.rawValue), .text(CanonicalJSON.string(p.imageIDs)),
                  SQLValue(p.imageIDs.count), SQLValue(exact: p.promptTemplate), SQLValue(p.maxNewTokens), SQLValue(p.questionFile),
                  SQLValue(p.questionChecksum), SQLValue(p.split), SQLValue(p.answerParser), SQLValue(p.vocabularyChecksum),
                  SQLValue(p.groundTruthChecksum), .text(p.canonicalJSON)])
    }

    private func upsertModel(_ t: SQLTransaction, _ m: ModelSpec) throws -> Int64 {
        let key: [SQLValue] = [.text(m.name), .text(m.architecture), .text(m.fingerprint)]
        try t.execute("INSERT INTO models (name, architecture, fingerprint) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", key)
        return try t.id("SELECT id FROM models WHERE name = ? AND architecture = ? AND fingerprint = ?", key)
    }

    private func upsertDecoder(_ t: SQLTransaction, _ d: DecoderSpec) throws -> Int64 {
        let key: [SQLValue] = [.text(d.name), .text(d.parametersJSON)]
        try t.execute("INSERT INTO decoders (name, parameters) VALUES (?, ?) ON CONFLICT DO NOTHING", key)
        return try t.id("SELECT id FROM decoders WHERE name = ? AND parameters = ?", key)
    }

    // MARK: Runs

    public func createRun(_ new: NewRun) throws -> (run: RunRecord, created: Bool) {
        let id: Int64 = try write { t in
            // One process at a time, so workers starting together on one experiment find one run.
            try t.execute("SELECT pg_advisory_xact_lock(?)", [.int(PostgresSchema.runLock)])
            if let hash = new.sourceHash, let existing = try t.scalar("SELECT id FROM runs WHERE source_hash = ?", [.text(hash)])?.int64("id") {
                return -existing
            }
            if let label = new.label, let other = try t.scalar("SELECT id FROM runs WHERE label = ?", [.text(label)])?.int64("id") {
                throw StoreError.labelTaken(label, run: other)
            }
            let protocolID = try upsertProtocol(t, new.evalProtocol, name: new.protocolName)
            let modelID = try upsertModel(t, new.model)
            let decoderID = try upsertDecoder(t, new.decoder)
            let now = StoreClock.now()
            return try t.id("""
                INSERT INTO runs (protocol_id, model_id, decoder_id, seed, label, source_hash, source_path,
                    expected_items, mirage_version, git_revision, host, created_at, updated_at, status)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running') RETURNING id
                """, [.int(protocolID), .int(modelID), .int(decoderID), SQLValue(new.seed), SQLValue(new.label),
                      SQLValue(new.sourceHash), SQLValue(new.sourcePath), SQLValue(new.expectedItems), .text(new.mirageVersion),
                      SQLValue(new.gitRevision), .text(new.host), .text(now), .text(now)])
        }
        return (try run(id: abs(id)), id > 0)
    }

    public func run(sourceHash: String) throws -> RunRecord? {
        try read { t in try t.scalar("SELECT id FROM runs WHERE source_hash = ?", [.text(sourceHash)])?.int64("id") }
            .map { try run(id: $0) }
    }

    static let runSelect = StoredRows.runSelect

    static func run(_ t: SQLTransaction, id: Int64) throws -> RunRecord? {
        try t.scalar(runSelect + " WHERE r.id = ?", [.int(id)]).map(StoredRows.runRecord)
    }

    public func run(id: Int64) throws -> RunRecord {
        guard let run = try read({ t in try Self.run(t, id: id) }) else { throw StoreError.runNotFound(String(id)) }
        return run
    }

    public func resolveRun(_ reference: String) throws -> RunRecord {
        if let id = Int64(reference), let run = try? run(id: id) { return run }
        guard let id = try read({ t in try t.scalar("SELECT id FROM runs WHERE label = ? ORDER BY id", [.text(reference)])?.int64("id") }) else {
            throw StoreError.runNotFound(reference)
        }
        return try run(id: id)
    }

    public func runs(_ filter: RunFilter) throws -> [RunRecord] {
        let (clauses, values) = StoredRows.conditions(filter)
        let sql = Self.runSelect + (clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ")) + " ORDER BY r.id"
        return try read { t in try t.query(sql, values.map { .text($0) }).map(StoredRows.runRecord) }
    }

    public func summaries(_ filter: RunFilter) throws -> [RunSummary] {
        try runs(filter).map { run in
            let (items, scored) = try read { t in
                (try t.count("SELECT COUNT(*) AS n FROM items WHERE run_id = ?", [.int(run.id)]),
                 try t.count("SELECT COUNT(*) AS n FROM item_scores WHERE run_id = ?", [.int(run.id)]))
            }
            return RunSummary(run: run, itemCount: items, scoredCount: scored, metrics: try metrics(run: run.id))
        }
    }

    public func setLabel(run id: Int64, to label: String?) throws {
        try write { t in
            if let label, let other = try t.scalar("SELECT id FROM runs WHERE label = ? AND id != ?", [.text(label), .int(id)])?.int64("id") {
                throw StoreError.labelTaken(label, run: other)
            }
            let changed = try t.execute("UPDATE runs SET label = ?, updated_at = ? WHERE id = ?", [SQLValue(label), .text(StoreClock.now()), .int(id)])
            if changed == 0 { throw StoreError.runNotFound(String(id)) }
        }
    }

    public func deleteRun(id: Int64) throws {
        try write { t in
            if try t.execute("DELETE FROM runs WHERE id = ?", [.int(id)]) == 0 { throw StoreError.runNotFound(String(id)) }
        }
    }

    // MARK: Items

    public func recordedItemKeys(run: Int64) throws -> Set<String> {
        Set(try read { t in try t.query("SELECT item_key FROM items WHERE run_id = ?", [.int(run)]).compactMap { try $0.string("item_key") } })
    }

    public func scoredItemKeys(run: Int64) throws -> Set<String> {
        Set(try read { t in
            try t.query("SELECT i.item_key FROM items i JOIN item_scores s ON s.item_id = i.id WHERE i.run_id = ?", [.int(run)])
                .compactMap { try $0.string("item_key") }
        })
    }

    @discardableResult
    public func deleteFailedItems(run: Int64) throws -> Int {
        try write { t in
            let deleted = try t.execute("DELETE FROM items WHERE run_id = ? AND status = 'failed'", [.int(run)])
            if deleted > 0 {
                try t.execute("UPDATE runs SET status = 'running', finished_at = NULL, updated_at = ? WHERE id = ?",
                              [.text(StoreClock.now()), .int(run)])
            }
            return deleted
        }
    }

    @discardableResult
    public func recordItem(run: Int64, _ item: NewItem, score: ItemScore?) throws -> Int64 {
        let now = StoreClock.now()
        return try write { t in
            let inserted = try t.scalar("""
                INSERT INTO items (run_id, item_key, ordinal, image_id, question_id, prompt, output_text, output_tokens,
                    prefill_seconds, decode_seconds, forward_passes, seed, status, failure_reason, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (run_id, item_key) DO NOTHING RETURNING id
                """, [.int(run), .text(item.key), SQLValue(item.ordinal), SQLValue(item.imageID), SQLValue(item.questionID),
                      SQLValue(exact: item.prompt), SQLValue(exact: item.outputText),
                      SQLValue(item.outputTokens.map { CanonicalJSON.string($0) }), SQLValue(item.prefillSeconds),
                      SQLValue(item.decodeSeconds), SQLValue(item.forwardPasses), SQLValue(item.seed),
                      .text(item.failureReason == nil ? "ok" : "failed"), SQLValue(exact: item.failureReason),
                      .text(now)])?.int64("id")
            let id: Int64
            if let inserted {
                id = inserted
            } else {
                // Already there: the same output is a no-op (a resumed or retried write), another one an error.
                guard let existing = try t.scalar("SELECT id, output_text FROM items WHERE run_id = ? AND item_key = ?",
                                                  [.int(run), .text(item.key)]) else {
                    throw StoreError.invalid("run \(run) does not exist; create it before recording items")
                }
                // Compared byte for byte (String's == would take NFC and NFD spellings as equal).
                guard try existing.bytes("output_text") == Data(item.outputText.utf8) else {
                    throw StoredRows.differentOutput(run: run, key: item.key)
                }
                id = try t.required(existing.int64("id"))
            }
            if let score { try Self.upsertScore(t, run: run, itemID: id, score) }
            try t.execute("DELETE FROM item_claims WHERE run_id = ? AND item_key = ?", [.int(run), .text(item.key)])
            // Last: the run's row stays locked until COMMIT, and every worker recording into the run updates it, so
            // taken earlier it would queue the workers' other statements behind each other's round trips.
            if inserted != nil { try t.execute("UPDATE runs SET updated_at = ? WHERE id = ?", [.text(now), .int(run)]) }
            return id
        }
    }

    public func recordScore(run: Int64, itemKey: String, _ score: ItemScore) throws {
        try write { t in
            guard let id = try t.scalar("SELECT id FROM items WHERE run_id = ? AND item_key = ?", [.int(run), .text(itemKey)])?.int64("id") else {
                throw StoreError.invalid("run \(run) has no item '\(itemKey)' to score")
            }
            try Self.upsertScore(t, run: run, itemID: id, score)
        }
    }

    private static func upsertScore(_ t: SQLTransaction, run: Int64, itemID: Int64, _ score: ItemScore) throws {
        let c = StoredRows.scoreColumns(score)
        try t.execute("""
            INSERT INTO item_scores (item_id, run_id, kind, mentions, ground_truth, mention_count, hallucinated_count,
                word_count, label, parsed_answer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (item_id) DO UPDATE SET run_id = excluded.run_id, kind = excluded.kind, mentions = excluded.mentions,
                ground_truth = excluded.ground_truth, mention_count = excluded.mention_count,
                hallucinated_count = excluded.hallucinated_count, word_count = excluded.word_count,
                label = excluded.label, parsed_answer = excluded.parsed_answer
            """, [.int(itemID), .int(run), .text(c.kind), SQLValue(c.mentions), SQLValue(c.groundTruth), SQLValue(c.mentionCount),
                  SQLValue(c.hallucinatedCount), SQLValue(c.wordCount), SQLValue(c.label), SQLValue(c.parsed)])
    }

    public func items(run: Int64) throws -> [StoredItem] {
        try read { t in try Self.items(t, run: run) }
    }

    static func items(_ t: SQLTransaction, run: Int64) throws -> [StoredItem] {
        try t.query("""
            SELECT i.id, i.item_key, i.ordinal, i.image_id, i.question_id, i.output_tokens, i.prefill_seconds,
                   i.decode_seconds, i.forward_passes, i.seed, i.created_at, i.prompt AS prompt_exact,
                   i.output_text AS output_exact, i.failure_reason AS failure_exact,
                   s.kind, s.mentions, s.ground_truth, s.word_count, s.label, s.parsed_answer
            FROM items i LEFT JOIN item_scores s ON s.item_id = i.id WHERE i.run_id = ? ORDER BY i.ordinal, i.id
            """, [.int(run)]).map(StoredRows.storedItem)
    }

    // MARK: Metrics

    @discardableResult
    public func finishRun(_ id: Int64, status: RunStatus, metrics: RunMetricsFunction) throws -> [String: Double] {
        try write { t in try Self.finishRun(t, id: id, status: status, metrics: metrics) }
    }

    static func finishRun(_ t: SQLTransaction, id: Int64, status: RunStatus, metrics compute: RunMetricsFunction) throws -> [String: Double] {
        // Workers finishing one run at once take turns (the second then replaces the first's metrics): without the
        // row lock both would insert the metric rows.
        try t.execute("SELECT id FROM runs WHERE id = ? FOR UPDATE", [.int(id)])
        guard let run = try run(t, id: id) else { throw StoreError.runNotFound(String(id)) }
        let metrics = try compute(run, try items(t, run: id))
        try t.execute("DELETE FROM run_metrics WHERE run_id = ?", [.int(id)])
        for (name, value) in metrics.sorted(by: { $0.key < $1.key }) {
            try t.execute("INSERT INTO run_metrics (run_id, name, value) VALUES (?, ?, ?)", [.int(id), .text(name), SQLValue(value)])
        }
        let now = StoreClock.now()
        try t.execute("UPDATE runs SET status = ?, finished_at = ?, updated_at = ? WHERE id = ?",
                      [.text(status.rawValue), .text(now), .text(now), .int(id)])
        return metrics
    }

    public func metrics(run: Int64) throws -> [String: Double] {
        try read { t in
            var out: [String: Double] = [:]
            for row in try t.query("SELECT name, value FROM run_metrics WHERE run_id = ?", [.int(run)]) {
                out[try t.required(row.string("name"))] = try row.double("value") ?? .nan
            }
            return out
        }
    }

    // MARK: Attention

    public func recordAttention(run: Int64, itemKey: String, _ attention: StoredAttention) throws {
        try StoredRows.checkAttention(attention, itemKey: itemKey)
        try write { t in
            guard let id = try t.scalar("SELECT id FROM items WHERE run_id = ? AND item_key = ?", [.int(run), .text(itemKey)])?.int64("id") else {
                throw StoreError.invalid("run \(run) has no item '\(itemKey)'; record the item before its attention")
            }
            try t.execute("""
                INSERT INTO item_attention (item_id, run_id, format_version, n, tokens, labels, data) VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (item_id) DO UPDATE SET run_id = excluded.run_id, format_version = excluded.format_version,
                    n = excluded.n, tokens = excluded.tokens, labels = excluded.labels, data = excluded.data
                """, [.int(id), .int(run), SQLValue(attention.formatVersion), SQLValue(attention.n),
                      .text(CanonicalJSON.string(attention.tokens)), .text(CanonicalJSON.string(attention.labels)),
                      .bytes(attention.data)])
        }
    }

    public func attention(run: Int64, itemKey: String) throws -> StoredAttention? {
        try read { t in
            guard let row = try t.scalar("""
                SELECT a.* FROM item_attention a JOIN items i ON i.id = a.item_id WHERE i.run_id = ? AND i.item_key = ?
                """, [.int(run), .text(itemKey)]) else { return nil }
            let decoder = JSONDecoder()
            return StoredAttention(formatVersion: try t.required(row.int("format_version")), n: try t.required(row.int("n")),
                                   tokens: try decoder.decode([Int].self, from: Data(try t.required(row.string("tokens")).utf8)),
                                   labels: try decoder.decode([String].self, from: Data(try t.required(row.string("labels")).utf8)),
                                   data: try row.bytes("data") ?? Data())
        }
    }

    public func itemsLackingAttention(run: Int64) throws -> Set<String> {
        Set(try read { t in
            try t.query("""
                SELECT i.item_key FROM items i WHERE i.run_id = ? AND i.status = 'ok' AND i.output_tokens IS NOT NULL
                    AND i.output_tokens != '[]' AND NOT EXISTS (SELECT 1 FROM item_attention a WHERE a.item_id = i.id)
                """, [.int(run)]).compactMap { try $0.string("item_key") }
        })
    }

    public func itemsWithAttention(run: Int64) throws -> [String] {
        try read { t in
            try t.query("""
                SELECT i.item_key FROM item_attention a JOIN items i ON i.id = a.item_id WHERE a.run_id = ? ORDER BY i.ordinal, i.id
                """, [.int(run)]).compactMap { try $0.string("item_key") }
        }
    }
}

extension SQLTransaction {
    /// The `id` column of the first row a statement returns.
    func id(_ sql: String, _ values: [SQLValue]) throws -> Int64 {
        try required(try scalar(sql, values)?.int64("id"))
    }

    /// The `n` column of a `COUNT(*) AS n` query.
    func count(_ sql: String, _ values: [SQLValue]) throws -> Int {
        Int(try scalar(sql, values)?.int64("n") ?? 0)
    }

    func required<T>(_ value: T?) throws -> T {
        guard let value else { throw StoreError.invalid("the PostgreSQL store returned no value where Mirage always writes one; was the database changed by something else?") }
        return value
    }
}
