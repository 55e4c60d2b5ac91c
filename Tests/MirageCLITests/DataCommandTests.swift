import Foundation
import Testing
import MirageTestSupport

@Suite struct DataCommandTests {
    static func run(_ args: [String], dataDir: URL) throws -> ProcessResult {
        let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        var env = ProcessInfo.processInfo.environment
        env["MIRAGE_DATA"] = dataDir.path
        return try runProcess(binary, args, environment: env)
    }

    @Test(.enabled(if: SharedData.isAvailable, SharedData.missingMessage))
    func importSharedFolderThenList() throws {
        let dir = TestTemporary.root.appendingPathComponent("mirage-cli-data-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let before = try Self.run(["data", "list"], dataDir: dir)
        #expect(before.status == 0)
        #expect(before.stdout.contains("chair-synonyms"))
        #expect(before.stdout.contains("mirage data fetch chair-synonyms"))
        #expect(before.stdout.contains("import only: mirage data import chair-ground-truth --from DIR"))

        let imported = try Self.run(["data", "import", "--from", SharedData.root.path], dataDir: dir)
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stdout.contains("chair-synonyms: imported into"))
        #expect(imported.stdout.contains("sha256 verified"))

        let after = try Self.run(["data", "list", "--verbose"], dataDir: dir)
        let synonymsLine = after.stdout.split(separator: "\n").first { $0.hasPrefix("chair-synonyms") }
        #expect(synonymsLine?.contains("present") == true)
        #expect(after.stdout.contains("https://raw.githubusercontent.com/LisaAnne/Hallucination/6e4d33c4bedf6dfcd24c61bf527f40714717be47/data/synonyms.txt"))
    }

    @Test func fetchOfImportOnlySourceExplainsWhatToDo() throws {
        let dir = TestTemporary.root.appendingPathComponent("mirage-cli-data-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try Self.run(["data", "fetch", "chair-ground-truth"], dataDir: dir)
        #expect(r.status != 0)
        #expect(r.stderr.contains("mirage data import chair-ground-truth --from DIR"))
        let none = try Self.run(["data", "fetch"], dataDir: dir)
        #expect(none.status != 0)
        #expect(none.stderr.contains("--all"))
    }
}

@Suite struct POPECommandTests {
    @Test func buildIsReproducibleAndInfoRecognisesItsOutput() throws {
        let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        let dir = TestTemporary.root.appendingPathComponent("mirage-cli-pope-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        // POPE's own ground-truth layout, hand-made: 6 images with 3+ objects.
        let objects = """
        {"image": "COCO_val2014_000000000001.jpg", "objects": ["person", "dog", "car", "apple"]}
        {"image": "COCO_val2014_000000000002.jpg", "objects": ["dog", "cat", "bench"]}
        {"image": "COCO_val2014_000000000003.jpg", "objects": ["car", "person", "umbrella"]}
        {"image": "COCO_val2014_000000000004.jpg", "objects": ["kite", "person", "orange", "dog"]}
        {"image": "COCO_val2014_000000000005.jpg", "objects": ["bench", "cat", "person"]}
        {"image": "COCO_val2014_000000000006.jpg", "objects": ["apple", "orange", "banana"]}
        {"image": "COCO_val2014_000000000007.jpg", "objects": ["person"]}

        """
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let input = dir.appendingPathComponent("objects.jsonl")
        try objects.write(to: input, atomically: true, encoding: .utf8)
        for out in ["a", "b"] {
            let r = try runProcess(binary, ["pope", "build", "--objects", input.path, "--images", "5", "--seed", "11",
                                            "--out", dir.appendingPathComponent(out).path])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.contains("pool: 5 of 6 eligible images, seed 11"))
        }
        for split in ["random", "popular", "adversarial"] {
            let a = try Data(contentsOf: dir.appendingPathComponent("a/coco_pope_\(split).json"))
            let b = try Data(contentsOf: dir.appendingPathComponent("b/coco_pope_\(split).json"))
            #expect(a == b, "\(split) is reproducible")
            #expect(String(decoding: a, as: UTF8.self).split(separator: "\n").count == 30)
        }
        let info = try runProcess(binary, ["pope", "info", dir.appendingPathComponent("a/coco_pope_random.json").path])
        #expect(info.status == 0)
        #expect(info.stdout.contains("unknown: 30 questions (15 yes / 15 no) over 5 images, 0 with the \"imange\" typo"))

        let bad = try runProcess(binary, ["pope", "build", "--objects", input.path, "--images", "9", "--out", dir.path])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("only 6 images have at least 3 distinct objects"))
    }
}
