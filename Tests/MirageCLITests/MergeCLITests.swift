import Foundation
import Testing
import GRDB
import MirageTestSupport

/// `mirage merge`: halves of one imported run (as two shards would write it) merge back into the run of
/// the whole file, a run of another file stays separate, and a conflicting item is refused with nothing written.
@Test func mergeCommandCombinesShardsAndRefusesConflicts() throws {
    let scratch = try Scratch()
    defer { scratch.cleanup() }
    let questions = try scratch.write("q.jsonl", SyntheticPope.questions(20))
    let answers = try scratch.write("a.jsonl", SyntheticPope.answers(20, salt: 0))
    let other = try scratch.write("b.jsonl", SyntheticPope.answers(20, salt: 1))
    func importInto(_ db: String, _ file: String) throws {
        try mirageOK(["import", "pope", file, "--questions", questions, "--split", "random", "--model", "m",
                      "--decoder", "greedy", "--label", "run", "--db", db])
    }
    let full = scratch.path("full.sqlite"), a = scratch.path("a.sqlite"), b = scratch.path("b.sqlite")
    let c = scratch.path("c.sqlite"), bad = scratch.path("bad.sqlite")
    for db in [full, a, b, bad] { try importInto(db, answers) }
    try importInto(c, other)
    // Shard the copies: a keeps items 0–9, b keeps 10–19 (scores go with them), both not finished.
    try DatabaseQueue(path: a).write { try $0.execute(sql: "DELETE FROM items WHERE ordinal >= 10; UPDATE runs SET status = 'running'") }
    try DatabaseQueue(path: b).write { try $0.execute(sql: "DELETE FROM items WHERE ordinal < 10; UPDATE runs SET status = 'running'") }
    try DatabaseQueue(path: bad).write { try $0.execute(sql: "UPDATE items SET output_text = 'Maybe.' WHERE ordinal = 3") }

    let out = scratch.path("out.sqlite")
    let merged = try mirageOK(["merge", out, a, b, c])
    #expect(merged.contains("combined"))
    func metrics(_ db: String, sourceOf file: String) throws -> [String: Double?] {
        try DatabaseQueue(path: db).read { db in
            var out: [String: Double?] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT m.name, m.value FROM run_metrics m JOIN runs r ON r.id = m.run_id WHERE r.source_path LIKE ?
                """, arguments: ["%" + URL(fileURLWithPath: file).lastPathComponent]) {
                out[row["name"]] = row["value"] as Double?
            }
            return out
        }
    }
    let runs = try DatabaseQueue(path: out).read { db in
        try Row.fetchAll(db, sql: "SELECT r.label, r.status, (SELECT COUNT(*) FROM items i WHERE i.run_id = r.id) AS n FROM runs r ORDER BY r.id")
            .map { "\($0["label"] as String) \($0["status"] as String) \($0["n"] as Int)" }
    }
    #expect(runs == ["run complete 20", "run-2 complete 20"])
    let wholeMetrics = try metrics(full, sourceOf: answers)
    #expect(!wholeMetrics.isEmpty)
    #expect(try metrics(out, sourceOf: answers) == wholeMetrics)

    // A shard whose item 3 says something else: refused, naming the item and field; nothing written.
    let out2 = scratch.path("out2.sqlite")
    let refused = try mirage(["merge", out2, a, bad])
    #expect(refused.status != 0)
    #expect(refused.stderr.contains("item '3'") && refused.stderr.contains("output_text"))
    #expect(refused.stderr.contains("Nothing was written"))
    #expect(try DatabaseQueue(path: out2).read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM runs") } == 0)
}
