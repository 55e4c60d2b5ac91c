import Foundation
import GRDB

/// The tables that hang off `items`: each has an `item_id` column (and `run_id` when it has that column).
/// A merge copies their rows along with the items and compares them when an item is in both databases.
/// Adding a per-item table to the schema = adding its name here.
let itemChildTables = ["item_scores", "item_attention"]

/// What `SQLiteRunStore.merge(from:)` did.
public struct MergeOutcome: Sendable {
    /// One run of an input database and where it went.
    public struct Source: Sendable, Hashable {
        public var path: String
        public var sourceRunID: Int64
        /// The run in the output database.
        public var runID: Int64
        /// True when it joined a run with the same identity that was already there (or came from an earlier input).
        public var combined: Bool
        public var itemsAdded: Int
        /// Items whose key and content were already in the output run.
        public var itemsAlreadyPresent: Int
    }

    public var sources: [Source]
    /// The output runs that received runs, after their metrics were recomputed.
    public var runs: [RunRecord]
}

extension SQLiteRunStore {
    /// Merges the runs of other run databases into this one, in one transaction: nothing is written when
    /// any input is refused.
    ///
    /// Runs are the same run when their identity is: protocol hash, model (name, architecture,
    /// fingerprint), decoder (name, parameters), seed and resume key (`source_hash`, both unset or equal
    /// once the `:shard=i/n` part of `mirage run --shard` is set aside; see `ResumeKey`).
    /// Their items are unioned by item key; an item in both must have the same content (every item column
    /// except timing and bookkeeping: ordinal, prefill/decode seconds, forward passes, created_at) and
    /// the same rows in every per-item table (`item_scores`, ...; a row missing on one side is filled in).
    /// Otherwise the merge throws `StoreError.mergeConflict` naming the run, the item key and the field.
    /// Runs with another identity are copied (a label already used in this database gets a `-2`, `-3`, ...
    /// suffix). Every run that received items gets its metrics recomputed (`finishRun`) and is `complete`
    /// when it holds every shard and has its `expected_items` (or, when that is unset, when every merged
    /// part was complete); the expected items of disjoint shards add up. The input files are opened read-only and never changed.
    @discardableResult
    public func merge(from inputs: [String], metrics: RunMetricsFunction) throws -> MergeOutcome {
        let outputPath = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
        for input in inputs where !RunStores.isServerURL(input) {
            guard FileManager.default.fileExists(atPath: input) else {
                throw StoreError.invalid("no run database at \(input); name existing databases to merge from (nothing was written)")
            }
            if URL(fileURLWithPath: input).standardizedFileURL.resolvingSymlinksInPath().path == outputPath {
                throw StoreError.invalid("cannot merge \(input) into itself; name another output database")
            }
            try Self.checkSchemaReadOnly(path: input)
        }
        // A PostgreSQL input is merged from a SQLite copy of it (see CrossBackendCopy), named by its URL in messages.
        let copies = FileManager.default.temporaryDirectory.appendingPathComponent("mirage-merge-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: copies) }
        var files: [String: String] = [:]
        for input in inputs where RunStores.isServerURL(input) {
            try FileManager.default.createDirectory(at: copies, withIntermediateDirectories: true)
            files[input] = try CrossBackendCopy.sqliteCopy(of: input, in: copies)
        }
        return try write { db in
            var merger = Merger(target: db)
            for name in inputs {
                let input = files[name] ?? name
                // Read-only without side files (see ReadOnlyConnection); the body runs once (no silent re-read).
                let connection: ReadOnlyConnection
                do { connection = try ReadOnlyConnection(path: input) } catch {
                    throw StoreError.sqlite(path: input, message: "\(error)")
                }
                if let warning = connection.warning {
                    let reason = warning.hasPrefix("warning: ") ? String(warning.dropFirst("warning: ".count)) : warning
                    throw StoreError.invalid("cannot merge \(input) completely (nothing was written): \(reason)")
                }
                try connection.read(retry: false) { source in try merger.merge(source: source, path: RunStores.redacted(name)) }
            }
            var runs: [RunRecord] = []
            for id in merger.touched.keys.sorted() {
                let parts = merger.touched[id]!
                let row = try Row.fetchOne(db, sql: "SELECT expected_items, (SELECT COUNT(*) FROM items WHERE run_id = ?) AS n FROM runs WHERE id = ?",
                                           arguments: [id, id])!
                let expected: Int? = row["expected_items"], count: Int = row["n"]
                let partial = ResumeKey(try String.fetchOne(db, sql: "SELECT source_hash FROM runs WHERE id = ?", arguments: [id])).isPartial
                let complete = !partial && (expected.map { count >= $0 } ?? parts.allSatisfy { $0 == .complete })
                _ = try Self.finishRun(db, id: id, status: complete ? .complete : .running, metrics: metrics)
                runs.append(try Row.fetchOne(db, sql: Self.runSelect + " WHERE r.id = ?", arguments: [id]).map(Self.runRecord)!)
            }
            return MergeOutcome(sources: merger.sources, runs: runs)
        }
    }
}

/// The state of one merge transaction: the target database and what was merged into it so far.
private struct Merger {
    let target: Database
    /// Output run id → statuses of the runs merged into it (the target's own first when it existed).
    var touched: [Int64: [RunStatus]] = [:]
    var sources: [MergeOutcome.Source] = []

