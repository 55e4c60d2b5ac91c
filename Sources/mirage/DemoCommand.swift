import ArgumentParser
import Foundation
import MirageAnalysis
import MirageCLISupport
import MirageData
import MirageKernels
import MirageEngine
import MirageMetrics
import MirageModels
import MirageRunner
import MirageStore
import MirageText

/// `mirage demo`: a complete small experiment with nothing downloaded.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a small end-to-end experiment (3 decoders × CHAIR and POPE) on the model organism.",
        discussion: """
        By default the demo runs the model organism shipped in the repository (Models/organism, \
        docs/organism.md): a small LLaVA model trained from scratch on a generated world of COCO objects, \
        which sees, describes and hallucinates (from COCO's co-occurrence priors where its visual evidence is \
        weak). It runs greedy, beam search (3 beams) and OPERA (3 beams) on the organism's held-out set \
        (Annotations/organism: the first --count of its 150 images, default 100) for CHAIR and POPE's random, \
        popular and adversarial splits, stores the runs and prints the comparison table. The organism is found \
        in the current directory or in the checkout the binary was built in; run from the repository.

        --random-model shows the whole pipeline in seconds instead: it writes a tiny deterministic \
        random-weight LLaVA model (`mirage models synth --arch llava-llama --size tiny`, plus whole-word \
        tokens so it writes words) and a synthetic \
        COCO-style image set (JPEG images of drawn shapes, one per object, with instances/captions \
        annotations in COCO's layout and POPE questions built from them) into the cache folder, runs \
        greedy, beam search (3 beams) and OPERA (3 beams) on both tasks through `mirage run`'s runner, \
        stores the runs (`mirage runs list`) and prints the comparison table (`mirage compare`). \
        The cache is reused by later calls, and runs already in the database are not run again.

        That model's weights are random, so it strings words together without looking much at the \
        image: the numbers show that every stage works, not how well anything works. Run real models with \
        `mirage run`.

        CHAIR uses its reference vocabulary and NLTK's tokenizer, tagger and WordNet when they are installed \
        (`mirage data fetch chair-synonyms punkt pos-tagger wordnet`) or named (--synonyms/--nltk-data/\
        --wordnet). Without them it runs in demo mode and says so: COCO's 80 category names as the \
        vocabulary, an untrained sentence splitter, every word lemmatized as a noun with WordNet (Debian's \
        wordnet-base). Demo-mode numbers are not the reference metric and get their own protocol, so they \
        are never compared with real CHAIR runs. Without WordNet either, the demo runs POPE only.

        Real data: --images DIR with --annotations FILE... runs on the first --count images of DIR that \
        the annotations know; --model DIR runs a real LLaVA model instead of the synthetic one. \
        Annotations are COCO instances_*.json / captions_*.json files, or CHAIR's prebuilt ground truth \
        (coco2014_gt_objects.json); POPE questions are built from them (POPE's recipe, seeded).

        Examples:
          mirage demo
          mirage demo --count 150
          mirage demo --random-model --db /tmp/demo.sqlite --cache /tmp/mirage-demo
          mirage demo --images ~/coco/val2014 --annotations ~/coco/annotations/instances_val2014.json
          mirage demo --images ../shared/data/coco/images --annotations ../shared/data/chair/coco2014_gt_objects.json
          mirage demo --model ~/models/llava-1.5-7b-hf --images ~/coco/val2014 --annotations coco2014_gt_objects.json
        """)

    @OptionGroup var database: DatabaseOptions

    @Option(name: .long, help: ArgumentHelp("Folder for the synthetic model and data (reused when present).", valueName: "dir"))
    var cache = "Results/demo"

    @Option(name: .long, help: ArgumentHelp("Run on this folder of COCO images instead of synthetic ones (needs --annotations).", valueName: "dir"))
    var images: String?

    @Option(name: .long, parsing: .upToNextOption, help: ArgumentHelp(
        "With --images: COCO instances/captions JSON files or CHAIR's prebuilt ground truth JSON.", valueName: "file"))
    var annotations: [String] = []

    @Option(name: .long, help: ArgumentHelp("Run this vision-language model folder (any family in `mirage models families`) instead of the synthetic one.", valueName: "dir"))
    var model: String?

    @Option(name: .long, help: "Images to run on (default: 100 of the organism's held-out set, 8 otherwise).")
    var count: Int?

    @Flag(name: .long, help: "Run the synthetic random-weight tiny model on synthetic images instead of the model organism.")
    var randomModel = false

    @Flag(name: .long, help: "Also store each item's last-layer attention, for `mirage analyze overtrust` and `mirage attention` (as `mirage run --record-attention`).")
    var recordAttention = false

    @Option(name: .long, help: "Worker threads (default and maximum: the machine's CPUs).")
    var threads: Int?

    @Option(name: .long, help: ArgumentHelp("exact (default) or fast: how the model multiplies its weights (docs/engine.md, \"Precision\").", valueName: "exact|fast"))
    var precision: Precision = .exact

    @Option(name: .long, help: ArgumentHelp(
        "Megabytes of KV cache kept for shared prompt prefixes (an image's prompt up to the image's end is prefilled once and forked for each of its items; outputs are bit-identical either way); 0 turns it off (default \(Experiment.defaultPrefixCacheMB)).",
        valueName: "MB"))
    var prefixCache: Int?

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp(
        "A decoder to run instead of the three defaults (repeatable; as `mirage run --decoder`), e.g. to reproduce a golden run under changed parameters.",
        valueName: "name[:preset][,k=v...]"))
    var decoder: [String] = []

    @OptionGroup var chairText: ChairTextOptions

    @OptionGroup var pixelLimit: PixelLimitOptions

    /// The decoders this call runs: --decoder, else the three defaults.
    var decoderChoices: [String] { decoder.isEmpty ? Self.decoders : decoder }

    /// CHAIR without downloads: COCO's 80 category names as the vocabulary (each its own only synonym) and
    /// `UntrainedCaptionAnalyzer` over WordNet (--wordnet, the data store, or Debian's /usr/share/wordnet).
    static func demoModeCHAIR(_ resources: ChairResources) throws -> (ChairVocabulary, UntrainedCaptionAnalyzer) {
        let vocabulary = try ChairVocabulary(synonymsText: SyntheticCOCO.categories.map(\.name).joined(separator: "\n"))
        let lemmatizer = try WordNetLemmatizer(directory: try resources.wordnetDirectory())
        return (vocabulary, UntrainedCaptionAnalyzer(lemmatizer: lemmatizer))
    }

    /// The decoders compared: the baseline, its beam search, and OPERA on the same beam count.
    static let decoders = ["greedy", "beam,num_beams=3", "opera:opera-paper,num_beams=3"]
    static let rowTitles = ["greedy": "greedy", "beam": "beam search (3 beams)", "opera": "OPERA (3 beams)"]
    /// The data-store id the demo's POPE protocol names; resolved to the demo's own question file.
    static let questionSource = "mirage-demo"

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if randomModel && (model != nil || images != nil) {
            throw ValidationError("--random-model replaces the model organism; it does not go with --model or --images")
        }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let prefixCache, prefixCache < 0 { throw ValidationError("--prefix-cache takes megabytes ≥ 0 (0 turns the cache off), got \(prefixCache)") }
        if images != nil && annotations.isEmpty {
            throw ValidationError("--images needs --annotations FILE... (COCO instances/captions JSON or coco2014_gt_objects.json) to know the objects in the images")
        }
        if images == nil && !annotations.isEmpty { throw ValidationError("--annotations goes with --images DIR") }
    }

    func run() throws {
        setvbuf(stdout, nil, _IOLBF, 0)   // keep our lines in order with the runner's progress on stderr
        let cacheURL = URL(fileURLWithPath: (cache as NSString).expandingTildeInPath)
        try FileManager.default.createDirectory(at: cacheURL, withIntermediateDirectories: true)
        for file in annotations { try InputFile.check(file, option: "--annotations") }
        if let images { try InputFile.checkDirectory(images, option: "--images") }
        let threadCount = ThreadCount.capped(threads)
        try pixelLimit.apply()
        if let model { try checkModelConfigs([model]) }
        let organism = self.model == nil && images == nil && !randomModel ? try Organism.locate() : nil
        let count = self.count ?? (organism == nil ? 8 : Organism.defaultCount)
        let model = try model.map { URL(fileURLWithPath: ($0 as NSString).expandingTildeInPath) }
            ?? organism?.model ?? DemoCache.model(in: cacheURL)
        let data = try images.map { try DemoData.real(images: $0, annotations: annotations, count: count, cache: cacheURL) }
            ?? organism.map { try DemoData.organism($0, count: count) }
            ?? DemoData.synthetic(count: count, cache: cacheURL)

        // CHAIR with the reference text pipeline when its resources are installed (or named); otherwise, when
        // the user named none, in demo mode (COCO's category names, untrained Punkt, noun lemmas from
        // Debian's WordNet), so the demo covers both tasks with nothing downloaded. POPE always.
        let resources = chairText.resources(groundTruth: nil, threads: threadCount)
        var chair: (ChairVocabulary, any CaptionAnalyzing, ChairGroundTruth)?
        var notes: [String] = []
        let fetch = "`mirage data fetch chair-synonyms punkt pos-tagger wordnet` (or pass --synonyms FILE --nltk-data DIR --wordnet DIR)"
        do {
            let vocabulary = try resources.vocabulary()
            let pipeline = try resources.pipeline()
            chair = (vocabulary, pipeline, try data.groundTruth(vocabulary, pipeline, version: ChairTextPipeline.version,
                                                                cacheURL.appendingPathComponent("chair-gt")))
        } catch let referenceError {
            if chairText.synonyms == nil && chairText.nltkData == nil, let demo = try? Self.demoModeCHAIR(resources) {
                chair = (demo.0, demo.1, try data.groundTruth(demo.0, demo.1, version: UntrainedCaptionAnalyzer.version,
                                                              cacheURL.appendingPathComponent("chair-gt")))
                notes.append("CHAIR ran in demo mode: CHAIR's reference resources are not installed (\(referenceError)). "
                             + "Demo mode uses COCO's 80 category names without synonyms, an untrained sentence splitter and "
                             + "noun lemmas, so its CHAIR numbers are not the reference metric (its runs get their own protocol "
                             + "and are never compared with real CHAIR runs). For reference CHAIR: \(fetch), then run `mirage demo` again.")
            } else {
                notes.append("CHAIR was skipped: \(referenceError)\nTo include CHAIR: \(fetch), then run `mirage demo` again.")
            }
        }
        var protocols = try data.popeSplits.map { try data.writeProtocol(task: .pope, split: $0, in: cacheURL) }
        if chair != nil { protocols.insert(try data.writeProtocol(task: .chair, in: cacheURL), at: 0) }

        var experiment = Experiment()
        experiment.models = [model.path]
        experiment.protocols = protocols.map(\.path)
        experiment.decoders = try decoderChoices.map { try DecoderChoice(parsing: $0) }
        experiment.recordAttention = recordAttention
        experiment.images = data.imageFolder.path
        experiment.instances = data.instanceFiles.map(\.path)
        experiment.threads = threadCount
        experiment.precision = precision
        experiment.prefixCacheMB = prefixCache
        let runResources = RunResources(
            chairScorer: { options in
                guard let (vocabulary, analyzer, truth) = chair else { throw RunnerError.configuration("CHAIR is not available") }
                return ChairScorer(vocabulary: vocabulary, groundTruth: truth, analyzer: analyzer, options: options,
                                   threads: threadCount)
            },
            questionFile: { source in
                if case .dataSource(Self.questionSource, let split) = source, let url = data.popeQuestions[split] { return url }
                return try RunResources.dataStoreQuestions()(source)
            },
            protocols: ProtocolLibrary(folders: []))
        let store = try database.open(create: true)
        let kind = self.model != nil ? "" : organism != nil ? " (the trained model organism, docs/organism.md)" : " (random weights)"
        print("Demo: \(data.summary); model \(model.lastPathComponent)\(kind); decoders \(decoderChoices.joined(separator: ", ")).")
        print("Running into \(store.location) ...")
        let runner = ExperimentRunner(experiment: experiment, store: store, resources: runResources,
                                      options: RunnerOptions(mirageVersion: MirageVersion.string, gitRevision: Provenance.gitRevision,
                                                             sourcePath: "mirage demo"),
                                      progress: RunProgress(json: false))
        if recordAttention { runner.itemObservers.append(AttentionRecorder(store: store)) }
        let outcomes = try runner.run()
        var comparison = try ComparisonBuilder(store: store).compare(runs: outcomes.map(\.run))
        for i in comparison.rows.indices {
            let name = String(comparison.rows[i].decoder.prefix { $0 != "(" })
            comparison.rows[i].title = Self.rowTitles[name] ?? comparison.rows[i].title
        }
        print("")
        print("Model \(model.lastPathComponent), seed 0; full decoder parameters: `mirage runs show ID`.")
        print(comparison.render(.table), terminator: "")
        print("")
        print("Runs \(outcomes.map { String($0.run.id) }.joined(separator: ", ")) in \(store.location); "
              + "`mirage runs list --db \(store.location)` lists them, `mirage export ID` writes a run's items.")
        for note in notes { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
        if chair == nil { print("POPE only: CHAIR resources are missing (see the note on standard error).") }
        else if !notes.isEmpty { print("CHAIR in demo mode, not the reference metric (see the note on standard error).") }
    }
}

