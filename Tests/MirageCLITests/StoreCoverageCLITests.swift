import Foundation
import Testing
import GRDB
import MirageTestSupport

/// Partial and failed runs are visible, POPE splits are validated and part of an import's identity, readers
/// never write, `runs list` fits a terminal, and a resumed `mirage run --record-attention` fills in attention.
@Suite struct StoreCoverageCLITests {
    @Test func partialAnswerFilesAreMarkedAndRefusedBesideCompleteRuns() throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let questions = try scratch.write("q.jsonl", SyntheticPope.questions(30))
        let full = try scratch.write("full.jsonl", SyntheticPope.answers(30, salt: 1))
        let part = try scratch.write("part.jsonl", SyntheticPope.answers(6, salt: 2))
        let db = scratch.path("r.sqlite")
        let base = ["--questions", questions, "--model", "m", "--db", db]
        try mirageOK(["import", "pope", full, "--decoder", "greedy", "--label", "full"] + base)
        let partial = try mirage(["import", "pope", part, "--decoder", "beam", "--label", "part"] + base)
        #expect(partial.status == 0)
        #expect(partial.stderr.contains("run 2 is partial: 6 of 30 items (24 missing)"))

        let list = try mirageOK(["runs", "list", "--db", db])
        let row = try #require(list.split(separator: "\n").first { $0.hasPrefix("2 ") })
        #expect(row.contains("6/30") && row.contains("partial"))
        #expect(try mirageOK(["runs", "show", "part", "--db", db]).contains("partial (complete; 24 of 30 items missing"))

