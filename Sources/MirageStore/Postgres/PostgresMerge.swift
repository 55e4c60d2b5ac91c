import Foundation
import GRDB

/// `mirage merge` across backends. The merge itself (run identities, shards, conflicts, metrics) is the SQLite
/// store's `Merger`, run on SQLite:
/// - a PostgreSQL **input** is copied into a temporary SQLite file (every table, ids kept) and merged from there;
/// - into a PostgreSQL **output**, in one transaction holding its tables against writers: only what the merge
///   reads is copied into a scratch SQLite file (the protocols, models, decoders and runs, which are small, and the
///   items, per-item rows and metrics of the output runs that have an input run's identity), the inputs are merged
///   into it, and only what the merge added or changed is written back, many rows per statement: new protocols,
///   models, decoders and runs (same ids), new items (ids from the output's sequence) and per-item rows, and the
///   changed runs with their metrics. A run the merge added nothing to and did not change is not written, so
///   merging the same inputs again writes nothing.
/// Claims do not travel (as between SQLite files).
extension PostgresRunStore {
    @discardableResult
    public func merge(from inputs: [String], metrics: RunMetricsFunction) throws -> MergeOutcome {
        for input in inputs where RunStores.isServerURL(input) {
            let other = try PostgresLocation(input), mine = session.location
            if other.host == mine.host && other.port == mine.port && other.database == mine.database {
                throw StoreError.invalid("cannot merge \(RunStores.redacted(input)) into itself; name another output database")
            }
        }
        let identities = try Set(inputs.flatMap { try MergeIdentity.ofRuns(in: $0) })
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("mirage-merge-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        return try write { t in
            // Readers go on; workers recording items wait until the merge commits (so the ids stay free).
            try t.execute("LOCK TABLE \(CrossBackendCopy.tables.joined(separator: ", ")) IN EXCLUSIVE MODE")
            let runs = try t.query("SELECT r.id, \(MergeIdentity.columns) FROM \(MergeIdentity.joins)")
                .filter { identities.contains(try MergeIdentity($0)) }.compactMap { try $0.int64("id") }
            let mirror = try SQLiteRunStore(path: folder.appendingPathComponent("output-\(UUID().uuidString).sqlite").path)
            let copied = try mirror.write { db in try CrossBackendCopy.copy(from: t, into: db, runs: runs) }
            var outcome = try mirror.merge(from: inputs, metrics: metrics)
            let received = Set(outcome.sources.filter { $0.itemsAdded > 0 }.map(\.runID))
            try mirror.read { db in
                try CrossBackendCopy.writeBack(from: db, into: t, runs: outcome.runs.map(\.id), received: received, copied: copied)
            }
            outcome.runs = try outcome.runs.map { try t.required(try Self.run(t, id: $0.id)) }
            return outcome
        }
    }
}

/// What makes two runs candidates for one (`Merger.targetRun`, which then also compares resume keys): protocol,
/// model, decoder and seed.
struct MergeIdentity: Hashable {
    var protocolHash, model, architecture, fingerprint, decoder, parameters: String
    var seed: Int64?

    static let columns = """
        p.hash AS p_hash, m.name AS m_name, m.architecture AS m_arch, m.fingerprint AS m_fp, d.name AS d_name,
        d.parameters AS d_params, r.seed AS seed
        """
    static let joins = "runs r JOIN protocols p ON p.id = r.protocol_id JOIN models m ON m.id = r.model_id JOIN decoders d ON d.id = r.decoder_id"

    init(_ row: any ColumnReader) throws {
        protocolHash = try row.string("p_hash") ?? ""
        model = try row.string("m_name") ?? ""
        architecture = try row.string("m_arch") ?? ""
        fingerprint = try row.string("m_fp") ?? ""
        decoder = try row.string("d_name") ?? ""
        parameters = try row.string("d_params") ?? ""
        seed = try row.int64("seed")
    }

