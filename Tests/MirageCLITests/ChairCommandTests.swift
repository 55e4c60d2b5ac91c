import Foundation
import Testing
import MirageTestSupport

/// `mirage chair` end to end, with the data named explicitly (the data store is pointed at an empty folder).
@Suite struct ChairCommandTests {
    static let wordnet = "/usr/share/wordnet"
    static var isAvailable: Bool {
        SharedData.has("chair/synonyms.txt", "chair/coco2014_gt_objects.json", "chair/opera-logs/llava-1.5-ours.jsonl",
                       "nltk/punkt_tab/english", "nltk/averaged_perceptron_tagger_eng")
            && FileManager.default.fileExists(atPath: wordnet + "/index.noun")
    }
    static let missingMessage: Comment =
        "skipped: needs ../shared/data (chair/, nltk/) and WordNet 3.0 in /usr/share/wordnet (Debian wordnet-base)"

    static let dataArguments = [
        "--ground-truth", SharedData.url("chair/coco2014_gt_objects.json").path,
        "--synonyms", SharedData.url("chair/synonyms.txt").path,
        "--nltk-data", SharedData.url("nltk").path,
        "--wordnet", wordnet,
    ]

    static func temporaryDirectory() throws -> URL {
        let dir = TestTemporary.root.appendingPathComponent("mirage-chair-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Runs `mirage chair` with an empty data store so only the named data is used.
    static func chair(_ arguments: [String], store: URL) throws -> ProcessResult {
        let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        var environment = ProcessInfo.processInfo.environment
        environment["MIRAGE_DATA"] = store.path
        return try runProcess(binary, ["chair"] + arguments, environment: environment)
    }

    @Test(.enabled(if: isAvailable, missingMessage))
    func printsTheReferenceLinesForLlavaOpera() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try Self.chair(["--captions", SharedData.url("chair/opera-logs/llava-1.5-ours.jsonl").path]
                                    + Self.dataArguments, store: dir)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "CHAIRs    : 44.6\nCHAIRi    : 12.7\nRecall    : 79.2\nLen       : 92.7\n")
    }

