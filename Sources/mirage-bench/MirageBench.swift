import ArgumentParser
import Foundation
import MirageCLISupport
import MirageData
import MirageMetrics
import MirageText

/// `mirage-bench`: performance measurements, one subcommand per area. A separate executable from `mirage`,
/// so the researcher's tool lists only what a researcher runs.
@main
struct MirageBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mirage-bench",
        abstract: "Measure performance of one area of Mirage on this machine.",
        discussion: """
        Each subcommand times one area and prints its throughput (and, where it makes sense, the ratio to \
        the machine's physical limit). Build with `swift build -c release --product mirage-bench` before \
        measuring; debug numbers are meaningless. The package-benchmark suite in Benchmarks/ tracks the same \
        areas against saved baselines.
        """,
        version: MirageVersion.string,
        subcommands: [
            // Bench subcommands, one line each.
            BenchChairCommand.self,
            BenchGroundTruthCommand.self,
            BenchTaggerCommand.self,
            BenchTokenizeCommand.self,
            BenchDataCommand.self,
            BenchImagesCommand.self,
            BenchStoreCommand.self,
            BenchKernelsCommand.self,
            BenchEngine.self,
            BenchVision.self,
            BenchBlip2.self,
            BenchTokenizer.self,
            BenchDecoders.self,
            BenchRunnerCommand.self,
            BenchVisualsCommand.self,
            BenchOvertrust.self,
        ])
}

/// `mirage-bench chair`: CHAIR scoring throughput on the 12 OPERA logs.
struct BenchChairCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chair",
        abstract: "Time CHAIR scoring of caption logs (e.g. OPERA's 12 released logs, 6,000 captions).",
        discussion: """
        Loads the vocabulary, text pipeline and ground truth once (timed separately), then scores every \
        *.jsonl/*.json file in the folder, --repeat times, and reports captions per second. The target is \
        the 6,000 OPERA captions in under 2 s on 2 cores (release build).

        EXAMPLE:
          swift build -c release
          .build/release/mirage-bench chair --from ../shared/data/chair/opera-logs \\
              --ground-truth ../shared/data/chair/coco2014_gt_objects.json
        """)

    @Option(name: .long, help: ArgumentHelp("Folder of caption logs (JSON Lines with image_id and caption).", valueName: "dir"))
    var from: String

    @Option(name: .long, help: ArgumentHelp("Prebuilt ground-truth JSON (default: the data store's).", valueName: "file"))
    var groundTruth: String?

    @Option(name: .customLong("repeat"), help: "Times to score the whole folder; the best run is reported.")
    var repetitions = 3

    @OptionGroup var data: ChairDataOptions

    func run() throws {
        try runReportingErrors {
            let logs = try readCaptionLogs(in: URL(fileURLWithPath: from))
            let resources = data.resources(groundTruth: groundTruth)
            let (scorer, loadSeconds) = try timed { try resources.scorer(options: ChairOptions()) }
            let total = logs.reduce(0) { $0 + $1.file.captions.count }
            print("loaded vocabulary, text pipeline and ground truth (\(scorer.groundTruth.imageCount) images) in \(String(format: "%.2f", loadSeconds)) s")
            var best = Double.infinity
            var bestCPU = Double.infinity
            for round in 0..<max(1, repetitions) {
                let cpuStart = cpuSeconds()
                let (_, seconds) = try timed {
                    for (name, file) in logs {
                        let (run, s) = try timed { try scorer.score(file.captions) }
                        if round == 0 {
                            print("  \(name.padding(toLength: 28, withPad: " ", startingAt: 0)) \(String(format: "%6.3f", s)) s  \(run.metrics.referenceReport.split(separator: "\n").prefix(2).joined(separator: "  "))")
                        }
                    }
                }
                best = min(best, seconds)
                bestCPU = min(bestCPU, cpuSeconds() - cpuStart)
            }
            print("scored \(total) captions in \(String(format: "%.3f", best)) s (best of \(max(1, repetitions))): \(String(format: "%.0f", Double(total) / best)) captions/s on \(data.threads) threads; CPU time \(String(format: "%.3f", bestCPU)) s (wall time exceeds CPU time / threads when the machine is busy)")
        }
    }
}