/// What the demo keeps in its cache folder; each part is written to a scratch folder first and renamed
/// into place, so an interrupted demo never leaves a half-written part that a later call would reuse.
enum DemoCache {
    /// The synthetic LLaVA model: llama text model and CLIP tower at the tiny size (32×32 images), f32, with
    /// whole-word tokens for caption words, COCO objects and yes/no whose LM-head rows are scaled up, so its
    /// random weights write (random) words: captions mention objects and POPE answers read as yes or no.
    static let modelRequest: SynthesisRequest = {
        var request = SynthesisRequest(architecture: "llava-llama", size: "tiny", vision: "clip", seed: 0, dtype: .f32)
        request.words = ["a", "the", "on", "in", "with", "and", "of", "is", "are", "there", "next", "to", "near", "yes",
                      "no", "two", "some", "image", "shows", "sitting", "small", "large", "red", "blue",
                      "person", "bicycle", "car", "bus", "train", "truck", "boat", "bird", "cat", "dog", "horse",
                      "sheep", "cow", "bear", "zebra", "giraffe", "kite", "bottle", "cup", "fork", "knife", "spoon",
                      "bowl", "banana", "apple", "pizza", "donut", "cake", "chair", "couch", "bed", "toilet",
                      "laptop", "mouse", "remote", "oven", "sink", "book", "clock", "vase", "tie", "umbrella"]
        request.wordLogitScale = 4
        return request
    }()
    static let modelFolderName = "llava-llama-clip-tiny-words-seed0"

