import Benchmark
import Foundation
import MirageBenchSupport
import MirageCLISupport
import MirageData
import MirageMetrics
import MirageStore

/// The run store, as `mirage-bench store` measures it at a smaller size: 600 POPE items recorded one
/// transaction each into a fresh database, reading a 3,000-item run back, recomputing its metrics, and
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

    Benchmark("read back a 3,000-item run") { benchmark in
        let (store, run) = try folder.filled()
        for _ in benchmark.scaledIterations { blackHole(try store.items(run: run)) }
    } teardown: {
        folder.remove()
    }

    Benchmark("finish a 3,000-item run (metrics from item scores)") { benchmark in
        let (store, run) = try folder.filled()
        for _ in benchmark.scaledIterations { blackHole(try store.finishRun(run)) }
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
func record(_ store: RunStore, run: Int64, items: Int) throws {
    for i in 0..<items {
        _ = try store.recordItem(run: run, NewItem(key: String(i), ordinal: i, imageID: i / 6 + 1, questionID: i + 1,
                                               prompt: "Is there a dog in the image?", outputText: i % 3 == 0 ? "No." : "Yes."),
                             score: .pope(PopeItemScore(label: i % 2 == 0 ? .yes : .no, parsed: i % 3 == 0 ? .no : .yes)))
    }
}

/// A temporary folder of databases: a fresh run per write iteration and one filled run for the reads.
final class StoreFolder {
    private var folder: URL?
    private var filledRun: (RunStore, Int64)?

    func newRun(_ name: String, items: Int = 600) throws -> (RunStore, Int64) {
        if folder == nil { folder = try BenchmarkSupport.temporaryFolder("mirage-benchmark-store") }
        let path = folder!.appendingPathComponent("\(name)-\(UUID().uuidString).sqlite").path
        let store = try RunStore(path: path)
        let run = try store.createRun(NewRun(
            evalProtocol: EvalProtocol(task: .pope, imageIDs: Array(1...max(1, items / 6)), questionFile: "bench",
                                       split: "random", answerParser: "opera"),
            model: ModelSpec(name: "bench"), decoder: DecoderSpec(name: "greedy"), mirageVersion: MirageVersion.string)).run
        return (store, run.id)
    }

    func filled() throws -> (RunStore, Int64) {
        if let filledRun { return filledRun }
        let (store, run) = try newRun("read", items: 3000)
        try record(store, run: run, items: 3000)
        filledRun = (store, run)
        return (store, run)
    }

    func remove() {
        filledRun = nil
        if let folder { try? FileManager.default.removeItem(at: folder) }
        folder = nil
    }
}
