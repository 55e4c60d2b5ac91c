import Foundation
import Testing
import MirageTestSupport
import MirageStore
import MirageData

/// Several `mirage run` processes on one experiment in one store (a SQLite file, and a PostgreSQL database when
/// MIRAGE_TEST_POSTGRES names a server): items are claimed, never decoded twice, and a killed worker's items are
/// taken over after its lease.
@Suite struct RunWorkersTests {
    /// A `mirage run` process whose standard error (--json-progress: one object per stored item) is collected
    /// while it runs.
    final class Worker: @unchecked Sendable {
        let process = Process()
        private let lock = NSLock()
        private var buffer = Data()
        private let done = DispatchSemaphore(value: 0)

        init(_ arguments: [String], environment: [String: String] = [:]) throws {
            process.executableURL = try #require(BuiltProducts.mirage)
            process.arguments = arguments
            if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
            process.standardOutput = FileHandle.nullDevice
            let pipe = Pipe()
            process.standardError = pipe
            try process.run()
            DispatchQueue.global().async { [self] in
                while true {
                    let chunk = pipe.fileHandleForReading.availableData
                    if chunk.isEmpty { break }
                    lock.lock(); buffer.append(chunk); lock.unlock()
                }
                done.signal()
            }
        }

        /// The (run, item) of every item this worker reported stored so far.
        var items: [String] {
            lock.lock(); defer { lock.unlock() }
            return buffer.split(separator: UInt8(ascii: "\n")).compactMap { line in
                guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                      let run = object["run"] as? Int, let item = object["item"] as? String else { return nil }
                return "\(run)/\(item)"
            }
        }

        var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: buffer, as: UTF8.self) }

        /// Waits until the worker has reported `count` items (or ended); false when it ended first.
        func waitForItems(_ count: Int, timeout: TimeInterval = 600) -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            while items.count < count && process.isRunning && Date() < deadline { usleep(20_000) }
            return items.count >= count && process.isRunning
        }

        func finish() { process.waitUntilExit(); done.wait() }

        /// Waits at most `timeout` for the worker to end, killing it after that; false when it had to be killed.
        func finish(within timeout: TimeInterval) -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            let ended = !process.isRunning
            if !ended { kill(process.processIdentifier, SIGKILL) }
            finish()
            return ended
        }

        func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }
    }

    /// The COCO images of ../shared/data that have CHAIR ground truth.
    static let imageIDs = RunCommandTests.imageIDs + [428, 459, 474, 488, 536, 544, 564, 569, 589, 623, 785, 8021, 40083,
                                                      60623, 142238, 165547, 196141, 197388, 354533, 386164, 439180, 562207, 579664]

    /// A new database on the PostgreSQL test server, dropped when the test case ends.
    static func scratchDatabase() throws -> String {
        let url = try PostgresDatabases.createScratch(serverURL: try #require(PostgresTestServer.url), prefix: "mirage_test")
        try ScratchDatabases.register(url) { try PostgresDatabases.drop($0) }
        return url
    }

    /// The stores the workers share: a SQLite file, and a fresh PostgreSQL database when a server is configured.
    static let backends = PostgresTestServer.url == nil ? ["sqlite"] : ["sqlite", "postgres"]

    @Test(.enabled(if: RunCommandTests.available, RunCommandTests.missing), .dropsScratchDatabases, arguments: backends)
    func threeWorkersOneKilledOneLateEqualASingleProcessRun(backend: String) throws {
        // Every shared COCO image with CHAIR ground truth: 297 items, enough work left for a worker that starts
        // (loading CHAIR's resources, several seconds) after the others are decoding.
        let setup = try RunCommandTests.Setup(ids: Self.imageIDs)
        defer { setup.scratch.cleanup() }
        let decoders = ["--decoder", "greedy", "--decoder", "beam,num_beams=2", "--decoder", "opera,num_beams=3,num_attn_candidates=3"]
        try mirageOK(setup.arguments(db: "reference.sqlite") + decoders)
        let reference = try RunCommandTests.contents(db: setup.scratch.path("reference.sqlite"), runs: 6)
        let total = reference.items.map(\.count).reduce(0, +)
        #expect(reference.items.map(\.count) == [33, 33, 33, 66, 66, 66])   // CHAIR, then POPE, by decoder

        let shared = backend == "sqlite" ? setup.scratch.path("shared.sqlite") : try Self.scratchDatabase()
        var arguments = setup.arguments(db: "shared.sqlite") + decoders + ["--json-progress", "--lease", "3", "--claim-batch", "2"]
        arguments[arguments.firstIndex(of: "--db")! + 1] = shared
        let a = try Worker(arguments)
        let b = try Worker(arguments)
        // c joins once b is decoding (it needs as long as b did to start).
        #expect(b.waitForItems(1), "worker b ended before storing an item: \(b.text)")
        let c = try Worker(arguments)
        // a is killed mid-run: items it claimed but had not stored go back to the pool after its 3 s lease.
        #expect(a.waitForItems(6), "worker a finished before the kill; make the experiment longer")
        kill(a.process.processIdentifier, SIGKILL)
        a.finish()
        #expect(a.process.terminationReason == .uncaughtSignal)
        if backend == "postgres" {
            // The server drops every worker's connection (as a restart does): they reconnect and carry on.
            #expect(c.waitForItems(1), "worker c ended before storing an item: \(c.text)")
            #expect(try PostgresDatabases.terminateOtherConnections(shared) >= 2)
        }
        b.finish()
        c.finish()
        #expect(b.process.terminationStatus == 0, "\(b.text)")
        #expect(c.process.terminationStatus == 0, "\(c.text)")

        // Every item stored exactly once over the three workers: nothing decoded twice except what a had in
        // flight (decoded again by b or c, reported only by them).
        let reported = a.items + b.items + c.items
        let twice = Dictionary(grouping: reported, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
        let notes = (a.text + b.text + c.text).split(separator: "\n").filter { $0.contains("note:") || $0.contains("warning:") }
        let who = "a: \(a.items.filter(twice.contains)), b: \(b.items.filter(twice.contains)), c: \(c.items.filter(twice.contains))"
        #expect(reported.count == total, "a \(a.items.count), b \(b.items.count), c \(c.items.count) of \(total)")
        #expect(twice.isEmpty, "stored by two workers: \(twice); \(who); notes: \(notes)")
        #expect(!a.items.isEmpty && !b.items.isEmpty)
        #expect(!c.items.isEmpty, "the late worker found nothing left to do; make the experiment longer")

        // The result is the single-process run's, item for item, with the same metrics.
        let result = try RunCommandTests.contents(db: shared, runs: 6)
        #expect(result.items == reference.items)
        #expect(result.metrics == reference.metrics && reference.metrics.allSatisfy { !$0.isEmpty })
        let list = try mirageOK(["runs", "list", "--db", shared])
        #expect(list.split(separator: "\n").count == 8 && !list.contains("running"), "six complete runs: \(list)")
    }
}

/// The release `mirage --version` prints is the one the store records beside the migrations it applies (and names
/// when a newer Mirage's database is refused).
@Test func theVersionTheCLIPrintsIsTheOneTheStoreRecords() throws {
    #expect(try mirageOK(["--version"]).trimmingCharacters(in: .whitespacesAndNewlines) == MirageRelease.version)
}