    /// With no data options, everything comes from the data store (here filled by `mirage data import`).
    @Test(.enabled(if: isAvailable, missingMessage))
    func usesTheDataStoreByDefault() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let binary = try #require(BuiltProducts.mirage)
        var environment = ProcessInfo.processInfo.environment
        environment["MIRAGE_DATA"] = dir.path
        let imported = try runProcess(binary, ["data", "import", "--from", SharedData.root.path], environment: environment)
        #expect(imported.status == 0, "\(imported.stderr)")
        let result = try Self.chair(["--captions", SharedData.url("chair/opera-logs/llava-1.5-ours.jsonl").path], store: dir)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "CHAIRs    : 44.6\nCHAIRi    : 12.7\nRecall    : 79.2\nLen       : 92.7\n")
    }

    @Test(.enabled(if: isAvailable, missingMessage))
    func jsonAndDetailsCarryFullPrecisionAndPositions() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let details = dir.appendingPathComponent("details.json")
        let result = try Self.chair(["--captions", SharedData.url("chair/opera-logs/llava-1.5-ours.jsonl").path,
                                     "--json", "--details", details.path] + Self.dataArguments, store: dir)
        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let overall = try #require(json["overall_metrics"] as? [String: Any])
        #expect(overall["CHAIRs"] as? Double == 0.446)
        #expect(abs((overall["CHAIRi"] as? Double ?? 0) - 0.12701888858472488) < 1e-12)
        let captions = try #require(json["captions"] as? [[String: Any]])
        #expect(captions.count == 500)
        // First caption (image 226988): hallucinated chair, backpack, bottle (reference), with positions.
        let first = captions[0]
        #expect(first["image_id"] as? Int == 226988)
        let hallucinated = try #require(first["hallucinated"] as? [[String: Any]])
        #expect(hallucinated.map { $0["node_word"] as? String } == ["chair", "backpack", "bottle"])
        let tokens = try #require(first["tokens"] as? [String])
        #expect(hallucinated.map { $0["token_index"] as? Int } == [45, 79, 103])
        #expect(hallucinated.compactMap { $0["token_index"] as? Int }.map { tokens[$0] } == ["chairs", "backpack", "bottle"])
        #expect(FileManager.default.contents(atPath: details.path) == Data(result.stdout.dropLast().utf8))
    }

    @Test(.enabled(if: isAvailable, missingMessage))
    func truncateIncompleteDropsTheUnfinishedSentence() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // Image 226988's objects: person, pizza, dining table.
        let captions = dir.appendingPathComponent("c.jsonl")
        try Data(#"{"image_id": 226988, "caption": "A woman eats pizza. A dog sits on the"}"#.utf8).write(to: captions)
        let plain = try Self.chair(["--captions", captions.path] + Self.dataArguments, store: dir)
        #expect(plain.stdout.hasPrefix("CHAIRs    : 100.0\nCHAIRi    : 33.3\n"), "\(plain.stderr)")
        let cut = try Self.chair(["--captions", captions.path, "--truncate-incomplete"] + Self.dataArguments, store: dir)
        #expect(cut.stdout.hasPrefix("CHAIRs    : 0.0\nCHAIRi    : 0.0\n"), "\(cut.stderr)")
    }

    @Test(.enabled(if: isAvailable, missingMessage), arguments: [
        ("{\"image_id\": 226988, \"caption\": \"a dog\"}\n{\"image_id\": 1, \"caption\": ", "c.jsonl:2: malformed JSON"),
        ("{\"image_id\": 226988, \"caption\": \"a dog\"}\n\n{\"image_id\": 5, \"caption\": \"a cat\"}\n",
         "c.jsonl:3: image id 5 has no CHAIR ground truth"),
        ("{\"image_id\": 226988, \"text\": \"a dog\"}\n", "c.jsonl:1: missing key \"caption\""),
        ("", "c.jsonl: the file is empty"),
        ("[{\"image_id\": 226988, \"caption\": \"a dog\"},", "c.jsonl:1: malformed JSON: the list is not closed"),
    ])
    func badInputNamesFileAndLine(content: String, message: String) throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let captions = dir.appendingPathComponent("c.jsonl")
        try Data(content.utf8).write(to: captions)
        let result = try Self.chair(["--captions", captions.path] + Self.dataArguments, store: dir)
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains(message), "\(result.stderr)")
    }

    /// `--coco-annotations`: the ground truth is built from a hand-made COCO 2014 layout, then cached.
    @Test(.enabled(if: isAvailable, missingMessage))
    func buildsGroundTruthFromAnnotationsAndCachesIt() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let annotations = dir.appendingPathComponent("annotations")
        try FileManager.default.createDirectory(at: annotations, withIntermediateDirectories: true)
        let categories = #""categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}, {"id": 62, "name": "chair"}]"#
        let files = [
            "instances_train2014.json": #"{"images": [{"id": 7}], "annotations": [{"image_id": 7, "category_id": 18, "id": 1}], "# + categories + "}",
            "instances_val2014.json": #"{"images": [{"id": 8}], "annotations": [], "# + categories + "}",
            "captions_train2014.json": #"{"images": [{"id": 7}], "annotations": [{"image_id": 7, "id": 2, "caption": "Two puppies sleeping on a sofa."}]}"#,
            "captions_val2014.json": #"{"images": [{"id": 8}], "annotations": [{"image_id": 8, "id": 3, "caption": "A man is skiing."}]}"#,
        ]
        for (name, text) in files { try Data(text.utf8).write(to: annotations.appendingPathComponent(name)) }
        // Image 7: dog (instance) + dog, couch (caption); image 8: person, skis ("skiing" → ski).
        let captions = dir.appendingPathComponent("c.jsonl")
        try Data("""
        {"image_id": 7, "caption": "A dog on a couch next to a man."}
        {"image_id": 8, "caption": "A skier with skis and a dog."}
        """.utf8).write(to: captions)
        var arguments = ["--captions", captions.path, "--coco-annotations", annotations.path,
                         "--cache-dir", dir.appendingPathComponent("cache").path, "--json"]
        arguments += Self.dataArguments.dropFirst(2)  // everything but --ground-truth
        let first = try Self.chair(arguments, store: dir)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stderr.contains("built CHAIR ground truth for 2 images"))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any])
        let scored = try #require(json["captions"] as? [[String: Any]])
        #expect(scored.map { $0["ground_truth"] as? [String] } == [["couch", "dog"], ["person", "skis"]])
        #expect(scored.map { ($0["hallucinated"] as? [[String: Any]])?.map { $0["node_word"] as? String } }
                == [["person"], ["dog"]])
        let second = try Self.chair(arguments, store: dir)
        #expect(second.status == 0)
        #expect(!second.stderr.contains("built CHAIR ground truth"))
        #expect(second.stdout == first.stdout)
    }

    @Test func missingDataNamesTheFetchCommand() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let captions = dir.appendingPathComponent("c.jsonl")
        try Data(#"{"image_id": 1, "caption": "a dog"}"#.utf8).write(to: captions)
        let result = try Self.chair(["--captions", captions.path], store: dir.appendingPathComponent("store"))
        #expect(result.status == 1)
        #expect(result.stderr.contains("mirage data fetch chair-synonyms"), "\(result.stderr)")
        let missing = try Self.chair(["--captions", dir.appendingPathComponent("nope.jsonl").path], store: dir)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("nope.jsonl"), "\(missing.stderr)")
    }

    @Test func helpTeachesWithExamples() throws {
        let binary = try #require(BuiltProducts.mirage)
        let help = try runProcess(binary, ["chair", "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("EXAMPLES"))
        #expect(help.stdout.contains("--truncate-incomplete"))
        let benchBinary = try #require(BuiltProducts.mirageBench, "the mirage-bench executable was not built next to the tests")
        let bench = try runProcess(benchBinary, ["--help"])
        #expect(bench.stdout.contains("chair") && bench.stdout.contains("groundtruth"))
    }
}
