import Benchmark
import Foundation
import MirageBenchSupport
import MirageCLISupport
import MirageData
import MirageMetrics

/// CHAIR, as `mirage-bench chair` measures it: scoring the 12 released OPERA caption logs (6,000 captions)
/// with a scorer loaded once, and loading the vocabulary, text pipeline and ground truth.
///
/// Needs the CHAIR data: the caption logs in `$MIRAGE_CHAIR_LOGS` or `../shared/data/chair/opera-logs`, and
/// the synonyms, NLTK data and ground truth from `../shared/data` or else the data store (`mirage data
/// fetch ...`), WordNet from the data store or /usr/share/wordnet. Without them no benchmark is registered
/// and a line says what is missing.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .cpuTotal, .peakMemoryResident],
                                           warmupIterations: 1, maxDuration: .seconds(4), maxIterations: 20)
    let data: ChairData
    do {
        data = try ChairData.locate()
    } catch {
        FileHandle.standardError.write(Data("skipping the CHAIR benchmarks: \(error)\n".utf8))
        return
    }
    let scorer = LazyScorer(data.resources)

    Benchmark("score 12 OPERA logs (\(data.captionCount) captions)") { benchmark in
        let loaded = try scorer.get()
        benchmark.startMeasurement()
        for file in data.files { blackHole(try loaded.score(file.captions)) }
        benchmark.stopMeasurement()
    }

    Benchmark("load vocabulary, text pipeline and ground truth") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try data.resources.scorer(options: ChairOptions())) }
    }
}

/// The caption logs and where the rest of CHAIR's data comes from.
struct ChairData {
    var files: [ChairCaptionFile]
    var resources: ChairResources
    var captionCount: Int { files.reduce(0) { $0 + $1.captions.count } }

    struct Missing: Error, CustomStringConvertible {
        var description: String
    }

    static func locate() throws -> ChairData {
        let shared = BenchmarkSupport.sharedData
        let environment = ProcessInfo.processInfo.environment
        let logs = environment["MIRAGE_CHAIR_LOGS"].map { URL(fileURLWithPath: $0) }
            ?? shared?.appendingPathComponent("chair/opera-logs")
        guard let logs, FileManager.default.fileExists(atPath: logs.path) else {
            let looked = logs.map { " at \($0.path)" } ?? ""
            throw Missing(description: "no caption logs\(looked) (set MIRAGE_CHAIR_LOGS to a folder of OPERA's *.jsonl "
                + "logs, or put the reference data at ../shared/data next to the repository)")
        }
        let files = try readCaptionLogs(in: logs).map(\.file)
        func sharedFile(_ relative: String) -> String? {
            guard let url = shared?.appendingPathComponent(relative),
                  FileManager.default.fileExists(atPath: url.path) else { return nil }
            return url.path
        }
        let resources = ChairResources(synonyms: sharedFile("chair/synonyms.txt"), nltkData: sharedFile("nltk"),
                                       groundTruth: sharedFile("chair/coco2014_gt_objects.json"),
                                       threads: BenchmarkSupport.threads)
        // Fail here, not inside a measurement, when the vocabulary, pipeline data or ground truth are missing.
        _ = try resources.vocabulary()
        _ = try resources.wordnetDirectory()
        return ChairData(files: files, resources: resources)
    }
}

/// The scorer, loaded when the scoring benchmark first runs.
final class LazyScorer {
    private let resources: ChairResources
    private var scorer: ChairScorer?

    init(_ resources: ChairResources) { self.resources = resources }

    func get() throws -> ChairScorer {
        if let scorer { return scorer }
        let loaded = try resources.scorer(options: ChairOptions())
        scorer = loaded
        return loaded
    }
}
