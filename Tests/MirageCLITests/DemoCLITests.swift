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
    var arguments = ["demo", "--random-model", "--db", db, "--cache", scratch.path("cache"), "--count", "4", "--threads", "2"]
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
    // Without the reference resources CHAIR runs in demo mode when WordNet is there (Debian's wordnet-base).
    let chairRuns = chairResources || FileManager.default.fileExists(atPath: "/usr/share/wordnet/index.noun")
    #expect(header.contains("CHAIR") == chairRuns)
    if !chairResources { #expect(result.stderr.contains("mirage data fetch chair-synonyms punkt pos-tagger wordnet")) }

    let runs = try DatabaseQueue(path: db).read { db in
        try Row.fetchAll(db, sql: """
            SELECT p.task, d.name AS decoder, r.status, (SELECT COUNT(*) FROM item_scores s WHERE s.run_id = r.id) AS scored
            FROM runs r JOIN protocols p ON p.id = r.protocol_id JOIN decoders d ON d.id = r.decoder_id ORDER BY r.id
            """).map { "\($0["task"] as String) \($0["decoder"] as String) \($0["status"] as String) \($0["scored"] as Int)" }
    }
    // 4 images: 4 captions; POPE: 3 positives + 3 negatives per image.
    let expected = (chairRuns ? ["chair greedy complete 4", "chair beam complete 4", "chair opera complete 4"] : [])
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
    let result = try mirage(["demo", "--random-model", "--db", db, "--cache", scratch.path("cache"), "--count", "3",
                             "--synonyms", scratch.path("missing-synonyms.txt")])
    #expect(result.status == 0, "mirage demo failed: \(result.stderr)")
    #expect(result.stdout.contains("POPE random") && !result.stdout.contains("CHAIR_S"))
    #expect(result.stderr.contains("CHAIR was skipped") && result.stderr.contains("missing-synonyms.txt"))
    #expect(result.stderr.contains("mirage data fetch chair-synonyms punkt pos-tagger wordnet"))
    #expect(try DatabaseQueue(path: db).read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM runs") } == 3)
}

