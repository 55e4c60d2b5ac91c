import Foundation
import MirageModels
import MirageStore
@testable import MirageRunner
import MirageTestSupport
import Testing

/// The runner's whole path (`ExperimentRunner.run()`, as `mirage run` calls it) on tiny LAVIS-layout folders written by
/// `mirage models synth --arch instructblip-lavis|minigpt4`: a greedy POPE run over two images (the protocol gives OPERA's
/// per-family templates in its `templates:` map, as the shipped opera-* protocols do); every item is decoded and stored.
@Suite struct LavisSyntheticRunnerTests {
    @Test(arguments: ["instructblip-lavis", "minigpt4"])
    func aGreedyRunStoresEveryItem(_ arch: String) throws {
        let folder = TestTemporary.url("lavis-synth-run-\(arch)")
        let model = folder.appendingPathComponent("model"), images = folder.appendingPathComponent("images")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (_, synthesizer) = try #require(ModelFamilies.synthesizer(for: arch))
        _ = try synthesizer.write(SynthesisRequest(architecture: arch, size: "tiny", seed: 2), model, { _ in })
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        let fixtures = PaperModelRunnerParityTests.paperModels.appendingPathComponent("images")
        var lines: [String] = []
        for (i, name) in ["landscape-300x200.png", "portrait-200x300.png"].enumerated() {
            let coco = "COCO_val2014_\(String(format: "%012d", i + 1)).jpg"   // the decoder reads the PNG by its content
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent(name), to: images.appendingPathComponent(coco))
            for (question, label) in [("Is there a dog in the image?", "no"), ("Is there a circle in the image?", "yes")] {
                lines.append("{\"question_id\": \(lines.count + 1), \"image\": \"\(coco)\", \"text\": \"\(question)\", \"label\": \"\(label)\"}")
            }
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: folder.appendingPathComponent("q.jsonl"))
        try Data("""
            task: pope
            questions: {path: q.jsonl}
            template: "<image>{prompt}"
            templates:
              minigpt4: "###Human: <Img><image></Img> {prompt} ###Assistant:"
              instructblip-lavis: "<image>{prompt}"
            max_new_tokens: 4
            pad_to_square: false

            """.utf8).write(to: folder.appendingPathComponent("p.yaml"))
        let (store, run) = try GreedyExperiment(model: model, folder: folder, images: images, threads: 1).run()
        #expect(run.model.architecture == "\(arch)-llama", "\(run.model.architecture)")
        let items = try store.items(run: run.id)
        #expect(items.count == 4)
        for stored in items {
            #expect(stored.item.failureReason == nil, "\(stored.item.failureReason ?? "")")
            let tokens = try #require(stored.item.outputTokens)
            #expect(!tokens.isEmpty && tokens.count <= 4)
            #expect(stored.item.prompt?.hasPrefix("Is there a ") == true, "the question is stored as the item's prompt")
        }
    }
}

/// `ExperimentRunner.run()` with one model, the protocol `folder/p.yaml`, greedy decoding, the images of `images`, a store
/// `folder/r.sqlite`, no CHAIR scorer and no memory check: the runner's path as `mirage run` takes it.
struct GreedyExperiment {
    var model: URL, folder: URL, images: URL, threads: Int

    func run() throws -> (any RunRepository, RunRecord) {
        var experiment = Experiment()
        experiment.models = [model.path]
        experiment.protocols = [folder.appendingPathComponent("p.yaml").path]
        experiment.decoders = [DecoderChoice(name: "greedy")]
        experiment.images = images.path
        experiment.threads = threads
        let store = try RunStores.open(folder.appendingPathComponent("r.sqlite").path)
        let resources = RunResources(chairScorer: { _ in throw RunnerError.configuration("CHAIR is not used here") },
                                     protocols: ProtocolLibrary(folders: []))
        var options = RunnerOptions(mirageVersion: "test")
        options.checkMemory = false
        let outcomes = try ExperimentRunner(experiment: experiment, store: store, resources: resources, options: options,
                                            progress: RunProgress(isTerminal: false, json: false, write: { _ in })).run()
        return (store, try #require(outcomes.first).run)
    }
}
