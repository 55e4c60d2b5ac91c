import ArgumentParser
import Foundation
import MirageAnalysis
import MirageCLISupport
import MirageData
import MirageKernels
import MirageMetrics
import MirageRunner
import MirageStore

/// `mirage run`: models × protocols × decoders × seeds over COCO images, into the run store.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run models and decoders on evaluation protocols (CHAIR, POPE) and store every item.",
        discussion: """
        Give an experiment file, flags, or both (flags replace the file's value of the same setting). Every \
        (model, protocol, decoder, seed) is one run in the store (`mirage runs`). Each item is committed with its \
        score on its own, so an interrupted run resumes where it stopped when you run the same command again; \
        --shard i/n runs a deterministic part of the images (merge the shard databases afterwards).

        Several workers can share one experiment: start the same command in more processes on the same \
        database. Each claims a few items at a time (--claim-batch) under a lease it renews while decoding \
        (--lease), so no item is decoded twice; a killed worker's items go to the others once its lease runs \
        out, and a worker started later joins in. Progress counts the items every worker stored.

        Protocols are YAML files: NAME looks in $MIRAGE_PROTOCOLS, ./Annotations/protocols and the protocols \
        shipped with Mirage (--list-protocols shows them); a path reads that file. Shipped: opera-chair-512, \
        opera-chair-64, opera-pope-{random,popular,adversarial}, llava-pope-{random,popular,adversarial}.

        Images: --images DIR is a folder of COCO images (COCO_val2014_%012d.jpg, COCO_train2014_%012d.jpg, \
        %012d.jpg, or the instances file's file_name). An image that is missing or unreadable, or a decoder \
        error, is stored as a failed item with its reason; the run goes on and the summary groups the reasons. \
        Rerunning skips failed items like stored ones; --retry-failed decodes them again.

        Before a model is loaded its memory need is estimated (weights, KV cache for the longest sequence × \
        beams, activations) against MemAvailable; --ignore-memory-check runs anyway.

        Progress goes to standard error: on a terminal a live line per unfinished run (items, items/min, ETA, \
        running CHAIR_S/CHAIR_I or POPE accuracy), else one line per finished run; --json-progress writes one \
        JSON object per item instead. See docs/runner.md for the file formats.

        Examples:
          mirage run experiment.yaml
          mirage run --model ~/models/llava-1.5-7b-hf --protocol opera-chair-512 \\
              --decoder greedy --decoder beam,num_beams=5 --decoder opera:opera-paper \\
              --images ~/coco/val2014 --ground-truth coco2014_gt_objects.json
          mirage run --model ./tiny-llava --protocol opera-pope-random \\
              --images ~/coco/val2014 --limit 20 --shard 0/2 --db shard0.sqlite
          mirage run --model ~/models/llava-1.5-7b-hf --protocol opera-chair-512 \\
              --decoder greedy --decoder opera:opera-paper --images ~/coco/val2014 \\
              --label 'llava-{decoder}' --record-attention

        An experiment file (paths relative to it):
          models: [models/llava-1.5-7b-hf]
          protocols: [opera-chair-512, opera-pope-random]
          decoders: [greedy, "beam,num_beams=5", "opera:opera-paper"]
          seeds: [0]
          images: coco/val2014
          annotations: {chair_ground_truth: coco2014_gt_objects.json}
          # or: annotations: {instances: [a/instances_val2014.json], captions: [a/captions_val2014.json]}
          db: Results/mirage.sqlite
          label: "llava-{decoder}"    # optional; placeholders {model} {protocol} {decoder} {preset} {seed}
        """)

    @Argument(help: ArgumentHelp("An experiment file (YAML; see docs/runner.md).", valueName: "experiment.yaml"))
    var experimentFile: String?

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp("A vision-language model folder of any family in `mirage models families` (repeatable).", valueName: "dir"))
    var model: [String] = []

    @Option(name: .customLong("protocol"), parsing: .singleValue, help: ArgumentHelp("A protocol name or file (repeatable).", valueName: "name|file"))
    var protocols: [String] = []

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp(
        "A decoder with an optional preset and parameters (repeatable; default greedy), e.g. opera:opera-paper,num_beams=3 (see `mirage decoders`).",
        valueName: "name[:preset][,k=v...]"))
    var decoder: [String] = []

    @Option(name: .long, parsing: .unconditionalSingleValue, help: ArgumentHelp("A run seed, a non-negative integer (repeatable; default 0).", valueName: "n"),
            transform: parseSeed)
    var seed: [UInt64] = []

    @Option(name: .long, help: "Run only the first N images (sorted ids) of each protocol.")
    var limit: Int?

    @Option(name: .long, help: ArgumentHelp("Folder of COCO images.", valueName: "dir"))
    var images: String?

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp(
        "COCO instances JSON (repeatable): image file names, and the ids a protocol's `sample:` draws from.", valueName: "file"))
    var instances: [String] = []

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp(
        "COCO captions JSON (repeatable): with --instances, CHAIR's ground truth is built from both (cached) when --ground-truth is not given.", valueName: "file"))
    var captions: [String] = []

    @Option(name: .long, help: ArgumentHelp("CHAIR's prebuilt ground truth (coco2014_gt_objects.json; default: built from --instances/--captions, else the data store).", valueName: "file"))
    var groundTruth: String?

    @Option(name: .long, help: ArgumentHelp("Run part i of n of the images (0 ≤ i < n), e.g. 0/2.", valueName: "i/n"))
    var shard: String?

    @Option(name: .long, help: ArgumentHelp("The run database (default: the experiment's db:, else $MIRAGE_DB, else Results/mirage.sqlite).", valueName: "path"))
    var db: String?

    @Option(name: .long, help: ArgumentHelp(
        "Seconds an item claim lasts unless renewed (renewed every third of it while this worker decodes); when a worker dies, the items it held go to the other workers this long after (default \(Int(RunnerOptions.defaultLease))).",
        valueName: "seconds"))
    var lease: Double?

    @Option(name: .long, help: ArgumentHelp(
        "Items one claim takes from the experiment (whole images; default \(RunnerOptions.defaultClaimBatch)). Smaller spreads the last items over more workers, larger claims less often.",
        valueName: "n"))
    var claimBatch: Int?

    @Option(name: .long, help: ArgumentHelp("Quantize projections and LM head at load (q8).", valueName: "q8"))
    var quantize: String?

    @Option(name: .long, help: ArgumentHelp("exact (default): weights widened to f32, f32 accumulation; fast: on prompts over 128 rows, f16 FMAs (AVX512-FP16, f16 sums of 64 products flushed into f32) for f16 checkpoints and bf16 dot products for bf16 ones, each where this CPU's beat f32 FMAs, int8 dot products for q8 with AVX512-VNNI (docs/engine.md, \"Precision\"). Part of each run's identity; for fast so is that route, so a worker on a CPU with another route forms its own run instead of resuming one (`mirage runs show` prints it).", valueName: "exact|fast"))
    var precision: Precision?

    @Option(name: .long, help: "Worker threads (default and maximum: the machine's CPUs).")
    var threads: Int?

    @Option(name: .long, help: ArgumentHelp(
        "The vision tower folder of models that keep it outside their folder (original LLaVA layout: the folder mm_vision_tower names, e.g. openai/clip-vit-large-patch14-336). Default: found beside the model, in MIRAGE_VISION_TOWERS or in the Hugging Face cache (docs/vision.md).",
        valueName: "dir"))
    var visionTower: String?

    @Option(name: .long, help: ArgumentHelp(
        "Megabytes of KV cache kept for shared prompt prefixes (an image's prompt up to the image's end is prefilled once and forked for each of its items; outputs are bit-identical either way); 0 turns it off (default \(Experiment.defaultPrefixCacheMB)).",
        valueName: "MB"))
    var prefixCache: Int?

    @OptionGroup var chairText: ChairTextOptions

    @OptionGroup var pixelLimit: PixelLimitOptions

    @Flag(name: .long, help: "Write one JSON object per item to standard error instead of the progress line.")
    var jsonProgress = false

    @Flag(name: .long, help: "Record each item's last-layer attention (one teacher-forced forward per item) for `mirage attention`, `analyze overtrust` and `report`.")
    var recordAttention = false

    @Flag(name: .long, help: "Decode again the items stored as failed by an earlier invocation (e.g. after fixing a missing or corrupt image); without it a failed item counts as done.")
    var retryFailed = false

    @Option(name: .long, help: ArgumentHelp("Memory a model may need, in GiB, before the run refuses to load it (default: MemAvailable of /proc/meminfo).", valueName: "GiB"))
    var memoryLimit: Double?

    @Flag(name: .long, help: "Load the model even when the memory estimate says it does not fit.")
    var ignoreMemoryCheck = false

    @Option(name: .long, help: ArgumentHelp(
        "Label the runs (unique; usable wherever a run id is). With several runs use placeholders that tell them apart: {model}, {protocol}, {decoder}, {preset}, {seed}, e.g. 'llava-{decoder}'.",
        valueName: "text"))
    var label: String?

    @Flag(name: .long, help: "Predict the experiment's wall time on this machine (per model, protocol and decoder) without running it or touching the database: item counts from the protocols, prompt lengths from the model's tokenizer, speeds measured now on the model's shapes (~1 s).")
    var estimate = false

    @Flag(name: .long, help: "List the protocols found and exit.")
    var listProtocols = false

    func validate() throws {
        if let quantize, quantize != "q8" { throw ValidationError("--quantize takes q8 (got '\(quantize)')") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let prefixCache, prefixCache < 0 { throw ValidationError("--prefix-cache takes megabytes ≥ 0 (0 turns the cache off), got \(prefixCache)") }
        if let memoryLimit, !(memoryLimit > 0) { throw ValidationError("--memory-limit must be a positive number of GiB") }
        if let lease, !(lease >= 1) { throw ValidationError("--lease takes seconds ≥ 1 (the time a dead worker's items stay claimed), got \(lease)") }
        if let claimBatch, claimBatch < 1 { throw ValidationError("--claim-batch takes a number of items ≥ 1, got \(claimBatch)") }
        if let shard { do { _ = try Shard(parsing: shard) } catch { throw ValidationError("\(error)") } }
        if let label, label.isEmpty || Int64(label) != nil {
            throw ValidationError("--label must be non-empty text that is not a number (numbers are run ids)")
        }
    }

    /// The experiment: the file's, with every given flag replacing the file's setting.
    func experiment() throws -> Experiment {
        var e = try experimentFile.map { try Experiment.load(path: ($0 as NSString).expandingTildeInPath) } ?? Experiment()
        func path(_ p: String) -> String { (p as NSString).expandingTildeInPath }
        if !model.isEmpty { e.models = model.map(path) }
        if !protocols.isEmpty { e.protocols = protocols }
        if !decoder.isEmpty { e.decoders = try decoder.map { try DecoderChoice(parsing: $0) } }
        if !seed.isEmpty { e.seeds = seed }
        if let limit { e.limit = limit }
        if let images { e.images = path(images) }
        if !instances.isEmpty { e.instances = instances.map(path) }
        if !captions.isEmpty { e.captions = captions.map(path) }
        if let groundTruth { e.groundTruth = path(groundTruth) }
        if let shard { e.shard = try Shard(parsing: shard) }
        if let db { e.database = path(db) }
        if let quantize { e.quantize = quantize }
        if let precision { e.precision = precision }
        if let threads { e.threads = threads }
        if let visionTower { e.visionTower = path(visionTower) }
        if let prefixCache { e.prefixCacheMB = prefixCache }
        if recordAttention { e.recordAttention = true }
        if let label { e.label = label }
        return e
    }

    /// $MIRAGE_PROTOCOLS (colon-separated), ./Annotations/protocols, and the checkout the binary was built in.
    static func protocolFolders() -> [URL] {
        var out: [URL] = []
        if let env = ProcessInfo.processInfo.environment["MIRAGE_PROTOCOLS"] {
            out += env.split(separator: ":").map { URL(fileURLWithPath: String($0)) }
        }
        out.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("Annotations/protocols"))
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            let candidate = dir.appendingPathComponent("Annotations/protocols")
            if FileManager.default.fileExists(atPath: candidate.path) {
                if !out.contains(where: { $0.standardizedFileURL.path == candidate.standardizedFileURL.path }) { out.append(candidate) }
                break
            }
            dir = dir.deletingLastPathComponent()
        }
        return out
    }

    func run() throws {
        let library = ProtocolLibrary(folders: Self.protocolFolders())
        if listProtocols {
            for name in library.names {
                let p = try? library.resolve(name)
                print(name.padding(toLength: 28, withPad: " ", startingAt: 0) + (p?.description ?? ""))
            }
            return
        }
        try checkInputFiles()
        var experiment = try self.experiment()
        try experiment.validate()
        if experiment.threads != nil || threads != nil {
            experiment.threads = ThreadCount.capped(experiment.threads, option: threads != nil ? "--threads" : "threads:")
        }
        try pixelLimit.apply()
        try checkModelConfigs(experiment.models, visionTower: experiment.visionTower)
        var chair = chairText.resources(groundTruth: experiment.groundTruth,
                                        threads: experiment.threads ?? ProcessInfo.processInfo.activeProcessorCount)
        // No prebuilt ground truth named: build CHAIR's from the annotation files the user named (instances,
        // plus captions), or from the folder of the instances file when it holds the four COCO 2014 files.
        if experiment.groundTruth == nil, let first = experiment.instances.first {
            let folder = URL(fileURLWithPath: first).deletingLastPathComponent()
            if experiment.captions.isEmpty, (ChairGroundTruthBuilder.instanceFiles + ChairGroundTruthBuilder.captionFiles).allSatisfy({
                FileManager.default.fileExists(atPath: folder.appendingPathComponent($0).path) }) {
                chair.cocoAnnotations = folder.path
            } else {
                chair.annotationFiles = (experiment.instances.map { URL(fileURLWithPath: $0) },
                                         experiment.captions.map { URL(fileURLWithPath: $0) })
            }
        }
        let resources = RunResources(chairScorer: { try chair.scorer(options: $0) }, protocols: library)
        if estimate {
            try printEstimate(RunEstimator(experiment: experiment, resources: resources).estimate(log: note))
            return
        }
        let progress = RunProgress(json: jsonProgress)
        // The store's notes (a PostgreSQL connection lost and opened again) go where the runner's do.
        let store = try RunStores.open(RunStores.location(experiment.database), create: true,
                                       note: { [progress] in progress.note($0) })
        var options = RunnerOptions(mirageVersion: MirageVersion.string, gitRevision: Provenance.gitRevision,
                                   checkMemory: !ignoreMemoryCheck,
                                   sourcePath: experimentFile.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? "mirage run",
                                   retryFailed: retryFailed)
        options.memoryLimit = memoryLimit.map { Int64($0 * 1_073_741_824) }
        if let lease { options.lease = lease }
        if let claimBatch { options.claimBatch = claimBatch }
        let runner = ExperimentRunner(experiment: experiment, store: store, resources: resources, options: options,
                                      progress: progress)
        if experiment.recordAttention { runner.itemObservers.append(AttentionRecorder(store: store)) }
        let outcomes = try runner.run()
        print("Stored in \(store.location):")
        for o in outcomes {
            let m = o.metrics
            let metrics: String
            switch o.run.task {
            case .chair:
                metrics = "CHAIRs \(percent(m["chair_s"])) CHAIRi \(percent(m["chair_i"])) Recall \(percent(m["recall"])) Len \(percent(m["len"]))"
            case .pope:
                metrics = "Accuracy \(percent(m["accuracy"])) Precision \(percent(m["precision"])) Recall \(percent(m["recall"])) F1 \(percent(m["f1"])) Yes \(percent(m["yes_ratio"]))"
            }
            print("run \(o.run.id)  \(o.protocolName)  \(o.run.model.name)  \(o.run.decoder.display)  seed \(o.run.seed ?? 0)  "
                  + "\(Int(m["items"] ?? 0)) items\((m["failed_items"] ?? 0) > 0 ? ", \(Int(m["failed_items"]!)) failed" : "")  \(metrics)"
                  + (o.wasComplete ? "  (already complete)" : ""))
            if let failures = o.tally.failureSummary { print("  \(failures)") }
            if let prefix = o.prefixCacheSummary { print("  \(prefix)") }
        }
        let failedRuns = outcomes.filter(\.tally.allFailed)
        if !failedRuns.isEmpty {
            for o in failedRuns {
                note("error: every item of run \(o.run.id) (\(o.protocolName), \(o.run.decoder.display)) failed: "
                     + (o.tally.failureSummary ?? "\(o.tally.failed) failed"))
            }
            note("No results were produced for \(failedRuns.count == 1 ? "this run" : "these runs"). Fix the cause above "
                 + "(e.g. point --images at the folder holding the COCO images), then rerun the same command with "
                 + "--retry-failed to decode the failed items again.")
            throw ExitCode(1)
        }
    }
}

