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

/// The contract with `mirage run --shard`: two shard databases of a real run (tiny synthetic LLaVA on the
/// demo's synthetic images) merge into the run an unsharded `mirage run` writes — same resume key, items and
/// metrics — and `mirage run` on the merged database finds it complete.
@Test func shardsOfMirageRunMergeIntoTheUnshardedRun() throws {
    let scratch = try Scratch()
    defer { scratch.cleanup() }
    let cache = scratch.path("cache")
    // The demo writes the model and the image set (POPE only: no CHAIR resources given).
    try mirageOK(["demo", "--random-model", "--db", scratch.path("demo.sqlite"), "--cache", cache, "--count", "6",
                  "--synonyms", scratch.path("none.txt")])
    let data = cache + "/synthetic-coco-6-seed0"
    let protocolFile = try scratch.write("pope.yaml", """
        task: pope
        questions: {path: \(data)/pope/coco_pope_random.json}
        template: llava15
        max_new_tokens: 5

        """)
    let run = ["run", "--model", cache + "/llava-llama-clip-tiny-words-seed0", "--protocol", protocolFile,
               "--decoder", "beam,num_beams=2", "--images", data + "/images", "--threads", "2"]
    try mirageOK(run + ["--db", scratch.path("whole.sqlite")])
    try mirageOK(run + ["--db", scratch.path("s0.sqlite"), "--shard", "0/2"])
    try mirageOK(run + ["--db", scratch.path("s1.sqlite"), "--shard", "1/2"])
    let merged = scratch.path("merged.sqlite")
    try mirageOK(["merge", merged, scratch.path("s1.sqlite"), scratch.path("s0.sqlite")])

    func snapshot(_ path: String) throws -> [String] {
        try DatabaseQueue(path: path).read { db in
            try Row.fetchAll(db, sql: "SELECT source_hash, expected_items, status FROM runs").map {
                "\($0["source_hash"] as String) \($0["expected_items"] as Int) \($0["status"] as String)"
            } + Row.fetchAll(db, sql: "SELECT name, value FROM run_metrics ORDER BY name").map {
                "\($0["name"] as String)=\(($0["value"] as Double?).map { String($0) } ?? "null")"
            } + Row.fetchAll(db, sql: """
                SELECT i.item_key, i.ordinal, i.output_text, i.output_tokens, s.parsed_answer
                FROM items i JOIN item_scores s ON s.item_id = i.id ORDER BY i.ordinal
                """).map { "\($0["item_key"] as String) \($0["ordinal"] as Int) \($0["output_text"] as String) \($0["output_tokens"] as String) \($0["parsed_answer"] as String)" }
        }
    }
    let whole = try snapshot(scratch.path("whole.sqlite"))
    #expect(whole.count > 30)
    #expect(try snapshot(merged) == whole)
    let again = try mirageOK(run + ["--db", merged])
    #expect(again.contains("already complete"))
}