    static func model(in cache: URL) throws -> URL {
        try ensure(cache.appendingPathComponent(modelFolderName), marker: "config.json") { folder in
            guard let (_, synthesizer) = ModelFamilies.synthesizer(for: modelRequest.architecture) else {
                throw ValidationError("no model family synthesizes \(modelRequest.architecture); `mirage models families` lists them")
            }
            _ = try synthesizer.write(modelRequest, folder, { _ in })
        }
    }

    /// `folder` after `make` filled it, unless `folder/marker` already exists.
    static func ensure(_ folder: URL, marker: String, make: (URL) throws -> Void) throws -> URL {
        let fm = FileManager.default
        if fm.fileExists(atPath: folder.appendingPathComponent(marker).path) { return folder }
        let scratch = folder.deletingLastPathComponent().appendingPathComponent(".partial-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: scratch) }
        try fm.createDirectory(at: scratch, withIntermediateDirectories: true)
        try make(scratch)
        try? fm.removeItem(at: folder)
        try fm.moveItem(at: scratch, to: folder)
        return folder
    }
}

/// The images, annotations and POPE questions a demo runs on.
struct DemoData {
    var name: String
    var summary: String
    var imageFolder: URL
    var imageIDs: [Int]
    var instanceFiles: [URL]
    var captionFiles: [URL]
    /// CHAIR's prebuilt ground truth, when the user gave one.
    var prebuiltGroundTruth: URL?
    /// POPE question files by split (the demo runs each split it has).
    var popeQuestions: [POPESplit: URL]
    /// CHAIR's max_new_tokens: short captions for the random model, room for the organism's several sentences.
    var captionTokens = 24