    /// Item columns that are not content: where an item sits and how long it took.
    static let itemBookkeeping: Set<String> = ["id", "run_id", "item_key", "ordinal", "prefill_seconds",
                                               "decode_seconds", "forward_passes", "created_at"]

    init(target: Database) { self.target = target }

    mutating func merge(source: Database, path: String) throws {
        let runs = try Row.fetchAll(source, sql: """
            SELECT r.*, p.hash AS p_hash, m.name AS m_name, m.architecture AS m_arch, m.fingerprint AS m_fp,
                   d.name AS d_name, d.parameters AS d_params
            FROM runs r JOIN protocols p ON p.id = r.protocol_id JOIN models m ON m.id = r.model_id
                 JOIN decoders d ON d.id = r.decoder_id ORDER BY r.id
            """)
        for run in runs {
            let (runID, combined) = try targetRun(for: run, source: source, path: path)
            let (added, present) = try mergeItems(source: source, path: path, sourceRun: run, into: runID)
            sources.append(.init(path: path, sourceRunID: run["id"], runID: runID, combined: combined,
                                 itemsAdded: added, itemsAlreadyPresent: present))
        }
    }

    // MARK: Runs

    /// The output run with the source run's identity, created (with its protocol, model and decoder) if needed.
    mutating func targetRun(for run: Row, source: Database, path: String) throws -> (id: Int64, combined: Bool) {
        let status = RunStatus(rawValue: run["status"]) ?? .failed
        let incoming = ResumeKey(run["source_hash"])
        let seed: Int64? = run["seed"]
        let candidates = try Row.fetchAll(target, sql: """
            SELECT r.id, r.source_hash, r.expected_items, r.status FROM runs r JOIN protocols p ON p.id = r.protocol_id
                 JOIN models m ON m.id = r.model_id JOIN decoders d ON d.id = r.decoder_id
            WHERE p.hash = ? AND m.name = ? AND m.architecture = ? AND m.fingerprint = ? AND d.name = ?
                  AND d.parameters = ? AND r.seed IS ? ORDER BY r.id
            """, arguments: [run["p_hash"], run["m_name"], run["m_arch"], run["m_fp"], run["d_name"], run["d_params"], seed])
        if let match = candidates.first(where: { ResumeKey($0["source_hash"]).base == incoming.base }) {
            let id: Int64 = match["id"]
            if touched[id] == nil { touched[id] = [RunStatus(rawValue: match["status"]) ?? .failed] }
            touched[id]!.append(status)
            let (key, expected) = try ResumeKey(match["source_hash"]).combined(
                with: incoming, expected: match["expected_items"], incomingExpected: run["expected_items"], path: path)
            try checkResumeKeyFree(key.stored, except: id, sourceRun: run["id"], path: path)
            try target.execute(sql: """
                UPDATE runs SET created_at = min(created_at, ?), source_hash = ?, expected_items = ? WHERE id = ?
                """, arguments: [run["created_at"] as String, key.stored, expected, id])
            return (id, true)
        }
        try checkResumeKeyFree(incoming.stored, except: nil, sourceRun: run["id"], path: path)
        let protocolID = try copyOnce(source: source, table: "protocols", id: run["protocol_id"], key: ["hash"])
        let modelID = try copyOnce(source: source, table: "models", id: run["model_id"],
                                   key: ["name", "architecture", "fingerprint"])
        let decoderID = try copyOnce(source: source, table: "decoders", id: run["decoder_id"], key: ["name", "parameters"])
        var overrides: [String: DatabaseValue] = [
            "protocol_id": protocolID.databaseValue, "model_id": modelID.databaseValue,
            "decoder_id": decoderID.databaseValue,
        ]
        if let label: String = run["label"] { overrides["label"] = try freeLabel(label).databaseValue }
        let id = try insert(table: "runs", row: run, skipping: ["id"], overrides: overrides)
        touched[id] = [status]
        return (id, false)
    }