/// `--precision` is part of a run's identity: the same demo in fast precision stores new runs (a model
/// named "(fast)", or "(fast/<route>)" off the standard route), rerunning either reuses its own runs, and
/// `mirage runs show` prints each run's precision and a fast run's route.
@Test func demoPrecisionMakesNewRunsAndRunsShowPrintsIt() throws {
    let scratch = try Scratch()
    defer { scratch.cleanup() }
    let db = scratch.path("demo.sqlite")
    let arguments = ["demo", "--random-model", "--db", db, "--cache", scratch.path("cache"), "--count", "3",
                     "--synonyms", scratch.path("missing-synonyms.txt")]
    func runCount() throws -> Int? { try DatabaseQueue(path: db).read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM runs") } }
    _ = try mirageOK(arguments)
    #expect(try runCount() == 3)
    _ = try mirageOK(arguments + ["--precision", "exact"])
    #expect(try runCount() == 3)
    _ = try mirageOK(arguments + ["--precision", "fast"])
    #expect(try runCount() == 6)
    _ = try mirageOK(arguments + ["--precision", "fast"])
    #expect(try runCount() == 6)
    func precisionLine(_ run: Int) throws -> String? {
        try mirageOK(["runs", "show", String(run), "--db", db]).split(separator: "\n").first { $0.hasPrefix("Precision") }
            .map { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().joined(separator: " ") }
    }
    #expect(try precisionLine(1) == "exact")
    // Fast runs also name the route this CPU takes (the standard one keeps the name "(fast)").
    let fastLine = try #require(try precisionLine(4))
    let models = try DatabaseQueue(path: db).read { try String.fetchAll($0, sql: "SELECT name FROM models ORDER BY id") }
    #expect(models.count == 2)
    if fastLine.hasPrefix("fast (standard route: ") {
        #expect(models[1] == models[0] + " (fast)")
    } else {
        #expect(fastLine.hasPrefix("fast (route: ") && fastLine.contains("weights with"), "\(fastLine)")
        #expect(models[1].hasPrefix(models[0] + " (fast/") && models[1].hasSuffix(")"), "\(models[1])")
    }
    let bad = try mirage(arguments + ["--precision", "half"])
    #expect(bad.status != 0 && bad.stderr.contains("half"))
}

/// `--images DIR --annotations coco2014_gt_objects.json`: the demo runs on the first images of the folder
/// that the ground truth knows, with POPE questions built from their objects.
@Test(.enabled(if: SharedData.chairRunAvailable, SharedData.chairRunMissingMessage))
func demoRunsOnRealImagesWithTheirGroundTruth() throws {
    let scratch = try Scratch()
    defer { scratch.cleanup() }
    let folder = SharedData.url("coco/images")
    let db = scratch.path("demo.sqlite")
    let result = try mirage(["demo", "--db", db, "--cache", scratch.path("cache"), "--count", "3",
                             "--images", folder.path, "--annotations", SharedData.url("chair/coco2014_gt_objects.json").path,
                             "--synonyms", SharedData.url("chair/synonyms.txt").path, "--nltk-data", SharedData.url("nltk").path,
                             "--wordnet", SharedData.wordnet])
    #expect(result.status == 0, "mirage demo failed: \(result.stderr)")
    // Both tasks on the real images: CHAIR scored against the prebuilt ground truth, POPE built from it.
    let tasks = try DatabaseQueue(path: db).read { db in
        try String.fetchAll(db, sql: "SELECT p.task FROM runs r JOIN protocols p ON p.id = r.protocol_id WHERE r.status = 'complete' ORDER BY r.id")
    }
    #expect(tasks == ["chair", "chair", "chair", "pope", "pope", "pope"])
    #expect(result.stdout.contains("3 images of \(folder.path)"))
    let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".jpg") }
    // CHAIR captions the 3 chosen images; POPE asks about those of them with the 3 objects its recipe needs.
    let imageIDs = try DatabaseQueue(path: db).read { db in
        try String.fetchAll(db, sql: "SELECT DISTINCT p.task || ' ' || p.image_ids FROM runs r JOIN protocols p ON p.id = r.protocol_id ORDER BY p.task")
    }
    try #require(imageIDs.count == 2)
    let chairIDs = try JSONDecoder().decode([Int].self, from: Data(imageIDs[0].dropFirst("chair ".count).utf8))
    let popeIDs = try JSONDecoder().decode([Int].self, from: Data(imageIDs[1].dropFirst("pope ".count).utf8))
    #expect(chairIDs.count == 3 && !popeIDs.isEmpty && Set(popeIDs).isSubset(of: chairIDs))
    for id in chairIDs { #expect(files.contains { $0.hasSuffix(String(format: "%012d.jpg", id)) }, "image \(id) is not in the folder") }
    let failed = try DatabaseQueue(path: db).read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM items WHERE status != 'ok'") }
    #expect(failed == 0)
}

/// With nothing installed in the data store and no CHAIR options, the demo still covers both tasks: CHAIR
/// runs in demo mode (COCO's category names, untrained splitter, noun lemmas from Debian's WordNet), says so
/// on both streams, and stores complete, scored CHAIR runs.
@Test(.enabled(if: FileManager.default.fileExists(atPath: "/usr/share/wordnet/index.noun"),
               "skipped: needs Debian's wordnet-base (/usr/share/wordnet), which demo mode lemmatizes with"))