    /// The splits with question files, in POPE's order.
    var popeSplits: [POPESplit] { POPESplit.allCases.filter { popeQuestions[$0] != nil } }

    /// The synthetic COCO-style set (seed 0, 336×336 images).
    static func synthetic(count: Int, cache: URL) throws -> DemoData {
        let set = SyntheticImageSet(images: count, size: 336, seed: 0, popeSplits: [.random])
        let root = try DemoCache.ensure(cache.appendingPathComponent("synthetic-coco-\(count)-seed0"),
                                        marker: "pope/coco_pope_random.json") { try set.write(to: $0) }
        let files = set.files(at: root)
        let ids = try COCOReader.instances(at: files.instances).images.map(\.id)
        return DemoData(name: "demo-synthetic", summary: "\(ids.count) synthetic images in \(root.path)",
                        imageFolder: files.imageDirectory, imageIDs: ids, instanceFiles: [files.instances],
                        captionFiles: [files.captions], prebuiltGroundTruth: nil, popeQuestions: [.random: files.popeQuestions[.random]!])
    }

    /// A folder of COCO images with the user's annotations: the first `count` images (sorted ids) of the
    /// folder that the annotations know; POPE questions are built from their objects.
    static func real(images: String, annotations: [String], count: Int, cache: URL) throws -> DemoData {
        let folder = URL(fileURLWithPath: (images as NSString).expandingTildeInPath)
        var instances: [URL] = [], captions: [URL] = [], prebuilt: URL?
        for path in annotations {
            let url = URL(fileURLWithPath: (path as NSString).expandingTildeInPath)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw DemoError.missingAnnotations(url.path)
            }
            let name = url.lastPathComponent
            if name.hasPrefix("instances") { instances.append(url) }
            else if name.hasPrefix("captions") { captions.append(url) }
            else if prebuilt == nil { prebuilt = url }
            else { throw DemoError.twoGroundTruths(prebuilt!.lastPathComponent, name) }
        }
        // Objects per image: COCO category names from instances, else the ground truth's node words.
        var objects: [Int: [String]] = [:]
        for url in instances {
            for (id, names) in try COCOReader.instances(at: url).objectsByImage() { objects[id, default: []] += names }
        }
        if objects.isEmpty, let prebuilt {
            for (id, words) in try ChairGroundTruth(prebuiltJSON: prebuilt).objectsByImage { objects[id] = words.sorted() }
        }
        guard !objects.isEmpty else {
            throw DemoError.noObjects
        }
        var fileOf: [Int: String] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [] where name.lowercased().hasSuffix(".jpg") {
            if let id = POPEQuestion(questionID: 0, image: name, text: "", label: .yes).cocoImageID { fileOf[id] = name }
        }
        guard !fileOf.isEmpty else {
            throw DemoError.noImages(folder.path)
        }
        let known = fileOf.keys.filter { objects[$0] != nil }.sorted()
        guard !known.isEmpty else {
            throw DemoError.noAnnotatedImages(count: fileOf.count, folder: folder.path)
        }
        let ids = Array(known.prefix(count))
        let pool = ids.map { POPEImageObjects(image: fileOf[$0]!, objects: objects[$0]!) }
        let eligible = pool.filter { $0.objects.count >= 3 }.count
        guard eligible > 0 else { throw DemoError.noPOPEImages(ids.count) }
        let builder = POPEBuilder(images: eligible, positivesPerImage: 3, seed: 0)
        let questions = try builder.questions(pool: try builder.samplePool(pool), split: .random)
        let folderForRun = cache.appendingPathComponent("real-data")
        try FileManager.default.createDirectory(at: folderForRun, withIntermediateDirectories: true)
        let pope = folderForRun.appendingPathComponent("coco_pope_random.json")
        try POPEQuestionReader.jsonLines(questions).write(to: pope)
        return DemoData(name: "demo-real", summary: "\(ids.count) images of \(folder.path)", imageFolder: folder,
                        imageIDs: ids, instanceFiles: instances, captionFiles: captions, prebuiltGroundTruth: prebuilt,
                        popeQuestions: [.random: pope])
    }

