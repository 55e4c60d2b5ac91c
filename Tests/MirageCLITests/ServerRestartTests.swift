import Foundation
import Testing
import MirageTestSupport
import MirageStore

/// `mirage run` workers on PostgreSQL across a real server restart, and across a server that stays down longer
/// than a worker waits. Each test starts a throwaway server of its own (`Scripts/postgres-throwaway.sh`), so the
/// server the other tests share is never disturbed. Every call of the script, every worker and every wait has its
/// own deadline after which it is killed: a test blocked in a synchronous call is not interrupted by `.timeLimit`.
/// The single-process reference run (`Experiment`) and the store reads go through `runProcess`, which has none.
@Suite struct ServerRestartTests {
    typealias Worker = RunWorkersTests.Worker

    static let script = SharedData.repositoryRoot.appendingPathComponent("Scripts/postgres-throwaway.sh")
    /// The PostgreSQL server binaries the script uses (Debian's postgresql-NN package, or PG_BIN).
    static let serverAvailable: Bool = {
        if let bin = ProcessInfo.processInfo.environment["PG_BIN"], !bin.isEmpty {
            return FileManager.default.isExecutableFile(atPath: bin + "/initdb")
        }
        let root = "/usr/lib/postgresql"
        return ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .contains { FileManager.default.isExecutableFile(atPath: "\(root)/\($0)/bin/initdb") }
    }()
    static let noServer: Comment = """
        skipped: needs PostgreSQL's server binaries to start a throwaway server of its own \
        (Debian: apt-get install postgresql-15, or set PG_BIN); .ci/run installs them
        """