/// `mirage-bench groundtruth`: building CHAIR's ground truth at COCO 2014 scale.
struct BenchGroundTruthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "groundtruth",
        abstract: "Time building CHAIR's ground truth from COCO-2014-sized annotation files.",
        discussion: """
        Writes a deterministic synthetic data set in the COCO 2014 layout (instances_ and \
        captions_{train,val}2014.json; 82,783 + 40,504 images, ~900k instances with polygons, 616k \
        captions, ~500 MB), then builds the ground truth in a fresh process (so its peak memory is the build's own), \
        then builds again to time the cache hit. Targets: < 60 s and < 4 GB on 2 cores (release build).

        EXAMPLE:
          .build/release/mirage-bench groundtruth --work /tmp/chair-bench --nltk-data ../shared/data/nltk
        """)

    @Option(name: .long, help: ArgumentHelp("Folder for the synthetic annotations and the cache (reused when it already holds them).", valueName: "dir"))
    var work: String

    @Option(name: .long, help: "Fraction of COCO 2014's size to generate (1 = full size).")
    var scale = 1.0

    @Option(name: .long, help: .hidden)
    var measure: String?

    @OptionGroup var data: ChairDataOptions

    func run() throws {
        try runReportingErrors {
            let work = URL(fileURLWithPath: self.work)
            let annotations = work.appendingPathComponent("annotations")
            let cache = work.appendingPathComponent("cache")
            if measure != nil {
                try buildOnce(annotations: annotations, cache: cache)
                return
            }
            try generateIfNeeded(annotations)
            try? FileManager.default.removeItem(at: cache)
            for pass in ["build (no cache)", "second build (cache)"] {
                print("\(pass):")
                fflush(stdout)
                let child = try Process.run(URL(fileURLWithPath: CommandLine.arguments[0]),
                                            arguments: childArguments())
                child.waitUntilExit()
                guard child.terminationStatus == 0 else { throw ExitCode(child.terminationStatus) }
            }
        }
    }

    func childArguments() -> [String] {
        var args = ["groundtruth", "--work", work, "--measure", "1", "--threads", "\(data.threads)"]
        if let s = data.synonyms { args += ["--synonyms", s] }
        if let n = data.nltkData { args += ["--nltk-data", n] }
        if let w = data.wordnet { args += ["--wordnet", w] }
        return args
    }

    func generateIfNeeded(_ annotations: URL) throws {
        let names = ChairGroundTruthBuilder.instanceFiles + ChairGroundTruthBuilder.captionFiles
        if names.allSatisfy({ FileManager.default.fileExists(atPath: annotations.appendingPathComponent($0).path) }) {
            print("reusing synthetic annotations in \(annotations.path)")
            return
        }
        // COCO 2014: 82,783 train and 40,504 val images.
        let (_, seconds) = try timed {
            for (split, images, seed) in [("train2014", 82_783, UInt64(1)), ("val2014", 40_504, UInt64(2))] {
                var spec = SyntheticCOCO.coco2014Scale(seed: seed)
                spec.images = max(1, Int(Double(images) * scale))
                spec.split = split
                _ = try spec.write(to: annotations)
            }
        }
        let bytes = names.reduce(Int64(0)) { total, name in
            let attrs = try? FileManager.default.attributesOfItem(atPath: annotations.appendingPathComponent(name).path)
            return total + ((attrs?[.size] as? NSNumber)?.int64Value ?? 0)
        }
        print("wrote synthetic COCO 2014 annotations (\(String(format: "%.0f", Double(bytes) / 1e6)) MB) in \(String(format: "%.1f", seconds)) s to \(annotations.path)")
    }

    func buildOnce(annotations: URL, cache: URL) throws {
        let resources = data.resources()
        let (parts, loadSeconds) = try timed { (try resources.vocabulary(), try resources.pipeline()) }
        let builder = ChairGroundTruthBuilder(vocabulary: parts.0, analyzer: parts.1, threads: data.threads)
        let cpuStart = cpuSeconds()
        let (result, seconds) = try timed {
            try builder.build(annotationsDirectory: annotations, cacheDirectory: cache,
                              pipelineVersion: ChairTextPipeline.version)
        }
        let objects = result.groundTruth.objectsByImage.values.reduce(0) { $0 + $1.count }
        print("  \(result.cacheHit ? "loaded from cache" : "built") ground truth for \(result.groundTruth.imageCount) distinct image ids (the synthetic train and val splits reuse ids; \(objects) image-object pairs) in \(String(format: "%.2f", seconds)) s (CPU \(String(format: "%.2f", cpuSeconds() - cpuStart)) s); peak RSS \(String(format: "%.2f", Double(peakResidentBytes()) / 1e9)) GB; pipeline data loaded in \(String(format: "%.2f", loadSeconds)) s; \(data.threads) threads")
    }
}
