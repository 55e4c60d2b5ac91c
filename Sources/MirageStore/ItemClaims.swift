import Foundation
import GRDB

/// Item claiming on one SQLite file shared by local processes: each claim is a row of `item_claims` written
/// in an IMMEDIATE transaction, so two processes never both see an item as free. Leases are Unix seconds of
/// this machine's clock (every process on one file shares it).
extension SQLiteRunStore {
    public func claimItems(_ candidates: [ItemRef], worker: String, lease: TimeInterval) throws -> [ItemRef] {
        guard !candidates.isEmpty else { return [] }
        return try write { db in
            let now = Date().timeIntervalSince1970
            var claimed: [ItemRef] = []
            for ref in candidates {
                if try Bool.fetchOne(db, sql: "SELECT 1 FROM items WHERE run_id = ? AND item_key = ?",
                                     arguments: [ref.run, ref.key]) == true { continue }
                if let holder = try Row.fetchOne(db, sql: "SELECT worker, expires_at FROM item_claims WHERE run_id = ? AND item_key = ?",
                                                 arguments: [ref.run, ref.key]),
                   (holder["worker"] as String) != worker, (holder["expires_at"] as Double) > now { continue }
                try db.execute(sql: """
                    INSERT INTO item_claims (run_id, item_key, worker, expires_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT (run_id, item_key) DO UPDATE SET worker = excluded.worker, expires_at = excluded.expires_at
                    """, arguments: [ref.run, ref.key, worker, now + lease])
                claimed.append(ref)
            }
            return claimed
        }
    }

    @discardableResult
    public func renewClaims(worker: String, lease: TimeInterval) throws -> Int {
        try write { db in
            try db.execute(sql: "UPDATE item_claims SET expires_at = ? WHERE worker = ?",
                           arguments: [Date().timeIntervalSince1970 + lease, worker])
            return db.changesCount
        }
    }

    public func releaseClaims(worker: String) throws {
        try write { db in try db.execute(sql: "DELETE FROM item_claims WHERE worker = ?", arguments: [worker]) }
    }

    public func workProgress(runs: [Int64]) throws -> WorkProgress {
        try read { db in
            var recorded: [Int64: Int] = [:]
            for run in runs {
                recorded[run] = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM items WHERE run_id = ?", arguments: [run]) ?? 0
            }
            // A database read without migrating (an older schema) has no claims.
            guard !runs.isEmpty, try db.tableExists("item_claims") else { return WorkProgress(recorded: recorded, claimed: 0, workers: 0) }
            let list = runs.map(String.init).joined(separator: ",")
            let row = try Row.fetchOne(db, sql: """
                SELECT COUNT(*) AS claimed, COUNT(DISTINCT worker) AS workers FROM item_claims
                WHERE run_id IN (\(list)) AND expires_at > ?
                """, arguments: [Date().timeIntervalSince1970])!
            return WorkProgress(recorded: recorded, claimed: row["claimed"], workers: row["workers"])
        }
    }
}
