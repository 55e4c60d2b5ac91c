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
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mirage-cli-data-\(UUID().uuidString)")
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
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mirage-cli-data-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try Self.run(["data", "fetch", "chair-ground-truth"], dataDir: dir)
        #expect(r.status != 0)
        #expect(r.stderr.contains("mirage data import chair-ground-truth --from DIR"))
        let none = try Self.run(["data", "fetch"], dataDir: dir)
        #expect(none.status != 0)
        #expect(none.stderr.contains("--all"))
    }
}