    /// Refuses a resume key another output run (of another identity) already has: the store keeps them unique.
    func checkResumeKeyFree(_ key: String?, except: Int64?, sourceRun: Int64, path: String) throws {
        guard let key, let other = try Int64.fetchOne(target, sql: "SELECT id FROM runs WHERE source_hash = ? AND id IS NOT ?",
                                                      arguments: [key, except]) else { return }
        throw StoreError.invalid("""
            cannot merge \(path): its run \(sourceRun) has the resume key (source hash) of run \(other) in the output \
            but a different protocol, model name, decoder or seed, so the two cannot be one run; nothing was \
            written. Compare them with `mirage runs show` and delete the wrong one.
            """)
    }

    /// A label not yet used in the output: the label itself, else `label-2`, `label-3`, ...
    func freeLabel(_ label: String) throws -> String {
        var candidate = label, n = 1
        while try Int64.fetchOne(target, sql: "SELECT id FROM runs WHERE label = ?", arguments: [candidate]) != nil {
            n += 1
            candidate = "\(label)-\(n)"
        }
        return candidate
    }

    /// The output id of a protocol/model/decoder row, matched by its unique `key` columns, copied if absent.
    func copyOnce(source: Database, table: String, id: Int64, key: [String]) throws -> Int64 {
        let row = try Row.fetchOne(source, sql: "SELECT \(try Self.exactColumns(source, table: table)) FROM \(table) WHERE id = ?",
                                   arguments: [id])!
        let condition = key.map { "\($0) = \(ExactText.placeholder)" }.joined(separator: " AND ")
        if let existing = try Int64.fetchOne(target, sql: "SELECT id FROM \(table) WHERE \(condition)",
                                             arguments: StatementArguments(key.map { ExactText.bind(ExactText.string(row[$0])) })) {
            return existing
        }
        return try insert(table: table, row: row, skipping: ["id"], overrides: [:])
    }

    /// Inserts a source row into the same table of the output (columns both schemas have), returning its rowid.
    func insert(table: String, row: Row, skipping: Set<String>, overrides: [String: DatabaseValue]) throws -> Int64 {
        let targetColumns = try target.columns(in: table)
        let columns = Set(targetColumns.map(\.name))
        let text = Set(targetColumns.filter(Self.isText).map(\.name))
        let names = row.columnNames.filter { columns.contains($0) && !skipping.contains($0) && overrides[$0] == nil }
            + overrides.keys.sorted()
        // Text goes back in with its full length (see ExactText); rows read with `exactColumns` hold it as blobs.
        let values: [DatabaseValue] = names.map { name in
            let value = overrides[name] ?? row[name]
            return text.contains(name) ? ExactText.bind(ExactText.string(value)) : value
        }
        let list = names.map { "\"\($0)\"" }.joined(separator: ", ")
        let marks = names.map { text.contains($0) ? ExactText.placeholder : "?" }.joined(separator: ", ")
        try target.execute(sql: "INSERT INTO \(table) (\(list)) VALUES (\(marks))", arguments: StatementArguments(values))
        return target.lastInsertedRowID
    }

    /// A column SQLite gives text affinity (declared type containing CHAR, CLOB or TEXT).
    static func isText(_ column: ColumnInfo) -> Bool {
        let type = column.type.uppercased()
        return type.contains("TEXT") || type.contains("CHAR") || type.contains("CLOB")
    }

