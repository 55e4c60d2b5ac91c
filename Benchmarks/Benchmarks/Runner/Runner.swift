import Benchmark
import Foundation
import MirageBenchSupport
import MirageCLISupport
import MirageData
import MirageEngine
import MirageModels
import MirageRunner
import MirageStore

/// `mirage run` end to end, as `mirage-bench runner` measures it: a POPE protocol (6 questions per image) over
/// 6 synthetic 336-px JPEGs with a tiny synthetic LLaVA and greedy decoding, into a fresh store each
/// iteration. Measures what the runner adds around the decoder: image decoding, the vision tower once per
/// image, prompts, scoring and one commit per item.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .syscalls],
                                           warmupIterations: 1, maxDuration: .seconds(4), maxIterations: 20)
    let fixture = RunnerFixture()
    Benchmark("POPE, 6 images × 6 questions, tiny LLaVA, greedy") { benchmark in
        let dir = try fixture.get()
        let databases = try BenchmarkSupport.temporaryFolder("mirage-benchmark-runner-store")
        defer { try? FileManager.default.removeItem(at: databases) }
        let store = try RunStores.open(databases.appendingPathComponent("runs.sqlite").path)
        let runner = ExperimentRunner(
            experiment: try fixture.experiment(dir), store: store,
            resources: RunResources(chairScorer: { _ in throw RunnerError.configuration("not used") },
                                    protocols: ProtocolLibrary(folders: [])),
            options: RunnerOptions(mirageVersion: MirageVersion.string),
            progress: RunProgress(isTerminal: false, write: { _ in }))
        benchmark.startMeasurement()
        let outcomes = try runner.run()
        benchmark.stopMeasurement()
        blackHole(outcomes)
    } teardown: {
        fixture.remove()
    }
}

/// The image set, question file and model, written to a temporary folder on first use and removed at the end.
final class RunnerFixture {
    private var folder: URL?
    private var files: SyntheticImageSet.Files?

    func get() throws -> URL {
        if let folder { return folder }
        let dir = try BenchmarkSupport.temporaryFolder("mirage-benchmark-runner")
        files = try SyntheticImageSet(images: 6, size: 336, seed: 1, popeImages: 6, popeSplits: [.random])
            .write(to: dir.appendingPathComponent("coco"))
        try SyntheticLlavaSpec(text: SyntheticModelSpec(architecture: .llama, size: .tiny, seed: 1),
                               vision: SyntheticVisionSpec(kind: .clip, size: .tiny, seed: 1))
            .write(to: dir.appendingPathComponent("tiny"))
        try Data("task: pope\nquestions: {path: \(files!.popeQuestions[.random]!.path)}\nmax_new_tokens: 8\n".utf8)
            .write(to: dir.appendingPathComponent("pope.yaml"))
        folder = dir
        return dir
    }

    func experiment(_ dir: URL) throws -> Experiment {
        var experiment = Experiment()
        experiment.models = [dir.appendingPathComponent("tiny").path]
        experiment.protocols = [dir.appendingPathComponent("pope.yaml").path]
        experiment.decoders = [try DecoderChoice(parsing: "greedy")]
        experiment.images = files!.imageDirectory.path
        experiment.instances = [files!.instances.path]
        experiment.threads = BenchmarkSupport.threads
        return experiment
    }

    func remove() {
        if let folder { try? FileManager.default.removeItem(at: folder) }
        folder = nil
    }
}
