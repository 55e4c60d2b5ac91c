import Foundation
import GRDB

/// One item's recorded last-layer attention, as the store keeps it (`item_attention`). The layout of
/// `data` belongs to the writer (MirageAnalysis' `AttentionMap`, docs/overtrust.md); the store checks
/// only that the token and label lists have `n` entries.
public struct StoredAttention: Sendable, Equatable {
    public var formatVersion: Int
    /// Response rows.
    public var n: Int
    public var tokens: [Int]
    public var labels: [String]
    public var data: Data

    public init(formatVersion: Int, n: Int, tokens: [Int], labels: [String], data: Data) {
        self.formatVersion = formatVersion
        self.n = n
        self.tokens = tokens
        self.labels = labels
        self.data = data
    }
}

extension SQLiteRunStore {
    /// Records (or replaces) the attention of an item already stored, in one transaction.
    public func recordAttention(run: Int64, itemKey: String, _ attention: StoredAttention) throws {
        try StoredRows.checkAttention(attention, itemKey: itemKey)
        try write { db in
            guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM items WHERE run_id = ? AND item_key = ?",
                                              arguments: [run, itemKey]) else {
                throw StoreError.invalid("run \(run) has no item '\(itemKey)'; record the item before its attention")
            }
            try db.execute(sql: """
                INSERT OR REPLACE INTO item_attention (item_id, run_id, format_version, n, tokens, labels, data)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [id, run, attention.formatVersion, attention.n, CanonicalJSON.string(attention.tokens),
                                 CanonicalJSON.string(attention.labels), attention.data])
        }
    }

    /// The attention recorded for an item, or nil when none was recorded.
    public func attention(run: Int64, itemKey: String) throws -> StoredAttention? {
        try read { db in
            // A version-1 database (read without migrating) has no attention table: nothing recorded.
            guard try db.tableExists("item_attention") else { return nil }
            guard let row = try Row.fetchOne(db, sql: """
                SELECT a.* FROM item_attention a JOIN items i ON i.id = a.item_id
                WHERE i.run_id = ? AND i.item_key = ?
                """, arguments: [run, itemKey]) else { return nil }
            let decoder = JSONDecoder()
            let tokens: String = row["tokens"], labels: String = row["labels"]
            return StoredAttention(formatVersion: row["format_version"], n: row["n"],
                                   tokens: try decoder.decode([Int].self, from: Data(tokens.utf8)),
                                   labels: try decoder.decode([String].self, from: Data(labels.utf8)),
                                   data: row["data"])
        }
    }

    /// Keys of the run's decoded items (status ok, with response tokens) that have no recorded attention: items
    /// stored before a crash took the attention in flight, or recorded without `--record-attention`.
    public func itemsLackingAttention(run: Int64) throws -> Set<String> {
        try read { db in
            let lacking = try db.tableExists("item_attention") ? "NOT EXISTS (SELECT 1 FROM item_attention a WHERE a.item_id = i.id)" : "1"
            return Set(try String.fetchAll(db, sql: """
                SELECT i.item_key FROM items i WHERE i.run_id = ? AND i.status = 'ok' AND i.output_tokens IS NOT NULL
                    AND i.output_tokens != '[]' AND \(lacking)
                """, arguments: [run]))
        }
    }

    /// Keys of the run's items that have recorded attention, in item order.
    public func itemsWithAttention(run: Int64) throws -> [String] {
        try read { db in
            guard try db.tableExists("item_attention") else { return [] }
            return try String.fetchAll(db, sql: """
                SELECT i.item_key FROM item_attention a JOIN items i ON i.id = a.item_id
                WHERE a.run_id = ? ORDER BY i.ordinal, i.id
                """, arguments: [run])
        }
    }
}