    /// The select list of every column of `table`, text columns as `CAST(... AS BLOB)` so that a NUL inside a
    /// value does not cut it (see ExactText). Two rows read this way compare byte for byte.
    static func exactColumns(_ db: Database, table: String, prefix: String = "") throws -> String {
        try db.columns(in: table).map { column in
            let name = "\(prefix)\"\(column.name)\""
            return isText(column) ? ExactText.column(name, as: "\"\(column.name)\"") : name
        }.joined(separator: ", ")
    }

    // MARK: Items

    /// The rows of a per-item table for one run's items, as content (key columns left out), by item id.
    static func childRows(_ db: Database, table: String, run: Int64) throws -> (columns: [String], rows: [Int64: [[DatabaseValue]]]) {
        let columns = try db.columns(in: table).map(\.name).filter { !["id", "item_id", "run_id"].contains($0) }
        let order = columns.map { "t.\"\($0)\"" }.joined(separator: ", ")
        var rows: [Int64: [[DatabaseValue]]] = [:]
        for row in try Row.fetchAll(db, sql: """
            SELECT \(try exactColumns(db, table: table, prefix: "t.")) FROM \(table) t JOIN items i ON i.id = t.item_id WHERE i.run_id = ? ORDER BY t.item_id\(order.isEmpty ? "" : ", " + order)
            """, arguments: [run]) {
            rows[row["item_id"], default: []].append(columns.map { row[$0] })
        }
        return (columns, rows)
    }

    mutating func mergeItems(source: Database, path: String, sourceRun: Row, into runID: Int64) throws -> (added: Int, present: Int) {
        let sourceRunID: Int64 = sourceRun["id"]
        let runName = (sourceRun["label"] as String?).map { "'\($0)'" } ?? "\(sourceRunID)"
        var existing: [String: Row] = [:]
        for row in try Row.fetchAll(target, sql: "SELECT \(try Self.exactColumns(target, table: "items")) FROM items WHERE run_id = ?",
                                    arguments: [runID]) {
            existing[row["item_key"]] = row
        }
        let tables = try itemChildTables.filter { try source.tableExists($0) }
        var sourceChildren: [String: (columns: [String], rows: [Int64: [[DatabaseValue]]])] = [:]
        var targetChildren: [String: [Int64: [[DatabaseValue]]]] = [:]
        for table in tables {
            sourceChildren[table] = try Self.childRows(source, table: table, run: sourceRunID)
            targetChildren[table] = try Self.childRows(target, table: table, run: runID).rows
        }
        let targetItemColumns = try Set(target.columns(in: "items").map(\.name))
        var added = 0, present = 0
        for item in try Row.fetchAll(source, sql: "SELECT \(try Self.exactColumns(source, table: "items")) FROM items WHERE run_id = ? ORDER BY ordinal, id",
                                     arguments: [sourceRunID]) {
            let key: String = item["item_key"]
            let sourceItemID: Int64 = item["id"]
            let targetItemID: Int64
            if let old = existing[key] {
                for column in item.columnNames where targetItemColumns.contains(column) && !Self.itemBookkeeping.contains(column) {
                    let a: DatabaseValue = old[column], b: DatabaseValue = item[column]
                    if a != b {
                        throw StoreError.mergeConflict(input: path, run: runName, outputRun: runID, itemKey: key,
                                                       field: column, output: Self.shown(a), incoming: Self.shown(b))
                    }
                }
                targetItemID = old["id"]
                present += 1
            } else {
                targetItemID = try insert(table: "items", row: item, skipping: ["id"],
                                          overrides: ["run_id": runID.databaseValue])
                existing[key] = item
                added += 1
            }
            for table in tables {
                let (columns, rows) = sourceChildren[table]!
                guard let incoming = rows[sourceItemID] else { continue }
                if let stored = targetChildren[table]![targetItemID] {
                    guard stored != incoming else { continue }
                    let field = zip(stored, incoming).lazy.compactMap { a, b in
                        zip(columns, zip(a, b)).first { $0.1.0 != $0.1.1 }
                    }.first
                    throw StoreError.mergeConflict(
                        input: path, run: runName, outputRun: runID, itemKey: key,
                        field: field.map { "\(table).\($0.0)" } ?? "\(table) (\(stored.count) vs \(incoming.count) rows)",
                        output: field.map { Self.shown($0.1.0) } ?? "", incoming: field.map { Self.shown($0.1.1) } ?? "")
                }
                let full = try Row.fetchAll(source, sql: "SELECT \(try Self.exactColumns(source, table: table)) FROM \(table) WHERE item_id = ?",
                                            arguments: [sourceItemID])
                for row in full {
                    var overrides: [String: DatabaseValue] = ["item_id": targetItemID.databaseValue]
                    if row.hasColumn("run_id") { overrides["run_id"] = runID.databaseValue }
                    _ = try insert(table: table, row: row, skipping: ["id"], overrides: overrides)
                }
                targetChildren[table]![targetItemID] = incoming
            }
        }
        return (added, present)
    }

