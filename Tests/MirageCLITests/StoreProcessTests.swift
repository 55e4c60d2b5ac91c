import Foundation
import Testing
import MirageTestSupport

/// The "Metrics" block of `mirage runs show` (everything after the line "Metrics").
func metricsBlock(_ show: String) -> String {
    guard let range = show.range(of: "\nMetrics\n") else { return "" }
    return String(show[range.upperBound...])
}

@Test func importKilledAtRandomMomentsResumesToTheUninterruptedResult() throws {
    let scratch = try Scratch()
    defer { scratch.cleanup() }
    let count = 2000
    let questions = try scratch.write("questions.jsonl", SyntheticPope.questions(count))
    let answers = try scratch.write("answers.jsonl", SyntheticPope.answers(count, salt: 1))
    let arguments = ["import", "pope", answers, "--questions", questions, "--split", "random",
                     "--model", "m", "--decoder", "greedy"]

    // Reference: one uninterrupted import, timed so the kills below land inside an import whatever the
    // machine's speed (a fixed delay lets a fast machine finish before the first kill).
    let started = Date()
    try mirageOK(arguments + ["--db", scratch.path("reference.sqlite")])
    let referenceMicroseconds = Date().timeIntervalSince(started) * 1e6

    // The same import, SIGKILLed after random short delays, then resumed until it completes.
    let binary = try #require(BuiltProducts.mirage)
    let killed = scratch.path("killed.sqlite")
    var generator = SystemRandomNumberGenerator()
    // The reference's time is only a guide: under a loaded machine (tests run in parallel) an import may run
    // faster than the reference did and finish before the kill. When the very first import of a database
    // finishes, nothing was interrupted, so that attempt starts again on a new database with a shorter delay.
    var kills = 0
    var scale = 1.0
    for _ in 0..<10 where kills < 5 {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments + ["--db", killed]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        usleep(UInt32(referenceMicroseconds * scale * Double.random(in: 0.3...0.8, using: &generator)))
        if process.isRunning { kill(process.processIdentifier, SIGKILL); kills += 1 }
        process.waitUntilExit()
        if kills == 0 {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: killed + suffix) }
            scale /= 2
        }
    }
    try mirageOK(arguments + ["--db", killed])
    #expect(kills > 0, "the import always finished before the kill; make it longer")

    let exportReference = try mirageOK(["export", "1", "--format", "jsonl", "--db", scratch.path("reference.sqlite")])
    let exportKilled = try mirageOK(["export", "1", "--format", "jsonl", "--db", killed])
    #expect(exportKilled.split(separator: "\n").count == count)
    #expect(exportKilled == exportReference)
    let listKilled = try mirageOK(["runs", "list", "--db", killed])
    #expect(listKilled.split(separator: "\n").count == 3, "exactly one run: \(listKilled)")
    let showReference = try mirageOK(["runs", "show", "1", "--db", scratch.path("reference.sqlite")])
    let showKilled = try mirageOK(["runs", "show", "1", "--db", killed])
    #expect(!metricsBlock(showReference).isEmpty)
    #expect(metricsBlock(showKilled) == metricsBlock(showReference))
    #expect(showKilled.contains("complete"))
}

@Test func twoProcessesWritingOneDatabaseBothSucceed() throws {
    let scratch = try Scratch()
    defer { scratch.cleanup() }
    let count = 1500
    let questions = try scratch.write("questions.jsonl", SyntheticPope.questions(count))
    let db = scratch.path("shared.sqlite")
    let binary = try #require(BuiltProducts.mirage)
    var processes: [Process] = []
    for (i, decoder) in ["greedy", "beam5"].enumerated() {
        let answers = try scratch.write("answers\(i).jsonl", SyntheticPope.answers(count, salt: i))
        let process = Process()
        process.executableURL = binary
        process.arguments = ["import", "pope", answers, "--questions", questions, "--split", "random",
                             "--model", "m", "--decoder", decoder, "--db", db]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        processes.append(process)
    }
    for p in processes { try p.run() }
    for p in processes { p.waitUntilExit() }
    #expect(processes.map(\.terminationStatus) == [0, 0])
    for run in ["1", "2"] {
        let export = try mirageOK(["export", run, "--format", "jsonl", "--db", db])
        #expect(export.split(separator: "\n").count == count)
        #expect(try mirageOK(["runs", "show", run, "--db", db]).contains("complete"))
    }
}