    /// The identities of the runs of a store (a SQLite file, read without side files, or a PostgreSQL URL).
    static func ofRuns(in location: String) throws -> [MergeIdentity] {
        let sql = "SELECT \(columns) FROM \(joins)"
        if RunStores.isServerURL(location) {
            return try PostgresRunStore(readingOnly: location).read { t in try t.query(sql).map { try MergeIdentity($0) } }
        }
        guard FileManager.default.fileExists(atPath: location) else {
            throw StoreError.invalid("no run database at \(location); name existing databases to merge from (nothing was written)")
        }
        return try ReadOnlyConnection(path: location).read { db in try Row.fetchAll(db, sql: sql).map { try MergeIdentity(GRDBColumns($0)) } }
    }
}

/// Copying the store's tables between a PostgreSQL transaction and a SQLite database, ids kept.
enum CrossBackendCopy {
    /// Every table of results, parents first (claims are work in progress and never copied).
    static let tables = ["protocols", "models", "decoders", "runs", "items", "item_scores", "item_attention", "run_metrics"]

    /// A PostgreSQL store as a temporary SQLite file (removed with its folder by the caller).
    static func sqliteCopy(of url: String, in folder: URL) throws -> String {
        let source = try PostgresRunStore(readingOnly: url)
        let path = folder.appendingPathComponent("input-\(UUID().uuidString).sqlite").path
        let copy = try SQLiteRunStore(path: path)
        _ = try source.read { t in try copy.write { db in try Self.copy(from: t, into: db) } }
        return path
    }

    struct Column {
        var name: String
        /// PostgreSQL's `data_type`: bigint, double precision, text, bytea.
        var postgresType: String
        /// SQLite declares it TEXT: read and written exactly (`ExactText`).
        var sqliteText: Bool
    }

    /// The columns both schemas have, in PostgreSQL's order.
    static func columns(_ t: SQLTransaction, _ db: Database, table: String) throws -> [Column] {
        let sqlite = Dictionary(try db.columns(in: table).map { ($0.name, $0.type.uppercased()) }, uniquingKeysWith: { a, _ in a })
        return try t.query("""
            SELECT column_name::text AS column_name, data_type::text AS data_type FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position
            """, [.text(table)]).compactMap { row in
            guard let name = try row.string("column_name"), let type = sqlite[name] else { return nil }
            return Column(name: name, postgresType: try row.string("data_type") ?? "text", sqliteText: type.contains("TEXT"))
        }
    }

    /// Every row of every table from PostgreSQL into an empty (migrated) SQLite database; with `runs`, the rows of
    /// the per-run tables (items, per-item rows, metrics) of those runs only. Returns the ids copied per table (the
    /// item ids for the per-item tables), so that a write-back can tell what is new.
    @discardableResult
    static func copy(from t: SQLTransaction, into db: Database, runs: [Int64]? = nil) throws -> [String: Set<Int64>] {
        var copied: [String: Set<Int64>] = [:]
        for table in tables {
            let columns = try Self.columns(t, db, table: table)
            let list = columns.map { "\"\($0.name)\"" }.joined(separator: ", ")
            let marks = columns.map { $0.sqliteText ? ExactText.placeholder : "?" }.joined(separator: ", ")
            let statement = try db.makeStatement(sql: "INSERT INTO \(table) (\(list)) VALUES (\(marks))")
            let perRun = columns.contains { $0.name == "run_id" }
            let scope = runs != nil && perRun ? " WHERE run_id = ANY(?::bigint[])" : ""
            let key = columns.contains { $0.name == "id" } ? "id" : "item_id"
            var ids = Set<Int64>()
            for row in try t.query("SELECT \(list) FROM \(table)\(scope)", scope.isEmpty ? [] : [.ints(runs ?? [])]) {
                try statement.execute(arguments: StatementArguments(try columns.map { try sqliteValue(row, $0) }))
                if columns.contains(where: { $0.name == key }), let id = try row.int64(key) { ids.insert(id) }
            }
            copied[table] = ids
        }
        return copied
    }

    static func sqliteValue(_ row: SQLRow, _ column: Column) throws -> DatabaseValue {
        switch column.postgresType {
        case "bigint", "integer": return (try row.int64(column.name)).databaseValue
        case "double precision": return (try row.double(column.name)).databaseValue
        case "bytea":
            return column.sqliteText ? ExactText.bind(try row.exact(column.name)) : (try row.bytes(column.name)).databaseValue
        default: return column.sqliteText ? ExactText.bind(try row.string(column.name)) : (try row.string(column.name)).databaseValue
        }
    }