    /// A value for a conflict message: text (read as a blob by `exactColumns`) as text, with controls escaped.
    static func shown(_ value: DatabaseValue) -> String {
        guard case .blob(let data) = value.storage, let text = String(data: data, encoding: .utf8) else { return value.description }
        return text.unicodeScalars.map { $0.properties.generalCategory == .control ? $0.escaped(asASCII: true) : String($0) }.joined()
    }
}

/// A run's resume key (`source_hash`) with the shard part `mirage run --shard i/n` appends
/// (`<key>:shard=i/n`, see `ExperimentRunner.sourceHash`) split off. A merged run of some shards stores
/// `<key>:shards=0,2/3`; once all n shards are in it stores the bare key, the key of an unsharded run, so
/// `mirage run` without --shard finds it (and resumes it when items are missing).
struct ResumeKey: Equatable {
    var base: String?
    /// The shards the run holds (nil: the whole run).
    var shards: Set<Int>?
    var shardCount = 1

    init(_ stored: String?) {
        guard let stored, let mark = stored.range(of: ":shard", options: .backwards) else { base = stored; return }
        var rest = stored[mark.upperBound...]
        if rest.hasPrefix("s") { rest = rest.dropFirst() }
        let parts = rest.dropFirst().split(separator: "/")
        guard rest.hasPrefix("="), parts.count == 2, let n = Int(parts[1]), n > 1 else { base = stored; return }
        let list = parts[0].split(separator: ",").compactMap { Int($0) }
        guard !list.isEmpty, list.allSatisfy({ (0..<n).contains($0) }) else { base = stored; return }
        base = String(stored[..<mark.lowerBound]); shards = Set(list); shardCount = n
    }

    init(base: String?, shards: Set<Int>?, shardCount: Int) {
        self.base = base; self.shardCount = shardCount
        self.shards = shards.flatMap { $0.count >= shardCount ? nil : $0 }
    }

    /// True when the run holds some but not all shards.
    var isPartial: Bool { shards != nil }

    var stored: String? {
        guard let base, let shards else { return base }
        let list = shards.sorted().map(String.init).joined(separator: ",")
        return shards.count == 1 ? "\(base):shard=\(list)/\(shardCount)" : "\(base):shards=\(list)/\(shardCount)"
    }

    /// The key and expected item count of a run after adding another part of it. Expected items add up
    /// over disjoint shards (the runner splits by image); the whole run's count wins over shards.
    func combined(with other: ResumeKey, expected: Int?, incomingExpected: Int?, path: String) throws -> (ResumeKey, Int?) {
        guard let mine = shards else { return (self, [expected, incomingExpected].compactMap { $0 }.max()) }
        guard let theirs = other.shards else { return (other, [expected, incomingExpected].compactMap { $0 }.max()) }
        guard shardCount == other.shardCount else {
            throw StoreError.invalid("cannot merge \(path): it holds shards of \(other.shardCount) of a run the output holds in shards of \(shardCount); merge shards of one split (the same --shard i/n count)")
        }
        let union = ResumeKey(base: base, shards: mine.union(theirs), shardCount: shardCount)
        if theirs.isSubset(of: mine) { return (self, expected) }
        if theirs.isDisjoint(with: mine), let expected, let incomingExpected { return (union, expected + incomingExpected) }
        return (union, [expected, incomingExpected].compactMap { $0 }.max())
    }
}
