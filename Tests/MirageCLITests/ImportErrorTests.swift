import Foundation
import Testing
import GRDB
import MirageTestSupport

/// A database holding one good POPE run, and a check that a failing command left it exactly as it was.
struct StoreWithOneRun {
    let scratch: Scratch
    let db: String
    let questions: String

    init() throws {
        scratch = try Scratch()
        db = scratch.path("runs.sqlite")
        questions = try scratch.write("questions.jsonl", SyntheticPope.questions(6))
        let answers = try scratch.write("good.jsonl", SyntheticPope.answers(6, salt: 0))
        try mirageOK(["import", "pope", answers, "--questions", questions, "--split", "random", "--model", "m",
                      "--decoder", "greedy", "--db", db])
    }

    func snapshot() throws -> String {
        try mirageOK(["runs", "list", "--db", db]) + mirageOK(["export", "1", "--format", "jsonl", "--db", db])
    }

    /// Runs a failing import and returns its error output; requires the store to be unchanged.
    func failingImport(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let before = try snapshot()
        let result = try mirage(arguments + ["--db", db])
        #expect(result.status != 0, "expected a failure: \(result.stdout)", sourceLocation: sourceLocation)
        #expect(try snapshot() == before, "the store changed", sourceLocation: sourceLocation)
        return result.stderr
    }
}

@Test func malformedAnswerFilesAreRefusedWithTheirLineAndNothingIsStored() throws {
    let s = try StoreWithOneRun()
    defer { s.scratch.cleanup() }
    let pope = ["import", "pope", "--questions", s.questions, "--split", "random", "--model", "m", "--decoder", "beam5"]

    let badJSON = try s.scratch.write("bad.jsonl", "{\"question_id\": 1, \"answer\": \"Yes\"}\n{\"question_id\": 2, \"answer\": \"No\"\n")
    let e1 = try s.failingImport(pope + [badJSON])
    #expect(e1.contains("line 2") && e1.contains("not valid JSON"), "\(e1)")

    let wrongKey = try s.scratch.write("key.jsonl", "{\"question_id\": 1, \"text\": \"Yes\"}\n")
    let e2 = try s.failingImport(pope + [wrongKey])
    #expect(e2.contains("no \"answer\" key") && e2.contains("--answer-key"), "\(e2)")

    let unknown = try s.scratch.write("unknown.jsonl", "{\"question_id\": 1, \"answer\": \"Yes\"}\n{\"question_id\": 99, \"answer\": \"No\"}\n")
    let e3 = try s.failingImport(pope + [unknown])
    #expect(e3.contains("line 2") && e3.contains("question_id 99 is not in"), "\(e3)")

    let short = try s.scratch.write("short.jsonl", "{\"answer\": \"Yes\"}\n{\"answer\": \"No\"}\n")
    let e4 = try s.failingImport(pope + [short])
    #expect(e4.contains("2 answers") && e4.contains("6 questions"), "\(e4)")

    let badCaptions = try s.scratch.write("captions.jsonl", "{\"image_id\": 1, \"caption\": \"A dog.\"}\n{\"image_id\": 2, \"text\": \"A cat.\"}\n")
    let e5 = try s.failingImport(["import", "captions", badCaptions, "--model", "m", "--decoder", "greedy"])
    #expect(e5.contains("captions.jsonl:2:") && e5.contains("--caption-key"), "\(e5)")
}

@Test func reimportingTheSameFileNamesTheExistingRun() throws {
    let s = try StoreWithOneRun()
    defer { s.scratch.cleanup() }
    let before = try s.snapshot()
    let again = try mirage(["import", "pope", s.scratch.path("good.jsonl"), "--questions", s.questions, "--split", "random",
                            "--model", "other", "--decoder", "other", "--db", s.db])
    #expect(again.status == 0)
    #expect(again.stderr.contains("already imported as run 1"))
    #expect(try s.snapshot() == before)
}

@Test func aDatabaseFromANewerMirageIsRefusedAndLeftUntouched() throws {
    let s = try StoreWithOneRun()
    defer { s.scratch.cleanup() }
    let queue = try DatabaseQueue(path: s.db)
    try queue.write { db in try db.execute(sql: "INSERT INTO grdb_migrations VALUES ('v2-from-a-newer-mirage')") }
    try queue.close()
    let before = FileManager.default.contents(atPath: s.db)
    for arguments in [["runs", "list"], ["import", "pope", s.scratch.path("good.jsonl"), "--questions", s.questions,
                                         "--model", "m", "--decoder", "beam5"]] {
        let result = try mirage(arguments + ["--db", s.db])
        #expect(result.status != 0)
        #expect(result.stderr.contains("written by a newer Mirage") && result.stderr.contains("v2-from-a-newer-mirage")
                    && result.stderr.contains("Upgrade Mirage"), "\(result.stderr)")
    }
    // The database file is byte-identical and nothing was written to its write-ahead log (SQLite may create
    // an empty -wal/-shm pair when it opens a WAL database).
    #expect(FileManager.default.contents(atPath: s.db) == before)
    #expect((FileManager.default.contents(atPath: s.db + "-wal") ?? Data()).isEmpty)
}

@Test func runsCommandsLabelShowAndDelete() throws {
    let s = try StoreWithOneRun()
    defer { s.scratch.cleanup() }
    try mirageOK(["runs", "label", "1", "baseline", "--db", s.db])
    #expect(try mirageOK(["runs", "show", "baseline", "--db", s.db]).contains("1 (baseline)"))
    let taken = try mirage(["runs", "label", "1", "42", "--db", s.db])
    #expect(taken.status != 0 && taken.stderr.contains("cannot be a number"))
    let declined = try mirage(["runs", "delete", "baseline", "--db", s.db], stdin: "n\n")
    #expect(declined.status != 0 && declined.stdout.contains("Nothing deleted"))
    try mirageOK(["runs", "delete", "baseline", "--yes", "--db", s.db])
    #expect(try mirageOK(["runs", "list", "--db", s.db]).contains("No runs"))
    let missing = try mirage(["runs", "show", "baseline", "--db", s.db])
    #expect(missing.status != 0 && missing.stderr.contains("mirage runs list"))
}