    static func postgresValue(_ value: DatabaseValue, _ column: Column) -> SQLValue {
        switch (value.storage, column.postgresType) {
        case (.null, _): return .null
        case (.int64(let n), "double precision"): return .double(Double(n))
        case (.int64(let n), _): return .int(n)
        case (.double(let d), "bigint"), (.double(let d), "integer"): return .int(Int64(d))
        case (.double(let d), _): return .double(d)
        case (.string(let s), "bytea"): return .bytes(Data(s.utf8))
        case (.string(let s), _): return .text(s)
        case (.blob(let b), "bytea"): return .bytes(b)
        case (.blob(let b), _): return .text(String(decoding: b, as: UTF8.self))
        }
    }

    /// Run columns a merge rewrites without changing the run (`finishRun` stamps them).
    static let runTimestamps: Set<String> = ["finished_at", "updated_at"]

    /// What a merge into the SQLite copy of a PostgreSQL output (`copy(runs:)`, whose ids are `copied`) added or
    /// changed, back into PostgreSQL, many rows per statement: protocols, models, decoders and runs it added (same
    /// ids); the runs it touched (`runs`) that received items (`received`) or changed apart from their timestamps,
    /// with their metrics; the items it added (new ids from the output's sequence) and the per-item rows the output
    /// lacks. Then the identity sequences continue after the largest ids.
    static func writeBack(from db: Database, into t: SQLTransaction, runs: [Int64], received: Set<Int64>,
                          copied: [String: Set<Int64>]) throws {
        guard !runs.isEmpty else { return }
        let runList = runs.map(String.init).joined(separator: ",")
        func rows(_ table: String, _ columns: [Column], _ scope: String) throws -> [Row] {
            let select = columns.map { $0.sqliteText ? ExactText.column("\"\($0.name)\"", as: "\"\($0.name)\"") : "\"\($0.name)\"" }
                .joined(separator: ", ")
            return try Row.fetchAll(db, sql: "SELECT \(select) FROM \(table) \(scope)")
        }
        func values(_ row: Row, _ columns: [Column]) -> [SQLValue] { columns.map { postgresValue(row[$0.name], $0) } }

        // Protocols, models and decoders the merge added (every existing one was copied, with its id).
        for table in ["protocols", "models", "decoders"] {
            let columns = try Self.columns(t, db, table: table)
            let new = try rows(table, columns, "").filter { !(copied[table] ?? []).contains($0["id"]) }
            try insert(t, table: table, columns: columns, rows: new.map { values($0, columns) })
        }

        // Per-item rows the output lacks (of new items, or filled in for items it had): their runs count as received.
        var received = received
        var lacking: [(table: String, columns: [Column], rows: [Row])] = []
        for table in itemChildTables {
            let columns = try Self.columns(t, db, table: table)
            let found = try rows(table, columns, "WHERE run_id IN (\(runList))").filter { !(copied[table] ?? []).contains($0["item_id"]) }
            for row in found { received.insert(row["run_id"]) }
            lacking.append((table, columns, found))
        }

        // Runs: new ones, and touched ones that received items or changed beyond their timestamps.
        let runColumns = try Self.columns(t, db, table: "runs")
        var written: [Int64] = []
        var runRows: [[SQLValue]] = []
        for row in try rows("runs", runColumns, "WHERE id IN (\(runList))") {
            let id: Int64 = row["id"]
            let mine = values(row, runColumns)
            if (copied["runs"] ?? []).contains(id) && !received.contains(id) {
                let compared = runColumns.filter { !runTimestamps.contains($0.name) }
                let list = compared.map { "\"\($0.name)\"" }.joined(separator: ", ")
                let old = try t.scalar("SELECT \(list) FROM runs WHERE id = ?", [.int(id)])
                let same = try old.map { old in
                    try compared.allSatisfy { column in
                        postgresValue(row[column.name], column) == (try SQLValue(reading: old, column))
                    }
                } ?? false
                if same { continue }
            }
            written.append(id)
            runRows.append(mine)
        }
        let runConflict = "ON CONFLICT (id) DO UPDATE SET " + runColumns.filter { $0.name != "id" }
            .map { "\"\($0.name)\" = excluded.\"\($0.name)\"" }.joined(separator: ", ")
        try insert(t, table: "runs", columns: runColumns, rows: runRows, suffix: runConflict)

        // Items the merge added: inserted without their scratch ids, which the output's sequence replaces.
        let itemColumns = try Self.columns(t, db, table: "items")
        let newItems = try rows("items", itemColumns, "WHERE run_id IN (\(runList))").filter { !(copied["items"] ?? []).contains($0["id"]) }
        var itemIDs: [Int64: Int64] = [:]   // scratch id → output id
        let insertedColumns = itemColumns.filter { $0.name != "id" }
        let returned = try insert(t, table: "items", columns: insertedColumns, rows: newItems.map { values($0, insertedColumns) },
                                  returning: "id, run_id, item_key")
        var byKey: [String: Int64] = [:]
        for row in returned { byKey["\(try row.int64("run_id") ?? 0)/\(try row.string("item_key") ?? "")"] = try row.int64("id") }
        for item in newItems {
            let key = "\(item["run_id"] as Int64)/\(ExactText.string(item["item_key"]) ?? "")"
            itemIDs[item["id"]] = try t.required(byKey[key])
        }

        for (table, columns, found) in lacking {
            let childValues: [[SQLValue]] = found.map { row in
                let item: Int64 = row["item_id"]
                return columns.map { column -> SQLValue in
                    column.name == "item_id" ? SQLValue.int(itemIDs[item] ?? item) : postgresValue(row[column.name], column)
                }
            }
            try insert(t, table: table, columns: columns, rows: childValues)
        }

        // The metrics of the runs written.
        if !written.isEmpty {
            try t.execute("DELETE FROM run_metrics WHERE run_id = ANY(?::bigint[])", [.ints(written)])
            let columns = try Self.columns(t, db, table: "run_metrics")
            let list = written.map(String.init).joined(separator: ",")
            try insert(t, table: "run_metrics", columns: columns, rows: try rows("run_metrics", columns, "WHERE run_id IN (\(list))").map { values($0, columns) })
        }
        for table in ["protocols", "models", "decoders", "runs", "items"] {
            try t.execute("SELECT setval(pg_get_serial_sequence('\(table)', 'id'), GREATEST((SELECT max(id) FROM \(table)), 1))")
        }
    }