    /// CHAIR's ground truth: the prebuilt file, else built from the instances (and captions) and cached.
    /// `version` names the analyzer, so ground truths built by different analyzers are cached apart.
    func groundTruth(_ vocabulary: ChairVocabulary, _ analyzer: any CaptionAnalyzing, version: String, _ cache: URL) throws
        -> ChairGroundTruth {
        if let prebuiltGroundTruth { return try ChairGroundTruth(prebuiltJSON: prebuiltGroundTruth) }
        return try ChairGroundTruthBuilder(vocabulary: vocabulary, analyzer: analyzer)
            .build(instanceFiles: instanceFiles, captionFiles: captionFiles, cacheDirectory: cache,
                   pipelineVersion: version).groundTruth
    }

    /// The organism's held-out set (Annotations/organism): its first `count` images (ids 1...150), CHAIR's
    /// ground truth from its instances file, and POPE's three splits built from it by `mirage pope build`.
    static func organism(_ files: Organism.Files, count: Int) throws -> DemoData {
        let ids = try COCOReader.instances(at: files.instances).images.map(\.id).sorted()
        let chosen = Array(ids.prefix(count))
        return DemoData(name: "demo-organism", summary: "\(chosen.count) held-out organism images in \(files.images.path)",
                        imageFolder: files.images, imageIDs: chosen, instanceFiles: [files.instances], captionFiles: [],
                        prebuiltGroundTruth: nil, popeQuestions: files.pope, captionTokens: Organism.captionTokens)
    }

