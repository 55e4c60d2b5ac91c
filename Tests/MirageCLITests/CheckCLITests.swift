import Foundation
import Testing
import GRDB
import MirageTestSupport

/// The committed decoder golden runs (Tests/Golden/decoders/, written by Scripts/golden/regenerate-decoder-goldens.sh).
private let goldenFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Golden/decoders")
/// What the regeneration script passes to `mirage demo`; keep the two in step.
private let demoArguments = ["--count", "3", "--threads", "2"]

/// The demo's runs; `golden` names each one's golden file: decoder and protocol (the demo's protocol name without
/// its `demo-` prefix), e.g. `opera-organism-pope-random.jsonl`, as Scripts/golden/regenerate-decoder-goldens.sh
/// writes them.
private func demoRuns(_ db: String) throws -> [(id: Int64, task: String, decoder: String, parameters: String, golden: String)] {
    try DatabaseQueue(path: db).read { db in
        try Row.fetchAll(db, sql: """
            SELECT r.id, p.task, p.name AS protocol, d.name, d.parameters FROM runs r JOIN protocols p ON p.id = r.protocol_id
            JOIN decoders d ON d.id = r.decoder_id ORDER BY r.id
            """).map { row in
                let name: String = row["name"], protocolName: String = row["protocol"]
                let golden = "\(name)-\(protocolName.hasPrefix("demo-") ? String(protocolName.dropFirst(5)) : protocolName).jsonl"
                return (row["id"], row["task"], name, row["parameters"], golden)
            }
    }
}

private func tokens(ofGolden url: URL) throws -> [String: [Int]] {
    var out: [String: [Int]] = [:]
    for line in try String(contentsOf: url, encoding: .utf8).split(separator: "\n").dropFirst() {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        out[object["item"] as! String] = object["tokens"] as? [Int]
    }
    return out
}

