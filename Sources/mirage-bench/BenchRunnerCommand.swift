import ArgumentParser
import Foundation
import MirageCLISupport
import MirageData
import MirageEngine
import MirageModels
import MirageRunner
import MirageStore

/// `mirage-bench runner`: what `mirage run` adds around the decoder (image decoding and embedding, prompt
/// building, scoring, one store commit per item).
struct BenchRunnerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runner",
        abstract: "Time mirage run end to end on synthetic COCO-style images and split the time: decoder vs the rest.",
        discussion: """
        Writes a synthetic image set (JPEGs, instances, one POPE question file) and, unless --model is given, a \
        tiny synthetic LLaVA into a temporary folder, runs a POPE protocol over it with the given decoders \
        into a temporary database, and reports items per second, the share of wall time inside the decoders \
        (the items' prefill + decode seconds) and the remaining per-item cost (image decoding, vision tower \
        once per image, tokenizing, scoring, the commit). The runner's own work is bound by SQLite commits \
        and JPEG decoding, not by memory bandwidth or FLOPs, so no hardware ratio is printed.

        Examples:
          mirage-bench runner
          mirage-bench runner --images 40 --decoder greedy --decoder beam,num_beams=3
          mirage-bench runner --model ~/models/llava-1.5-7b-hf --images 4 --max-new-tokens 10
        """)

    @Option(help: "Synthetic images (each gets 6 POPE questions).") var images = 24
    @Option(help: "Image side in pixels.") var size = 336
    @Option(name: .long, help: ArgumentHelp("A LLaVA model folder (default: a tiny synthetic one).", valueName: "dir"))
    var model: String?
    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp("Decoder (repeatable; default greedy).", valueName: "spec"))
    var decoder: [String] = []
    @Option(help: "Max new tokens per answer.") var maxNewTokens = 8
    @Option(help: "Worker threads.") var threads = ProcessInfo.processInfo.activeProcessorCount

    func run() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mirage-bench-runner-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let files = try SyntheticImageSet(images: images, size: size, seed: 1, popeImages: images, popeSplits: [.random])
            .write(to: dir.appendingPathComponent("coco"))
        let modelFolder: URL
        if let model {
            modelFolder = URL(fileURLWithPath: (model as NSString).expandingTildeInPath)
        } else {
            modelFolder = dir.appendingPathComponent("tiny")
            try SyntheticLlavaSpec(text: SyntheticModelSpec(architecture: .llama, size: .tiny, seed: 1),
                                   vision: SyntheticVisionSpec(kind: .clip, size: .tiny, seed: 1)).write(to: modelFolder)
        }
        let protocolFile = dir.appendingPathComponent("pope.yaml")
        try Data("task: pope\nquestions: {path: \(files.popeQuestions[.random]!.path)}\nmax_new_tokens: \(maxNewTokens)\n".utf8)
            .write(to: protocolFile)
        var experiment = Experiment()
        experiment.models = [modelFolder.path]
        experiment.protocols = [protocolFile.path]
        experiment.decoders = try (decoder.isEmpty ? ["greedy"] : decoder).map { try DecoderChoice(parsing: $0) }
        experiment.images = files.imageDirectory.path
        experiment.instances = [files.instances.path]
        experiment.threads = threads
        let store = try RunStores.open(dir.appendingPathComponent("bench.sqlite").path)
        let runner = ExperimentRunner(
            experiment: experiment, store: store,
            resources: RunResources(chairScorer: { _ in throw RunnerError.configuration("not used") },
                                    protocols: ProtocolLibrary(folders: [])),
            options: RunnerOptions(mirageVersion: MirageVersion.string), progress: RunProgress(isTerminal: false, write: { _ in }))
        let (outcomes, wall) = try timed { try runner.run() }
        var items = 0, decoderSeconds = 0.0
        for o in outcomes {
            for stored in try store.items(run: o.run.id) {
                items += 1
                decoderSeconds += (stored.item.prefillSeconds ?? 0) + (stored.item.decodeSeconds ?? 0)
            }
        }
        let failed = outcomes.reduce(0) { $0 + $1.tally.failed }
        print(String(format: "%d items (%d failed) over %d images × %d decoder(s) in %.2f s wall: %.1f items/s",
                     items, failed, images, experiment.decoders.count, wall, Double(items) / wall))
        print(String(format: "decoders %.2f s (%.0f%% of wall); model load, images, prompts, scoring and commits %.2f s = %.2f ms per item",
                     decoderSeconds, decoderSeconds / wall * 100, wall - decoderSeconds, (wall - decoderSeconds) / Double(max(1, items)) * 1000))
    }
}
