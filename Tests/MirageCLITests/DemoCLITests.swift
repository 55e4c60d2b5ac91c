import Foundation
import Testing
import GRDB
import MirageTestSupport

/// `mirage demo` end to end: synthetic model and images written to the cache, greedy / beam / OPERA run on
/// CHAIR and POPE through the runner, the table printed and the six runs stored; a second call reuses it all.
/// CHAIR's text resources come from ../shared/data and /usr/share/wordnet; without them the demo must run
/// POPE only and say how to get CHAIR.
@Test func demoRunsThreeDecodersOnBothTasks() throws {
    let scratch = try Scratch()
    defer { scratch.cleanup() }
    let chairResources = SharedData.has("chair/synonyms.txt", "nltk/punkt_tab/english", "nltk/averaged_perceptron_tagger_eng")
        && FileManager.default.fileExists(atPath: "/usr/share/wordnet/index.noun")
    let db = scratch.path("demo.sqlite")
    var arguments = ["demo", "--db", db, "--cache", scratch.path("cache"), "--count", "4", "--threads", "2"]
    if chairResources {
        arguments += ["--synonyms", SharedData.url("chair/synonyms.txt").path, "--nltk-data", SharedData.url("nltk").path,
                      "--wordnet", "/usr/share/wordnet"]
    }
    let result = try mirage(arguments)
    #expect(result.status == 0, "mirage demo failed: \(result.stderr)")
    let lines = result.stdout.split(separator: "\n").map(String.init)
    for row in ["greedy", "beam search (3 beams)", "OPERA (3 beams)"] {
        #expect(lines.contains { $0.hasPrefix(row + " ") }, "no table row for \(row) in:\n\(result.stdout)")
    }
    let header = try #require(lines.first { $0.contains("POPE random") }, "no POPE column in:\n\(result.stdout)")
    #expect(header.contains("CHAIR") == chairResources)
    if !chairResources { #expect(result.stderr.contains("mirage data fetch chair-synonyms punkt pos-tagger wordnet")) }

    let runs = try DatabaseQueue(path: db).read { db in
        try Row.fetchAll(db, sql: """
            SELECT p.task, d.name AS decoder, r.status, (SELECT COUNT(*) FROM item_scores s WHERE s.run_id = r.id) AS scored
            FROM runs r JOIN protocols p ON p.id = r.protocol_id JOIN decoders d ON d.id = r.decoder_id ORDER BY r.id
            """).map { "\($0["task"] as String) \($0["decoder"] as String) \($0["status"] as String) \($0["scored"] as Int)" }
    }
    // 4 images: 4 captions; POPE: 3 positives + 3 negatives per image.
    let expected = (chairResources ? ["chair greedy complete 4", "chair beam complete 4", "chair opera complete 4"] : [])
        + ["pope greedy complete 24", "pope beam complete 24", "pope opera complete 24"]
    #expect(runs == expected)

    // Again: the cache and the stored runs are reused, nothing is added.
    let again = try mirageOK(arguments)
    #expect(again.contains("OPERA (3 beams)"))
    #expect(try DatabaseQueue(path: db).read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM runs") } == expected.count)
}

/// Without CHAIR's resources (here: a synonym file that does not exist) the demo runs POPE only and says
/// which command gets CHAIR.
@Test func demoWithoutChairResourcesRunsPOPEOnlyAndSaysWhy() throws {
    let scratch = try Scratch()
    defer { scratch.cleanup() }
    let db = scratch.path("demo.sqlite")
    let result = try mirage(["demo", "--db", db, "--cache", scratch.path("cache"), "--count", "3",
                             "--synonyms", scratch.path("missing-synonyms.txt")])
    #expect(result.status == 0, "mirage demo failed: \(result.stderr)")
    #expect(result.stdout.contains("POPE random") && !result.stdout.contains("CHAIR_S"))
    #expect(result.stderr.contains("CHAIR was skipped") && result.stderr.contains("missing-synonyms.txt"))
    #expect(result.stderr.contains("mirage data fetch chair-synonyms punkt pos-tagger wordnet"))
    #expect(try DatabaseQueue(path: db).read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM runs") } == 3)
}