        let refused = try mirage(["compare", "full", "part", "--db", db])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("run 2 (part) has 6 of 30 items (24 missing)"))
        #expect(refused.stderr.contains("--allow-partial"))
        let allowed = try mirageOK(["compare", "full", "part", "--allow-partial", "--db", db])
        #expect(allowed.contains("partial: run 2 (part) has 6 of 30 items (24 missing)"))
    }

    @Test func popeSplitIsValidatedAndPartOfTheIdentity() throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let questions = try scratch.write("q.jsonl", SyntheticPope.questions(8))
        let answers = try scratch.write("a.jsonl", SyntheticPope.answers(8, salt: 3))
        let db = scratch.path("r.sqlite")
        let base = ["import", "pope", answers, "--questions", questions, "--model", "m", "--decoder", "greedy", "--db", db]
        let weird = try mirage(base + ["--split", "weird"])
        #expect(weird.status != 0)
        #expect(weird.stderr.contains("weird") && weird.stderr.contains("random") && weird.stderr.contains("adversarial"))
        #expect(!FileManager.default.fileExists(atPath: db))

        try mirageOK(base + ["--split", "random"])
        try mirageOK(base + ["--split", "popular"])
        let again = try mirage(base + ["--split", "popular"])
        #expect(again.stderr.contains("already imported as run 2"))
        let queue = try DatabaseQueue(path: db)
        let splits = try queue.read { db in
            try String.fetchAll(db, sql: "SELECT p.split FROM runs r JOIN protocols p ON p.id = r.protocol_id ORDER BY r.id")
        }
        try queue.close()
        #expect(splits == ["random", "popular"])
    }

    @Test func runsListFitsAHundredAndTwentyColumns() throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let questions = try scratch.write("q.jsonl", SyntheticPope.questions(4))
        let answers = try scratch.write("a.jsonl", SyntheticPope.answers(4, salt: 5))
        let db = scratch.path("r.sqlite")
        try mirageOK(["import", "pope", answers, "--questions", questions, "--db", db,
                      "--model", "llava-1.5-7b-hf-with-a-rather-long-folder-name", "--decoder", "opera",
                      "--decoder-param", "num_beams=5", "--decoder-param", "scale_factor=50", "--decoder-param", "threshold=15",
                      "--decoder-param", "num_attn_candidates=5", "--label", "a-label-that-is-long-enough-to-be-cut",
                      "--protocol-name", "opera-pope-random-with-a-long-name"])
        let list = try mirageOK(["runs", "list", "--db", db])
        #expect(list.split(separator: "\n").allSatisfy { $0.count <= 120 }, "too wide:\n\(list)")
        #expect(list.contains("a-label-that-is…"))
        let wide = try mirageOK(["runs", "list", "--wide", "--db", db])
        #expect(wide.contains("a-label-that-is-long-enough-to-be-cut") && wide.contains("num_attn_candidates=5"))
        #expect(wide.contains("Created") && wide.contains("pope"))
    }

    /// A store the user may read but not write (owned by root, in a folder only root may write) is listed,
    /// exported and compared by another user, with and without a writer connected, and the reader leaves no
    /// files behind. Needs root and setpriv (util-linux).
    @Test func unprivilegedReaderListsExportsAndCompares() throws {
        let setpriv = "/usr/bin/setpriv"
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: setpriv) else {
            print("skipped unprivilegedReaderListsExportsAndCompares: needs root and \(setpriv) to run a reader as another user")
            return
        }
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let questions = try scratch.write("q.jsonl", SyntheticPope.questions(6))
        let a = try scratch.write("a.jsonl", SyntheticPope.answers(6, salt: 1))
        let b = try scratch.write("b.jsonl", SyntheticPope.answers(6, salt: 2))
        let folder = scratch.url.appendingPathComponent("shared")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let db = folder.appendingPathComponent("r.sqlite").path
        for (file, label) in [(a, "a"), (b, "b")] {
            try mirageOK(["import", "pope", file, "--questions", questions, "--model", "m", "--decoder", label,
                          "--label", label, "--db", db])
        }
        // Readable by everyone, writable by root only; the path up to it must be searchable by "nobody".
        var dir = folder
        while dir.path != "/" && dir.path.hasPrefix(TestTemporary.root.path) {
            chmod(dir.path, 0o755)
            dir = dir.deletingLastPathComponent()
        }
        chmod(TestTemporary.root.path, 0o755)
        chmod(db, 0o644)
        let binary = try #require(BuiltProducts.mirage)
        func asNobody(_ arguments: [String]) throws -> ProcessResult {
            try runProcess(URL(fileURLWithPath: setpriv),
                           ["--reuid=65534", "--regid=65534", "--clear-groups", binary.path] + arguments,
                           currentDirectory: URL(fileURLWithPath: "/"))
        }
        func files() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted() }

        #expect(files() == ["r.sqlite"])
        for arguments in [["runs", "list"], ["runs", "show", "a"], ["export", "a", "--format", "jsonl"], ["compare", "a", "b"]] {
            let result = try asNobody(arguments + ["--db", db])
            #expect(result.status == 0, "mirage \(arguments.joined(separator: " ")) as nobody: \(result.stderr)")
            #expect(!result.stdout.isEmpty)
        }
        #expect(files() == ["r.sqlite"], "a reader left files behind")
        // A reader cannot write, and says so without leaving files.
        let label = try asNobody(["runs", "label", "a", "x", "--db", db])
        #expect(label.status != 0)

        // With the owner's writer connected (-wal and -shm exist, not writable by the reader): still readable.
        let holder = try DatabaseQueue(path: db)
        try holder.read { db in _ = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM runs") }
        try mirageOK(["runs", "label", "a", "first", "--db", db])
        let during = try asNobody(["runs", "list", "--db", db])
        #expect(during.status == 0, "reading beside a writer: \(during.stderr)")
        #expect(during.stdout.contains("first"))
        try holder.close()
        // The owner still writes afterwards.
        try mirageOK(["runs", "label", "first", "a", "--db", db])
    }

    @Test(.enabled(if: RunCommandTests.available, RunCommandTests.missing))
    func aRunWhoseItemsAllFailExitsNonZeroWithASummary() throws {
        let setup = try RunCommandTests.Setup(ids: [192, 241])
        defer { setup.scratch.cleanup() }
        let empty = setup.scratch.url.appendingPathComponent("no-images")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let result = try mirage(setup.arguments(db: "f.sqlite", images: empty.path) + ["--label", "tiny-{protocol}"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("error: every item of run 1 (chair, "))
        #expect(result.stderr.contains("failed: 2 failed: 2 missing image (e.g. missing image:"))
        #expect(result.stderr.contains("--retry-failed"))
        let list = try mirageOK(["runs", "list", "--db", setup.scratch.path("f.sqlite")])
        #expect(list.contains("tiny-chair") && list.contains("tiny-pope") && list.contains("failed"))
    }

    @Test(.enabled(if: RunCommandTests.available, RunCommandTests.missing))
    func attentionAdviceNamesACommandThatFillsItIn() throws {
        let setup = try RunCommandTests.Setup(ids: [192, 241])
        defer { setup.scratch.cleanup() }
        let arguments = setup.arguments(db: "a.sqlite") + ["--label", "tiny-{protocol}"]
        try mirageOK(arguments)
        let db = setup.scratch.path("a.sqlite")
        let missing = try mirage(["attention", "tiny-chair", "192", "--db", db, "--out", setup.scratch.path("x.png")])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("Run the same command again with --record-attention"))
        // Doing what it says records the attention of the stored items, without decoding them again.
        let again = try mirageOK(arguments + ["--record-attention"])
        #expect(again.contains("(already complete)"))
        let listed = try mirageOK(["attention", "tiny-chair", "--list", "--db", db])
        #expect(listed.split(separator: "\n") == ["192", "241"])
        try mirageOK(["attention", "tiny-chair", "192", "--db", db, "--out", setup.scratch.path("x.png")])
        #expect(FileManager.default.fileExists(atPath: setup.scratch.path("x.png")))
    }
}
