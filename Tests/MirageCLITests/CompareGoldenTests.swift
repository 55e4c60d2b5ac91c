import Foundation
import Testing
import MirageTestSupport

/// A small POPE case whose every number is derived by hand in Golden/README.md.
struct PopeGoldenCase {
    let scratch: Scratch
    let db: String

    static let answers: [(split: String, decoder: String, answers: [String])] = [
        ("random", "greedy", ["Yes", "Yes", "No", "No"]),   // run 1: TP q1, FP q2, FN q3, TN q4
        ("popular", "greedy", ["No", "No", "Yes", "Yes"]),  // run 2: FN q1, TN q2, TP q3, FP q4
        ("random", "beam5", ["Yes", "No", "Yes", "No"]),    // run 3: all correct
        ("popular", "beam5", ["Yes", "No", "Yes", "No"]),   // run 4: all correct
    ]

    init() throws {
        scratch = try Scratch()
        db = scratch.path("runs.sqlite")
        for (split, object) in [("random", "dog"), ("popular", "cat")] {
            _ = try scratch.write("q-\(split).jsonl", (1...4).map { i in
                "{\"question_id\": \(i), \"image\": \"COCO_val2014_00000000000\((i + 1) / 2).jpg\", "
                    + "\"text\": \"Is there a \(object) in the image?\", \"label\": \"\(i % 2 == 1 ? "yes" : "no")\"}"
            }.joined(separator: "\n") + "\n")
        }
        for (n, run) in Self.answers.enumerated() {
            let file = try scratch.write("a\(n + 1).jsonl", run.answers.enumerated().map { i, a in
                "{\"question_id\": \(i + 1), \"answer\": \"\(a)\"}"
            }.joined(separator: "\n") + "\n")
            try mirageOK(["import", "pope", file, "--questions", scratch.path("q-\(run.split).jsonl"), "--split", run.split,
                          "--parser", "opera", "--model", "m", "--decoder", run.decoder, "--db", db])
        }
    }
}

func golden(_ name: String) throws -> String {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/\(name)")
    return try String(contentsOf: url, encoding: .utf8)
}

@Test(arguments: [("md", "compare-pope.md"), ("latex", "compare-pope.tex"), ("csv", "compare-pope.csv"),
                  ("json", "compare-pope.json")])
func compareFormatsMatchHandWrittenGoldenFiles(format: String, file: String) throws {
    let setup = try PopeGoldenCase()
    defer { setup.scratch.cleanup() }
    var output = try mirageOK(["compare", "1", "2", "3", "4", "--baseline", "1", "--format", format, "--db", setup.db])
    if format == "json" {
        // Protocol hashes are SHA-256 digests of the synthetic files, not hand-derivable: mask them.
        output = output.replacingOccurrences(of: #""protocolHash" : "[0-9a-f]{64}""#, with: #""protocolHash" : "HASH""#,
                                             options: .regularExpression)
    }
    #expect(output == (try golden(file)))
}

@Test func compareRefusesMixedProtocolsUnlessAllowed() throws {
    let setup = try PopeGoldenCase()
    defer { setup.scratch.cleanup() }
    // Run 1 (random) against a random run scored with another parser: a different protocol.
    let file = setup.scratch.path("a1.jsonl")
    try mirageOK(["import", "pope", file, "--questions", setup.scratch.path("q-random.jsonl"), "--split", "random",
                  "--parser", "strict", "--model", "m", "--decoder", "greedy-strict", "--db", setup.db])
    let refused = try mirage(["compare", "1", "5", "--db", setup.db])
    #expect(refused.status != 0)
    #expect(refused.stderr.contains("different protocols"))
    #expect(refused.stderr.contains("answer parser opera vs strict") || refused.stderr.contains("answer parser strict vs opera"))
    #expect(refused.stderr.contains("--allow-mixed-protocols"))
    let allowed = try mirageOK(["compare", "1", "5", "--allow-mixed-protocols", "--format", "csv", "--db", setup.db])
    #expect(allowed.split(separator: "\n").count == 3)
}

@Test(.enabled(if: SharedData.has("chair/synonyms.txt", "chair/coco2014_gt_objects.json", "nltk")
               && FileManager.default.fileExists(atPath: "/usr/share/wordnet/index.noun"),
               "skipped: needs ../shared/data (CHAIR data, NLTK models) and WordNet (apt-get install wordnet-base)"))
func compareChairWithBootstrapMatchesGoldenFile() throws {
    let scratch = try Scratch()
    defer { scratch.cleanup() }
    let db = scratch.path("runs.sqlite")
    let images = [42, 575, 5359, 1025]
    let runs = [("greedy", ["A dog running.", "A cat sitting.", "A car parked.", "A dog sleeping."]),
                ("beam5", ["A dog and a cat.", "A cat and a dog.", "A car and a dog.", "A dog and a cat."])]
    for (decoder, captions) in runs {
        let file = try scratch.write("\(decoder).jsonl", zip(images, captions).map {
            "{\"image_id\": \($0), \"caption\": \"\($1)\"}"
        }.joined(separator: "\n") + "\n")
        try mirageOK(["import", "captions", file, "--model", "m", "--decoder", decoder, "--db", db,
                      "--synonyms", SharedData.url("chair/synonyms.txt").path, "--nltk-data", SharedData.url("nltk").path,
                      "--ground-truth", SharedData.url("chair/coco2014_gt_objects.json").path])
    }
    let output = try mirageOK(["compare", "1", "2", "--baseline", "1", "--format", "md", "--db", db])
    #expect(output == (try golden("compare-chair.md")))
}
