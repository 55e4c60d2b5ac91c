import Benchmark
import Foundation
import MirageBenchSupport
import MirageCLISupport
import MirageData
import MirageMetrics
import MirageRunner
import MirageStore

/// The run store, as `mirage-bench store` measures it at a smaller size: 600 POPE items recorded one
/// transaction each into a fresh database (SQLite, and PostgreSQL when a server is named), reading a 3,000-item run back, recomputing its metrics, and
/// `compare`'s paired bootstrap (500 images × 1,000 resamples).
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .syscalls],
                                           warmupIterations: 1, maxDuration: .seconds(3), maxIterations: 30)
    let folder = StoreFolder()

    Benchmark("record 600 items, one commit each") { benchmark in
        let (store, run) = try folder.newRun("write")
        benchmark.startMeasurement()
        try record(store, run: run, items: 600)
        benchmark.stopMeasurement()
    } teardown: {
        folder.remove()
    }

    // What a `mirage run` worker adds per item on top of recording it: a claim transaction per batch of
    // `RunnerOptions.defaultClaimBatch` items and the experiment's progress read after each claim.
    // Compare with "record 600 items, one commit each" above: the difference / 600 is the per-item
    // claiming overhead (target ≤ 5 ms per item).
    Benchmark("claim (batches of \(RunnerOptions.defaultClaimBatch)) and record 600 items") { benchmark in
        let (store, run) = try folder.newRun("claim")
        benchmark.startMeasurement()
        try claimAndRecord(store, run: run, items: 600, batch: RunnerOptions.defaultClaimBatch)
        benchmark.stopMeasurement()
    } teardown: {
        folder.remove()
    }

    // The same two on a PostgreSQL server (one scratch database per iteration, dropped afterwards): what a worker
    // pays per item there, each statement a round trip. Needs MIRAGE_BENCHMARK_POSTGRES or MIRAGE_TEST_POSTGRES.
    if let server = StoreFolder.postgresServer {
        Benchmark("PostgreSQL: record 600 items, one commit each") { benchmark in
            let (store, run) = try folder.newRun("write", server: server)
            benchmark.startMeasurement()
            try record(store, run: run, items: 600)
            benchmark.stopMeasurement()
        } teardown: {
            folder.remove()
        }

        Benchmark("PostgreSQL: claim (batches of \(RunnerOptions.defaultClaimBatch)) and record 600 items") { benchmark in
            let (store, run) = try folder.newRun("claim", server: server)
            benchmark.startMeasurement()
            try claimAndRecord(store, run: run, items: 600, batch: RunnerOptions.defaultClaimBatch)
            benchmark.stopMeasurement()
        } teardown: {
            folder.remove()
        }
    } else {
        print("Store: the PostgreSQL benchmarks are skipped: set MIRAGE_BENCHMARK_POSTGRES (or MIRAGE_TEST_POSTGRES) to the URL "
              + "of a server database they may create scratch databases from, e.g. the one `eval \"$(Scripts/postgres-throwaway.sh start)\"` exports")
    }

    Benchmark("read back a 3,000-item run") { benchmark in
        let (store, run) = try folder.filled()
        for _ in benchmark.scaledIterations { blackHole(try store.items(run: run)) }
    } teardown: {
        folder.remove()
    }

    Benchmark("finish a 3,000-item run (metrics from item scores)") { benchmark in
        let (store, run) = try folder.filled()
        for _ in benchmark.scaledIterations { blackHole(try store.finishRun(run, metrics: RunEvaluation.metrics)) }
    } teardown: {
        folder.remove()
    }

    Benchmark("paired bootstrap, 500 images × 1,000 resamples") { benchmark in
        let (method, baseline) = BenchmarkSupport.pairedChairTotals(images: 500)
        benchmark.startMeasurement()
        blackHole(PairedBootstrap.chairDelta(method: method, baseline: baseline, samples: 1000, seed: 0))
        benchmark.stopMeasurement()
    }
}

/// POPE items with alternating labels and answers, each its own transaction (as the runner commits them).
func record(_ store: any RunRepository, run: Int64, items: Int) throws {
    try BenchmarkSupport.record(store, run: run, items: items)
}

/// `record`, with each batch of items claimed first and the progress read after each claim, as a worker does.
func claimAndRecord(_ store: any RunRepository, run: Int64, items: Int, batch: Int) throws {
    try BenchmarkSupport.claimAndRecord(store, run: run, items: items, batch: batch, worker: RunnerOptions.defaultWorker(),
                                        lease: RunnerOptions.defaultLease)
}

/// A temporary folder of databases: a fresh run per write iteration and one filled run for the reads (and, on a
/// PostgreSQL server, scratch databases, dropped by `remove`).
final class StoreFolder {
    private var folder: URL?
    private var filledRun: (any RunRepository, Int64)?
    private var scratchDatabases: [String] = []

    /// The server URL the PostgreSQL benchmarks use, or nil to skip them.
    static var postgresServer: String? {
        let environment = ProcessInfo.processInfo.environment
        return [environment["MIRAGE_BENCHMARK_POSTGRES"], environment["MIRAGE_TEST_POSTGRES"]].compactMap { $0 }.first { !$0.isEmpty }
    }

    /// A new run in a new SQLite file, or with `server`, in a new scratch database on that PostgreSQL server.
    func newRun(_ name: String, items: Int = 600, server: String? = nil) throws -> (any RunRepository, Int64) {
        if folder == nil { folder = try BenchmarkSupport.temporaryFolder("mirage-benchmark-store") }
        var path = folder!.appendingPathComponent("\(name)-\(UUID().uuidString).sqlite").path
        if let server {
            path = try PostgresDatabases.createScratch(serverURL: server, prefix: "mirage_benchmark")
            scratchDatabases.append(path)
        }
        let store = try RunStores.open(path)
        let run = try store.createRun(NewRun(
            evalProtocol: EvalProtocol(task: .pope, imageIDs: Array(1...max(1, items / 6)), questionFile: "bench",
                                       split: "random", answerParser: "opera"),
            model: ModelSpec(name: "bench"), decoder: DecoderSpec(name: "greedy"), mirageVersion: MirageVersion.string)).run
        return (store, run.id)
    }

    func filled() throws -> (any RunRepository, Int64) {
        if let filledRun { return filledRun }
        let (store, run) = try newRun("read", items: 3000)
        try record(store, run: run, items: 3000)
        filledRun = (store, run)
        return (store, run)
    }

    func remove() {
        filledRun = nil
        for database in scratchDatabases { try? PostgresDatabases.drop(database) }
        scratchDatabases = []
        if let folder { try? FileManager.default.removeItem(at: folder) }
        folder = nil
    }
}
