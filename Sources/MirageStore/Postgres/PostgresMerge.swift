import Foundation
import GRDB

/// `mirage merge` across backends. The merge itself (run identities, shards, conflicts, metrics) is the SQLite
/// store's, on SQLite copies:
/// - a PostgreSQL **input** is copied into a temporary SQLite file (every table, ids kept) and merged from there;
/// - into a PostgreSQL **output**, in one transaction holding its tables against writers: the output is copied into
///   a temporary SQLite file, the inputs are merged into that copy, and what the merge added or changed (the
///   runs it touched, their new items and per-item rows, their metrics) is written back with the same ids.
/// Claims do not travel (as between SQLite files). Merging the same inputs again changes nothing.
extension PostgresRunStore {
    @discardableResult
    public func merge(from inputs: [String], metrics: RunMetricsFunction) throws -> MergeOutcome {
        for input in inputs where RunStores.isServerURL(input) {
            let other = try PostgresLocation(input), mine = session.location
            if other.host == mine.host && other.port == mine.port && other.database == mine.database {
                throw StoreError.invalid("cannot merge \(RunStores.redacted(input)) into itself; name another output database")
            }
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("mirage-merge-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        return try write { t in
            // Readers go on; workers recording items wait until the merge commits (so the ids stay free).
            try t.execute("LOCK TABLE \(CrossBackendCopy.tables.joined(separator: ", ")) IN EXCLUSIVE MODE")
            let mirror = try SQLiteRunStore(path: folder.appendingPathComponent("output-\(UUID().uuidString).sqlite").path)
            try mirror.write { db in try CrossBackendCopy.copy(from: t, into: db) }
            var outcome = try mirror.merge(from: inputs, metrics: metrics)
            try mirror.read { db in try CrossBackendCopy.writeBack(from: db, into: t, runs: outcome.runs.map(\.id)) }
            outcome.runs = try outcome.runs.map { try t.required(try Self.run(t, id: $0.id)) }
            return outcome
        }
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
        try source.read { t in try copy.write { db in try Self.copy(from: t, into: db) } }
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

    /// Every row of every table from PostgreSQL into an empty (migrated) SQLite database.
    static func copy(from t: SQLTransaction, into db: Database) throws {
        for table in tables {
            let columns = try Self.columns(t, db, table: table)
            let list = columns.map { "\"\($0.name)\"" }.joined(separator: ", ")
            let marks = columns.map { $0.sqliteText ? ExactText.placeholder : "?" }.joined(separator: ", ")
            let statement = try db.makeStatement(sql: "INSERT INTO \(table) (\(list)) VALUES (\(marks))")
            for row in try t.query("SELECT \(list) FROM \(table)") {
                try statement.execute(arguments: StatementArguments(try columns.map { try sqliteValue(row, $0) }))
            }
        }
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

    /// What a merge into the SQLite copy of a PostgreSQL output added or changed, back into PostgreSQL: protocols,
    /// models and decoders it lacks, the touched runs (replaced), their items and per-item rows it lacks, their
    /// metrics (replaced). Then the identity sequences continue after the largest ids.
    static func writeBack(from db: Database, into t: SQLTransaction, runs: [Int64]) throws {
        guard !runs.isEmpty else { return }
        let runList = runs.map(String.init).joined(separator: ",")
        try t.execute("DELETE FROM run_metrics WHERE run_id = ANY(?::bigint[])", [.ints(runs)])
        for table in tables {
            let columns = try Self.columns(t, db, table: table)
            let select = columns.map { $0.sqliteText ? ExactText.column("\"\($0.name)\"", as: "\"\($0.name)\"") : "\"\($0.name)\"" }
                .joined(separator: ", ")
            let scope: String, conflict: String
            switch table {
            case "runs":
                scope = "WHERE id IN (\(runList))"
                conflict = "ON CONFLICT (id) DO UPDATE SET " + columns.filter { $0.name != "id" }
                    .map { "\"\($0.name)\" = excluded.\"\($0.name)\"" }.joined(separator: ", ")
            case "protocols", "models", "decoders": scope = ""; conflict = "ON CONFLICT (id) DO NOTHING"
            case "items": scope = "WHERE run_id IN (\(runList))"; conflict = "ON CONFLICT (id) DO NOTHING"
            case "run_metrics": scope = "WHERE run_id IN (\(runList))"; conflict = ""
            default: scope = "WHERE run_id IN (\(runList))"; conflict = "ON CONFLICT (item_id) DO NOTHING"
            }
            let list = columns.map { "\"\($0.name)\"" }.joined(separator: ", ")
            let marks = Array(repeating: "?", count: columns.count).joined(separator: ", ")
            let sql = "INSERT INTO \(table) (\(list)) VALUES (\(marks)) \(conflict)"
            for row in try Row.fetchAll(db, sql: "SELECT \(select) FROM \(table) \(scope)") {
                try t.execute(sql, columns.map { postgresValue(row[$0.name], $0) })
            }
        }
        for table in ["protocols", "models", "decoders", "runs", "items"] {
            try t.execute("SELECT setval(pg_get_serial_sequence('\(table)', 'id'), GREATEST((SELECT max(id) FROM \(table)), 1))")
        }
    }
}
