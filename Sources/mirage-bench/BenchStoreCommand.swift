import ArgumentParser
import Foundation
import MirageBenchSupport
import MirageCLISupport
import MirageData
import MirageMetrics
import MirageRunner
import MirageStore

/// `mirage-bench store`: how fast the run store records and reads items, and how long `compare`'s
/// paired bootstrap takes.
struct BenchStoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Time the run store: per-item commits, reading a run back, and the paired bootstrap.",
        discussion: """
        Works on a temporary database (deleted afterwards) with synthetic items: POPE answers for the \
        write/read timings (recorded plainly, then again as a `mirage run` worker records them: claimed in \
        batches of --claim-batch, with the progress read after each claim), CHAIR counts for the bootstrap. Item commits are bound by SQLite's per-transaction \
        work (WAL, synchronous=NORMAL: no fsync per commit), not by memory bandwidth or FLOPs, so no \
        hardware ratio is printed.

        With --server, the same timings run on a PostgreSQL server instead: a scratch database is created         there (CREATE DATABASE, from the database the URL names) and dropped afterwards. Each commit is then         a round trip to the server, and the claiming line says what a worker's claims add per item.

        Examples:
          mirage-bench store
          mirage-bench store --items 20000 --images 5000 --samples 2000
          mirage-bench store --items 2000 --server postgres://me@%2Fvar%2Frun%2Fpostgresql/postgres
        """)

    @Option(help: "Items to record, one transaction each.") var items = 5000
    @Option(help: "Images in the bootstrap (shared by both runs).") var images = 500
    @Option(help: "Bootstrap resamples.") var samples = 2000
    @Option(help: "Items per claim in the claimed-recording timing (mirage run's --claim-batch).")
    var claimBatch = RunnerOptions.defaultClaimBatch
    @Option(help: "A PostgreSQL server (postgres://... URL of a database to connect to first) to time instead of a SQLite file.")
    var server: String?

    func run() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mirage-bench-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let scratch = try server.map { try PostgresDatabases.createScratch(serverURL: $0, prefix: "mirage_bench") }
        defer { if let scratch { try? PostgresDatabases.drop(scratch) } }
        let store = try RunStores.open(scratch ?? dir.appendingPathComponent("bench.sqlite").path)
        let run = try store.createRun(NewRun(
            evalProtocol: EvalProtocol(task: .pope, imageIDs: Array(1...max(1, items / 6)), questionFile: "bench",
                                       split: "random", answerParser: "opera"),
            model: ModelSpec(name: "bench"), decoder: DecoderSpec(name: "greedy"), mirageVersion: MirageVersion.string)).run

        let (_, write) = try timed { try BenchmarkSupport.record(store, run: run.id, items: items) }
        // The same items into a second run as a `mirage run` worker stores them: claimed in batches first.
        let claimedRun = try store.createRun(NewRun(
            evalProtocol: EvalProtocol(task: .pope, imageIDs: Array(1...max(1, items / 6)), questionFile: "bench-claimed",
                                       split: "random", answerParser: "opera"),
            model: ModelSpec(name: "bench"), decoder: DecoderSpec(name: "greedy"), mirageVersion: MirageVersion.string)).run
        let (_, claimedWrite) = try timed {
            try BenchmarkSupport.claimAndRecord(store, run: claimedRun.id, items: items, batch: claimBatch,
                                                worker: RunnerOptions.defaultWorker(), lease: RunnerOptions.defaultLease)
        }
        let (read, readSeconds) = try timed { try store.items(run: run.id) }
        let (_, finish) = try timed { try store.finishRun(run.id, metrics: RunEvaluation.metrics) }

        let (method, baseline) = BenchmarkSupport.pairedChairTotals(images: images)
        let (_, bootstrap) = timed {
            PairedBootstrap.chairDelta(method: method, baseline: baseline, samples: samples, seed: 0)
        }

        print("items recorded      \(items) in \(String(format: "%.2f", write)) s: "
              + "\(String(format: "%.0f", Double(items) / write)) items/s, \(String(format: "%.3f", write / Double(items) * 1000)) ms per committed item")
        print("items claimed+recorded \(items) in batches of \(claimBatch) in \(String(format: "%.2f", claimedWrite)) s: "
              + "\(String(format: "%.3f", claimedWrite / Double(items) * 1000)) ms per item, claiming adds "
              + "\(String(format: "%.3f", (claimedWrite - write) / Double(items) * 1000)) ms per item")
        print("items read back     \(read.count) in \(String(format: "%.3f", readSeconds)) s: "
              + "\(String(format: "%.0f", Double(read.count) / readSeconds)) items/s")
        print("run metrics         \(String(format: "%.3f", finish)) s (recompute from item scores and store)")
        print("paired bootstrap    \(samples) resamples x \(images) images in \(String(format: "%.3f", bootstrap)) s: "
              + "\(String(format: "%.1f", Double(samples * images) / bootstrap / 1e6)) M image draws/s")
    }
}