func demoWithAnEmptyDataStoreRunsCHAIRInDemoMode() throws {
    let scratch = try Scratch()
    defer { scratch.cleanup() }
    let binary = try #require(BuiltProducts.mirage)
    var environment = ProcessInfo.processInfo.environment
    environment["MIRAGE_DATA"] = scratch.path("empty-data-store")
    let db = scratch.path("demo.sqlite")
    let result = try runProcess(binary, ["demo", "--random-model", "--db", db, "--cache", scratch.path("cache"), "--count", "3"],
                                environment: environment)
    #expect(result.status == 0, "mirage demo failed: \(result.stderr)")
    let header = try #require(result.stdout.split(separator: "\n").first { $0.contains("POPE random") })
    #expect(header.contains("CHAIR"))
    #expect(result.stdout.contains("CHAIR in demo mode, not the reference metric"))
    #expect(result.stderr.contains("CHAIR ran in demo mode") && result.stderr.contains("mirage data fetch chair-synonyms punkt pos-tagger wordnet"))
    let chairRuns = try DatabaseQueue(path: db).read { db in
        try Row.fetchAll(db, sql: """
            SELECT r.status, (SELECT COUNT(*) FROM item_scores s WHERE s.run_id = r.id) AS scored
            FROM runs r JOIN protocols p ON p.id = r.protocol_id WHERE p.task = 'chair'
            """)
    }
    #expect(chairRuns.count == 3)
    for run in chairRuns {
        #expect(run["status"] as String == "complete")
        #expect(run["scored"] as Int == 3)
    }
}

/// Without options the demo runs the model organism shipped in the repository (Models/organism) on its
/// held-out set (Annotations/organism): the first --count images, POPE's three splits (CHAIR is skipped here:
/// the synonym file named does not exist), greedy, beam search and OPERA. --random-model goes back to the
/// random-weight model and refuses --model.
@Test func demoRunsTheModelOrganismByDefault() throws {
    let scratch = try Scratch()
    defer { scratch.cleanup() }
    let db = scratch.path("demo.sqlite")
    let result = try mirage(["demo", "--db", db, "--cache", scratch.path("cache"), "--count", "2",
                             "--synonyms", scratch.path("missing-synonyms.txt")])
    #expect(result.status == 0, "mirage demo failed: \(result.stderr)")
    #expect(result.stdout.contains("2 held-out organism images") && result.stdout.contains("the trained model organism"))
    for split in ["random", "popular", "adversarial"] {
        #expect(result.stdout.contains("POPE \(split)"), "no POPE \(split) column in:\n\(result.stdout)")
    }
    let runs = try DatabaseQueue(path: db).read { db in
        try Row.fetchAll(db, sql: """
            SELECT p.task, r.status, (SELECT COUNT(*) FROM item_scores s WHERE s.run_id = r.id) AS scored
            FROM runs r JOIN protocols p ON p.id = r.protocol_id ORDER BY r.id
            """).map { "\($0["task"] as String) \($0["status"] as String) \($0["scored"] as Int)" }
    }
    // 2 images × (3 present + 3 absent objects) per split, 3 splits × 3 decoders.
    #expect(runs == Array(repeating: "pope complete 12", count: 9))

    let refused = try mirage(["demo", "--random-model", "--model", scratch.path("m"), "--db", db])
    #expect(refused.status != 0 && refused.stderr.contains("--random-model replaces the model organism"))
}

/// `mirage demo --record-attention` stores every item's last-layer attention, as `mirage run --record-attention`
/// does, so `mirage analyze overtrust` can read the demo's runs.
@Test func demoRecordsAttentionWhenAsked() throws {
    let scratch = try Scratch()
    defer { scratch.cleanup() }
    let db = scratch.path("demo.sqlite")
    let base = ["demo", "--random-model", "--db", db, "--cache", scratch.path("cache"), "--count", "2", "--threads", "2",
                "--decoder", "greedy"]
    let result = try mirage(base + ["--record-attention"])
    #expect(result.status == 0, "mirage demo --record-attention failed: \(result.stderr)")
    let (items, recorded) = try DatabaseQueue(path: db).read { db in
        (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM items") ?? 0,
         try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT item_id) FROM item_attention") ?? 0)
    }
    #expect(items > 0 && recorded == items, "\(recorded) of \(items) items have attention")
}