/// The project's own decoder regression gate: `mirage demo`'s default model, the trained model organism, runs
/// greedy, beam search and OPERA on 3 held-out images (CHAIR captions and POPE's three splits), and every run must equal its committed
/// golden run token for token (`mirage check --exact`). A change that alters a decoder's output fails here with
/// the items named; if the change is intended, regenerate the goldens (docs/check.md). Then OPERA under a
/// changed penalty scale factor must fail the gate, naming exactly the items whose tokens changed.
@Test func decoderOutputsMatchTheCommittedGoldenRuns() throws {
    let scratch = try Scratch()
    defer { scratch.cleanup() }
    let db = scratch.path("gate.sqlite"), cache = scratch.path("cache")
    _ = try mirageOK(["demo", "--db", db, "--cache", cache] + demoArguments)
    let runs = try demoRuns(db)
    let tasks = Set(runs.map(\.task))
    if !tasks.contains("chair") {
        print("note: CHAIR was not run (no WordNet at /usr/share/wordnet; Debian: wordnet-base): only the POPE goldens are checked")
    }
    #expect(tasks.contains("pope"))
    for run in runs {
        let golden = goldenFolder.appendingPathComponent(run.golden)
        #expect(FileManager.default.fileExists(atPath: golden.path), "no golden run \(golden.lastPathComponent); run Scripts/golden/regenerate-decoder-goldens.sh")
        let result = try mirage(["check", "--db", db, String(run.id), "--exact", golden.path])
        #expect(result.status == 0, """
            \(run.decoder) on \(run.task) no longer reproduces \(golden.lastPathComponent) (exit \(result.status)):
            \(result.stdout)\(result.stderr)
            If this change of outputs is intended (a decoder fix, a new demo model), run
            Scripts/golden/regenerate-decoder-goldens.sh and commit Tests/Golden/decoders/ with the change.
            """)
    }

    // OPERA with a sharper over-trust penalty (its attention scale factor σ 50 → 200): refused as another
    // parameter setting, then, allowed, the gate names the changed items, exactly those whose tokens differ
    // from the golden run.
    let perturbed = "opera:opera-paper,num_beams=3,scale_factor=200"
    _ = try mirageOK(["demo", "--db", db, "--cache", cache, "--decoder", perturbed] + demoArguments)
    let operaRuns = try demoRuns(db).filter { $0.decoder == "opera" && $0.parameters.contains("\"scale_factor\":200") }
    #expect(operaRuns.count == runs.filter { $0.decoder == "opera" }.count)
    var changedSomewhere = false
    for run in operaRuns {
        let golden = goldenFolder.appendingPathComponent(run.golden)
        let refused = try mirage(["check", "--db", db, String(run.id), "--exact", golden.path])
        #expect(refused.status == 2 && refused.stdout.contains("scale_factor 50 → 200"), "\(refused.stdout)\(refused.stderr)")
        let result = try mirage(["check", "--db", db, String(run.id), "--exact", golden.path, "--allow-parameter-change", "--json"])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stderr)")
        let named = Set(((report["exact"] as? [String: Any])?["differences"] as? [[String: Any]] ?? []).map { $0["item"] as! String })
        let stored = try DatabaseQueue(path: db).read { db in
            try Row.fetchAll(db, sql: "SELECT item_key, output_tokens FROM items WHERE run_id = ?", arguments: [run.id])
                .map { ($0["item_key"] as String, $0["output_tokens"] as String) }
        }
        let expected = try tokens(ofGolden: golden)
        let changed = Set(try stored.filter { key, json in
            try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [Int] != expected[key]
        }.map(\.0))
        #expect(named == changed)
        #expect(result.status == (changed.isEmpty ? 0 : 1))
        changedSomewhere = changedSomewhere || !changed.isEmpty
        if !changed.isEmpty {
            let text = try mirage(["check", "--db", db, String(run.id), "--exact", golden.path, "--allow-parameter-change"])
            #expect(text.status == 1)
            for key in changed { #expect(text.stdout.contains("item \(key)"), "item \(key) not named in:\n\(text.stdout)") }
        }
    }
    #expect(changedSomewhere, "the perturbed OPERA changed no output: the gate would not notice such a change")
}

/// Writing a golden file, checking against it, and every documented exit code, on imported POPE answers.
@Test func checkWritesGoldenFilesAndExitsAsDocumented() throws {
    let scratch = try Scratch()
    defer { scratch.cleanup() }
    let db = scratch.path("runs.sqlite")
    let questions = try scratch.write("q.jsonl", SyntheticPope.questions(40))
    /// `spacing` rewrites the same answers in other bytes, so the import is a new run (imports are found again by content).
    func importAnswers(_ salt: Int, label: String, decoder: String = "greedy", spacing: (String) -> String = { $0 }) throws {
        let file = try scratch.write("a-\(label).jsonl", spacing(SyntheticPope.answers(40, salt: salt)))
        try mirageOK(["import", "pope", file, "--questions", questions, "--split", "random", "--model", "m",
                      "--decoder", decoder, "--label", label, "--db", db])
    }
    try importAnswers(0, label: "base")
    try importAnswers(0, label: "same") { $0.replacingOccurrences(of: "\": ", with: "\":") }
    try importAnswers(3, label: "other")
    try importAnswers(0, label: "beam", decoder: "beam5") { $0.replacingOccurrences(of: ", \"", with: ",\"") }

    let golden = scratch.path("golden/base.jsonl")
    let written = try mirage(["check", "--db", db, "--write-golden", golden, "base"])
    #expect(written.status == 0 && written.stderr.contains("Wrote 40 items of run 1 (base)"), "\(written.stderr)")
    let header = try String(contentsOf: URL(fileURLWithPath: golden), encoding: .utf8).split(separator: "\n")[0]
    #expect(header.contains(#""format":"mirage-golden""#) && header.contains(#""items":40"#))

    // 0: identical outputs (imports carry text only, which the report notes).
    let pass = try mirage(["check", "--db", db, "same", "--exact", golden])
    #expect(pass.status == 0 && pass.stdout.contains("exact: PASS") && pass.stdout.contains("compared by text"), "\(pass.stdout)")
    // 1: other answers; each differing item is named with both texts.
    let fail = try mirage(["check", "--db", db, "other", "--exact", golden, "--max-listed", "2"])
    #expect(fail.status == 1 && fail.stdout.contains("exact: FAIL"), "\(fail.stdout)")
    #expect(fail.stdout.contains("    baseline: \"") && fail.stdout.contains("… and "))
    // 2: another decoder.
    let other = try mirage(["check", "--db", db, "beam", "--exact", golden])
    #expect(other.status == 2 && other.stdout.contains("decoder: baseline greedy, run beam5"), "\(other.stdout)")
    // --metric against the golden file: the evidence is printed; --json for bots.
    let metric = try mirage(["check", "--db", db, "other", "--baseline", golden, "--metric", "pope_accuracy", "--worse-by", "100"])
    #expect(metric.status == 0 && metric.stdout.contains("pope_accuracy: PASS") && metric.stdout.contains("2000 resamples of 40 questions, seed 0"),
            "\(metric.stdout)")
    let json = try mirage(["check", "--db", db, "other", "--exact", golden, "--json"])
    let report = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
    #expect(json.status == 1 && report["status"] as? String == "regression" && report["exit_code"] as? Int == 1)
    // 64: usage; 65: a malformed golden file; 66: a run that does not exist.
    #expect(try mirage(["check", "--db", db, "same"]).status == 64)
    #expect(try mirage(["check", "--db", db, "same", "--metric", "chair_i"]).status == 64)
    let broken = try scratch.write("broken.jsonl", "{\"format\": \"mirage-golden\", \"version\": 1}\n")
    let malformed = try mirage(["check", "--db", db, "same", "--exact", broken, "--json"])
    #expect(malformed.status == 65 && malformed.stderr.contains("broken.jsonl:1:"), "\(malformed.stderr)")
    let error = try #require(try JSONSerialization.jsonObject(with: Data(malformed.stdout.utf8)) as? [String: Any])
    #expect(error["status"] as? String == "error" && error["exit_code"] as? Int == 65)
    let missing = try mirage(["check", "--db", db, "nope", "--exact", golden])
    #expect(missing.status == 66, "\(missing.stderr)")
}