    /// Writes the protocol file of a task (`<cache>/protocols/<name>-<task>.yaml`, `-<split>` added when the
    /// data has several POPE splits) and returns its path.
    func writeProtocol(task: EvalProtocol.Task, split: POPESplit = .random, in cache: URL) throws -> URL {
        let folder = cache.appendingPathComponent("protocols")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let suffix = task == .pope && popeSplits.count > 1 ? "-\(split.rawValue)" : ""
        let url = folder.appendingPathComponent("\(name)-\(task.rawValue)\(suffix).yaml")
        // The organism's question files cover its whole held-out set; --count picks the images asked about.
        let popeImages = name == "demo-organism" ? "\nimages: {ids: [\(imageIDs.map(String.init).joined(separator: ", "))]}" : ""
        let text: String
        switch task {
        case .chair:
            text = """
                description: Mirage demo, CHAIR on \(imageIDs.count) images\(captionTokens == 24 ? " (short captions)" : "")
                task: chair
                images: {ids: [\(imageIDs.map(String.init).joined(separator: ", "))]}
                prompt: Please describe this image in detail.
                template: llava15
                max_new_tokens: \(captionTokens)

                """
        case .pope:
            text = """
                description: Mirage demo, POPE \(split.rawValue) split built from the demo annotations
                task: pope
                questions: {source: \(Demo.questionSource), split: \(split.rawValue)}\(popeImages)
                prompt: "{question} Answer the question using a single word or phrase."
                template: llava15
                max_new_tokens: 6
                answer_parser: opera

                """
        }
        try Data(text.utf8).write(to: url)
        return url
    }
}

/// Why the demo cannot run on the data it was given, and what to give instead.
enum DemoError: Error, CustomStringConvertible {
    case missingAnnotations(String)
    case twoGroundTruths(String, String)
    case noObjects
    case noImages(String)
    case noAnnotatedImages(count: Int, folder: String)
    case noPOPEImages(Int)

    var description: String {
        switch self {
        case .missingAnnotations(let path):
            return "annotation file \(path) does not exist; --annotations takes COCO instances_*.json / captions_*.json files or coco2014_gt_objects.json"
        case let .twoGroundTruths(a, b):
            return "give at most one prebuilt CHAIR ground truth (got \(a) and \(b)); COCO annotation files must be named instances_*.json / captions_*.json"
        case .noObjects:
            return "the annotations name no objects; give instances_*.json or CHAIR's coco2014_gt_objects.json"
        case .noImages(let folder):
            return "\(folder) holds no COCO images (names like COCO_val2014_000000000042.jpg or 000000000042.jpg); point --images at the image folder"
        case let .noAnnotatedImages(count, folder):
            return "none of the \(count) images in \(folder) is in the annotations; give the annotations of their split"
        case .noPOPEImages(let n):
            return "none of the \(n) chosen images has the 3 objects a POPE question set needs; raise --count"
        }
    }
}