    /// Inserts rows with multi-row INSERT statements (PostgreSQL takes at most 65,535 parameters per statement),
    /// returning the `returning` columns of every row inserted.
    @discardableResult
    static func insert(_ t: SQLTransaction, table: String, columns: [Column], rows: [[SQLValue]], suffix: String = "",
                       returning: String? = nil) throws -> [SQLRow] {
        guard !rows.isEmpty, !columns.isEmpty else { return [] }
        let list = columns.map { "\"\($0.name)\"" }.joined(separator: ", ")
        let tuple = "(" + Array(repeating: "?", count: columns.count).joined(separator: ", ") + ")"
        let perStatement = max(1, 30_000 / columns.count)
        var out: [SQLRow] = []
        for start in stride(from: 0, to: rows.count, by: perStatement) {
            let chunk = rows[start..<min(rows.count, start + perStatement)]
            let sql = "INSERT INTO \(table) (\(list)) VALUES " + Array(repeating: tuple, count: chunk.count).joined(separator: ", ")
                + (suffix.isEmpty ? "" : " " + suffix) + (returning.map { " RETURNING \($0)" } ?? "")
            out += try t.query(sql, chunk.flatMap { $0 })
        }
        return out
    }
}

extension SQLValue {
    /// A PostgreSQL column's value as `CrossBackendCopy.postgresValue` would write it (for comparing rows).
    init(reading row: SQLRow, _ column: CrossBackendCopy.Column) throws {
        switch column.postgresType {
        case "bigint", "integer": self = SQLValue(try row.int64(column.name))
        case "double precision": self = SQLValue(try row.double(column.name))
        case "bytea": self = (try row.bytes(column.name)).map { .bytes($0) } ?? .null
        default: self = SQLValue(try row.string(column.name))
        }
    }
}