/// A resumed `mirage run --record-attention` fills in the attention of stored items that lack it.
extension AttentionRecorder {
    public func itemsMissingObservation(run: Int64) throws -> Set<String> { try store.itemsLackingAttention(run: run) }
}

extension RunCommand {
    /// The `--estimate` table: one line per (model, protocol, decoder), then the shared image work and totals.
    func printEstimate(_ e: RunEstimate) {
        func duration(_ seconds: Double) -> String {
            seconds >= 3600 ? String(format: "%.1f h", seconds / 3600)
                : seconds >= 60 ? String(format: "%.1f min", seconds / 60)
                : seconds >= 1 ? String(format: "%.1f s", seconds) : String(format: "%.0f ms", seconds * 1000)
        }
        let header = ["model", "protocol", "decoder", "items", "new tokens", "prefill/item", "decode/item", "typical", "at most"]
        var lines = [header]
        for r in e.rows {
            lines.append([r.model, r.protocolName, r.decoder, "\(r.items)", "\(r.newTokensTypical) (≤ \(r.newTokensMaximum))",
                          duration(r.prefillSecondsPerItem), duration(r.decodeSecondsPerItem),
                          duration(r.typicalSeconds), duration(r.maximumSeconds)])
        }
        let widths = header.indices.map { c in lines.map { $0[c].count }.max() ?? 0 }
        for line in lines {
            print(line.enumerated().map { c, cell in
                c < 3 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                      : String(repeating: " ", count: widths[c] - cell.count) + cell
            }.joined(separator: "  "))
        }
        for (model, seconds) in e.sharedSeconds.sorted(by: { $0.key < $1.key }) {
            print("\(model): image encoding and shared prompt prefixes, once per image: \(duration(seconds))")
        }
        print("total: \(duration(e.totalTypicalSeconds)) with typical answer lengths, \(duration(e.totalMaximumSeconds)) if every item generates max_new_tokens")
        for (model, r) in e.rates.sorted(by: { $0.key < $1.key }) {
            let ratios = r.stepRatio.keys.sorted().filter { $0 > 1 }.map { "\($0) sequences \(String(format: "%.2f", r.stepRatio[$0]!))×" }
            print("measured for \(model): decode \(String(format: "%.1f", r.decodeBytesPerSecond / 1e9)) GB/s of weights, "
                  + "prefill \(String(format: "%.0f", r.prefillFLOPs / 1e9)) GFLOP/s"
                  + (ratios.isEmpty ? "" : ", step of " + ratios.joined(separator: ", ")))
        }
        print("Typical CHAIR answers are counted at \(RunEstimate.typicalChairTokens) new tokens (OPERA's released LLaVA-1.5 greedy captions), POPE answers at max_new_tokens; models that rarely stop (random weights) take the 'at most' column. The machine's speed varies between minutes: treat the numbers as ±30%.")
    }
}
