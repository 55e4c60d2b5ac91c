import Foundation

/// Item claiming on a PostgreSQL store shared by workers on any number of machines. Claim rows that exist are
/// locked with `SELECT ... FOR UPDATE SKIP LOCKED`, so a worker never waits for another one's claiming
/// transaction: an item whose claim row another worker is taking right now counts as taken. Items without a claim
/// row are claimed by inserting it (`ON CONFLICT DO NOTHING`: of two workers inserting together, one wins).
/// Leases are Unix seconds of the server's clock (`clock_timestamp()`), so the workers' clocks never matter.
extension PostgresRunStore {
    /// The server's clock in Unix seconds, inside a statement.
    static let serverNow = "extract(epoch from clock_timestamp())::float8"

    public func claimItems(_ candidates: [ItemRef], worker: String, lease: TimeInterval) throws -> [ItemRef] {
        guard !candidates.isEmpty else { return [] }
        let runs: SQLValue = .ints(candidates.map(\.run)), keys: SQLValue = .texts(candidates.map(\.key))
        let claimed: Set<ItemRef> = try write { t in
            let candidateList = "SELECT * FROM unnest(?::bigint[], ?::text[]) AS c(run_id, item_key)"
            // Claim rows this transaction could lock: free to take when expired or already this worker's.
            var takeOver: [ItemRef] = []
            var lockedByUs = Set<ItemRef>()
            for row in try t.query("""
                SELECT run_id, item_key, worker, expires_at <= \(Self.serverNow) AS expired FROM item_claims
                WHERE (run_id, item_key) IN (\(candidateList)) FOR UPDATE SKIP LOCKED
                """, [runs, keys]) {
                let ref = try Self.ref(row)
                lockedByUs.insert(ref)
                if try row.string("worker") == worker || row.bool("expired") == true { takeOver.append(ref) }
            }
            // Every claim row, locked or not: one we could not lock is being claimed or recorded by another worker.
            let existing = Set(try t.query("SELECT run_id, item_key FROM item_claims WHERE (run_id, item_key) IN (\(candidateList))",
                                           [runs, keys]).map(Self.ref))
            // Recorded items, read after the claim rows: a claim row that was gone above belonged to an item whose
            // worker recorded it and committed before, and this later statement sees that item. (Read first, a
            // record committed in between would be missed and the item claimed again.)
            let recorded = Set(try t.query("""
                SELECT c.run_id, c.item_key FROM (\(candidateList)) c
                WHERE EXISTS (SELECT 1 FROM items i WHERE i.run_id = c.run_id AND i.item_key = c.item_key)
                """, [runs, keys]).map(Self.ref))
            let fresh = candidates.filter { !recorded.contains($0) && !existing.contains($0) && !lockedByUs.contains($0) }
            takeOver.removeAll { recorded.contains($0) }
            var claimed = Set<ItemRef>()
            if !takeOver.isEmpty {
                for row in try t.query("""
                    UPDATE item_claims SET worker = ?, expires_at = \(Self.serverNow) + ?
                    WHERE (run_id, item_key) IN (\(candidateList)) RETURNING run_id, item_key
                    """, [.text(worker), .double(lease), .ints(takeOver.map(\.run)), .texts(takeOver.map(\.key))]) {
                    claimed.insert(try Self.ref(row))
                }
            }
            if !fresh.isEmpty {
                for row in try t.query("""
                    INSERT INTO item_claims (run_id, item_key, worker, expires_at)
                    SELECT c.run_id, c.item_key, ?, \(Self.serverNow) + ? FROM (\(candidateList)) c
                    ON CONFLICT (run_id, item_key) DO NOTHING RETURNING run_id, item_key
                    """, [.text(worker), .double(lease), .ints(fresh.map(\.run)), .texts(fresh.map(\.key))]) {
                    claimed.insert(try Self.ref(row))
                }
            }
            return claimed
        }
        return candidates.filter { claimed.contains($0) }
    }

    @discardableResult
    public func renewClaims(worker: String, lease: TimeInterval) throws -> Int {
        try write { t in
            try t.execute("UPDATE item_claims SET expires_at = \(Self.serverNow) + ? WHERE worker = ?", [.double(lease), .text(worker)])
        }
    }

    public func releaseClaims(worker: String) throws {
        try write { t in try t.execute("DELETE FROM item_claims WHERE worker = ?", [.text(worker)]) }
    }

    public func workProgress(runs: [Int64]) throws -> WorkProgress {
        try read { t in
            var recorded: [Int64: Int] = Dictionary(uniqueKeysWithValues: runs.map { ($0, 0) })
            guard !runs.isEmpty else { return WorkProgress(recorded: recorded, claimed: 0, workers: 0) }
            for row in try t.query("SELECT run_id, COUNT(*) AS n FROM items WHERE run_id = ANY(?::bigint[]) GROUP BY run_id", [.ints(runs)]) {
                recorded[try t.required(row.int64("run_id"))] = try row.int("n") ?? 0
            }
            let row = try t.scalar("""
                SELECT COUNT(*) AS claimed, COUNT(DISTINCT worker) AS workers FROM item_claims
                WHERE run_id = ANY(?::bigint[]) AND expires_at > \(Self.serverNow)
                """, [.ints(runs)])
            return WorkProgress(recorded: recorded, claimed: try row?.int("claimed") ?? 0, workers: try row?.int("workers") ?? 0)
        }
    }

    private static func ref(_ row: SQLRow) throws -> ItemRef {
        guard let run = try row.int64("run_id"), let key = try row.string("item_key") else {
            throw StoreError.invalid("a claim row of the PostgreSQL store has no run or item key; was the database changed by something else?")
        }
        return ItemRef(run: run, key: key)
    }
}