    /// Runs `Scripts/postgres-throwaway.sh` with `arguments` in a process group of its own, its output in a file (a
    /// pipe would wait for every process that inherited it), and kills the group when it has not ended after
    /// `deadline` seconds. Returns the exit status (nil when killed) and the output.
    static func throwaway(_ arguments: [String], deadline: TimeInterval = 60) throws -> (status: Int32?, output: String) {
        let log = TestTemporary.url("throwaway-output")
        defer { try? FileManager.default.removeItem(at: log) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        let argv = (["/bin/bash", script.path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/bin/bash", &actions, &attributes, argv, environ)
        try #require(spawned == 0, "could not start postgres-throwaway.sh: \(String(cString: strerror(spawned)))")
        let end = Date().addingTimeInterval(deadline)
        var status: Int32 = 0
        while true {
            let waited = waitpid(pid, &status, WNOHANG)
            if waited == pid { break }
            if waited < 0 { status = -1; break }   // reaped by someone else: the status is unknown
            if Date() >= end {
                kill(-pid, SIGKILL)
                waitpid(pid, &status, 0)
                let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                Issue.record("postgres-throwaway.sh \(arguments.joined(separator: " ")) did not end within \(Int(deadline)) s (killed): \(output)")
                return (nil, output)
            }
            usleep(20_000)
        }
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        // WIFEXITED / WEXITSTATUS, which Swift does not import (macros).
        return (status & 0x7f == 0 ? (status >> 8) & 0xff : -1, output)
    }

    /// A throwaway server of the test's own: its URL and folder. `stop()` removes it.
    struct Server {
        let url: String
        let folder: String

        /// When `start` fails, times out or prints no URL after it printed its folder (the script prints that
        /// first), the folder is stopped before the error is rethrown: pg_ctl puts the server in a session of its
        /// own, which the group kill of `throwaway` does not reach, and no `defer { stop() }` is registered yet.
        init() throws {
            let started = try throwaway(["start"])
            func value(_ name: String) -> String? {
                started.output.split(separator: "\n").first { $0.hasPrefix("export \(name)='") }
                    .map { String($0.dropFirst("export \(name)='".count).dropLast()) }
            }
            let printedFolder = value("PGTHROWAWAY")
            do {
                try #require(started.status == 0, "postgres-throwaway.sh start failed: \(started.output)")
                url = try #require(value("MIRAGE_TEST_POSTGRES"), "no URL in: \(started.output)")
                folder = try #require(printedFolder, "no folder in: \(started.output)")
            } catch {
                if let printedFolder { _ = try? throwaway(["stop", printedFolder]) }
                throw error
            }
        }

        func use(_ action: String) throws {
            let result = try throwaway([action, folder])
            try #require(result.status == 0, "postgres-throwaway.sh \(action) failed: \(result.output)")
        }

        func stop() { _ = try? throwaway(["stop", folder]) }
    }

    /// Every (run, item) stored at `url`, read through a connection of its own.
    static func storedItems(_ url: String) throws -> Set<String> {
        let store = try RunStores.openForReading(url)
        return Set(try store.runs().flatMap { run in try store.items(run: run.id).map { "\(run.id)/\($0.item.key)" } })
    }

    /// The experiment both tests run (CHAIR and POPE, two decoders: 198 items), its single-process result in SQLite,
    /// and the arguments of a worker on `url`.
    struct Experiment {
        let setup: RunCommandTests.Setup
        let reference: (items: [[String]], metrics: [String])
        var total: Int { reference.items.map(\.count).reduce(0, +) }

        init() throws {
            setup = try RunCommandTests.Setup(ids: RunWorkersTests.imageIDs)
            try mirageOK(setup.arguments(db: "reference.sqlite") + Self.decoders)
            reference = try RunCommandTests.contents(db: setup.scratch.path("reference.sqlite"), runs: 4)
        }

        static let decoders = ["--decoder", "greedy", "--decoder", "beam,num_beams=2"]

        func arguments(db url: String) -> [String] {
            var arguments = setup.arguments(db: "unused.sqlite") + Self.decoders + ["--json-progress", "--lease", "5"]
            arguments[arguments.firstIndex(of: "--db")! + 1] = url
            return arguments
        }

        /// The store at `url` equals the single-process run, item for item, with the same metrics.
        func expectEqualsReference(_ url: String) throws {
            let result = try RunCommandTests.contents(db: url, runs: 4)
            #expect(result.items == reference.items)
            #expect(result.metrics == reference.metrics && reference.metrics.allSatisfy { !$0.isEmpty })
        }
    }

    /// `pg_ctl restart` while a worker decodes: the worker notes the lost connection in its `--json-progress`
    /// output (the CLI path of the store's reconnect notes), reconnects, finishes with status 0, nothing committed
    /// before the restart is lost, and the store equals a single-process run item for item.
    @Test(.enabled(if: RunCommandTests.available, RunCommandTests.missing), .enabled(if: serverAvailable, noServer))
    func aWorkerReconnectsAfterAServerRestartAndLosesNothing() throws {
        let experiment = try Experiment()
        defer { experiment.setup.scratch.cleanup() }
        let server = try Server()
        defer { server.stop() }

        let worker = try Worker(experiment.arguments(db: server.url))
        defer { if worker.process.isRunning { worker.signal(SIGKILL) } }
        #expect(worker.waitForItems(4, timeout: 300), "the worker ended before storing 4 items: \(worker.text)")
        try server.use("restart")
        #expect(worker.process.isRunning, "the worker finished before the restart; make the experiment longer")
        let reportedBefore = Set(worker.items)
        let storedAfterRestart = try Self.storedItems(server.url)
        #expect(storedAfterRestart.isSuperset(of: reportedBefore), "items stored before the restart are missing")

        #expect(worker.finish(within: 600), "the worker did not finish within 10 minutes (killed): \(worker.text)")
        #expect(worker.process.terminationStatus == 0, "\(worker.text)")
        let lines = worker.text.split(separator: "\n")
        let note = lines.firstIndex { $0.hasPrefix("note: lost the connection to the server on the Unix socket ") && $0.contains("reconnecting") }
        #expect(note != nil, "no reconnect note in the progress output: \(worker.text)")
        // The note is in order with the items: after those stored before the restart, before those stored after it.
        let lastItemLine = lines.lastIndex { $0.hasPrefix("{") && $0.contains("\"item\"") }
        if let note, let lastItemLine { #expect(note < lastItemLine, "the note came after every item: \(worker.text)") }
        #expect(worker.items.count > reportedBefore.count, "the worker stored nothing after the restart: \(worker.text)")
        #expect(worker.items.count == experiment.total, "every item stored once: \(worker.items.count) of \(experiment.total)")
        try experiment.expectEqualsReference(server.url)
    }

    /// The server stays down longer than `MIRAGE_DB_RECONNECT_SECONDS`: the worker exits non-zero with the error that
    /// names the fix, everything it stored is still there once the server is back, and the same command then
    /// finishes the experiment without decoding a stored item again.
    @Test(.enabled(if: RunCommandTests.available, RunCommandTests.missing), .enabled(if: serverAvailable, noServer))
    func aWorkerGivesUpWithTheFixWhenTheServerStaysDown() throws {
        let experiment = try Experiment()
        defer { experiment.setup.scratch.cleanup() }
        let server = try Server()
        defer { server.stop() }

        let arguments = experiment.arguments(db: server.url)
        let worker = try Worker(arguments, environment: ["MIRAGE_DB_RECONNECT_SECONDS": "2"])
        defer { if worker.process.isRunning { worker.signal(SIGKILL) } }
        #expect(worker.waitForItems(4, timeout: 300), "the worker ended before storing 4 items: \(worker.text)")
        try server.use("down")
        let downAt = Date()
        // A 2 s window for each transaction that finds the server gone (the item's, the lease heartbeat's, the
        // release of claims on the way out): well under a minute.
        #expect(worker.finish(within: 60), "the worker kept waiting for a server that is gone (killed): \(worker.text)")
        let waited = Date().timeIntervalSince(downAt)
        try server.use("up")
        #expect(worker.process.terminationStatus != 0, "\(worker.text)")
        #expect(worker.text.contains("cannot reach the server on the Unix socket ") && worker.text.contains("Check that the server runs")
                && worker.text.contains("run the same command again to resume"), "\(worker.text)")
        let stored = try Self.storedItems(server.url)
        #expect(stored.isSuperset(of: Set(worker.items)), "items the worker reported stored are missing")
        #expect(stored.count < experiment.total, "the worker finished before the server went down")

        let again = try Worker(arguments)
        defer { if again.process.isRunning { again.signal(SIGKILL) } }
        #expect(again.finish(within: 600), "the resumed worker did not finish within 10 minutes (killed): \(again.text)")
        #expect(again.process.terminationStatus == 0, "\(again.text)")
        #expect(Set(again.items).isDisjoint(with: stored), "items stored before were decoded again")
        try experiment.expectEqualsReference(server.url)
        print("ServerRestartTests: the worker exited \(String(format: "%.1f", waited)) s after the server went down")
    }
}
