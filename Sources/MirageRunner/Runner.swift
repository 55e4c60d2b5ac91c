import Foundation
import MirageData
import MirageDecoding
import MirageEngine
import MirageImaging
import MirageTokenizers
import MirageKernels
import MirageMetrics
import MirageModels
import MirageStore

/// Called after every recorded item that was decoded (not for failed items), e.g. to capture attention.
public protocol RunItemObserver {
    func itemRecorded(run: Int64, itemKey: String, model: LanguageModel, prompt: PromptLayout, result: DecodeResult,
                      tokenizer: Tokenizer?) throws
    /// Keys of the run's stored, decoded items this observer has nothing for (e.g. attention that was not
    /// committed before a crash, or items recorded without the observer). A resumed run calls `itemRecorded`
    /// for them again, with the stored tokens and text, after rebuilding their prompt. Default: none.
    func itemsMissingObservation(run: Int64) throws -> Set<String>
}

extension RunItemObserver {
    public func itemsMissingObservation(run: Int64) throws -> Set<String> { [] }
}

/// Where the runner finds what protocols need.
public struct RunResources {
    /// Builds CHAIR's scorer (vocabulary, text pipeline, ground truth) for the given options.
    public var chairScorer: (ChairOptions) throws -> ChairScorer
    /// The file of a POPE question source.
    public var questionFile: (RunProtocol.QuestionSource) throws -> URL
    public var protocols: ProtocolLibrary

    public init(chairScorer: @escaping (ChairOptions) throws -> ChairScorer,
                questionFile: @escaping (RunProtocol.QuestionSource) throws -> URL = RunResources.dataStoreQuestions(),
                protocols: ProtocolLibrary) {
        self.chairScorer = chairScorer; self.questionFile = questionFile; self.protocols = protocols
    }

    /// Question files from the data store (`mirage data fetch pope-coco-opera`) or the protocol's path.
    public static func dataStoreQuestions(_ store: DataStore = DataStore()) -> (RunProtocol.QuestionSource) throws -> URL {
        { source in
            switch source {
            case .file(let path):
                guard FileManager.default.fileExists(atPath: path) else {
                    throw RunnerError.configuration("POPE question file \(path) does not exist")
                }
                return URL(fileURLWithPath: path)
            case let .dataSource(id, split):
                do {
                    return try store.locate(id, file: "coco_pope_\(split.rawValue).json")
                } catch {
                    throw RunnerError.configuration("POPE questions of data source \(id): \(error)")
                }
            }
        }
    }
}

/// How a runner behaves beyond the experiment.
public struct RunnerOptions {
    public var mirageVersion: String
    public var gitRevision: String?
    /// Refuse to load a model the memory estimate says will not fit.
    public var checkMemory = true
    /// Where the experiment came from (recorded as each run's source path).
    public var sourcePath: String?
    /// Decode the items a previous invocation stored as failed again (e.g. after fixing a missing image);
    /// otherwise a failed item counts as done, like any stored item.
    public var retryFailed = false
    /// Bytes a model may need before it is refused (default: `MemAvailable` of /proc/meminfo).
    public var memoryLimit: Int64?
    /// This process's name in the store's item claims (workers on one experiment must differ).
    public var worker = RunnerOptions.defaultWorker()
    /// Seconds a claim lasts unless renewed; a renewal runs every third of it while items decode, so items of
    /// a killed worker return to the other workers this long after it died.
    public var lease: TimeInterval = RunnerOptions.defaultLease
    /// Items one claim asks for (whole images: at least this many, more when an image's items straddle it).
    public var claimBatch = RunnerOptions.defaultClaimBatch
    /// Tests only: the probes' decisions (bf16 dot products pay, AVX512-VNNI present) a fast run's identity is
    /// computed with, standing for another CPU's route (`FastRoute`); nil: this CPU's. The kernels still
    /// compute with this CPU's decisions.
    var fastRouteDecisions: (bf16DotProducts: Bool, int8DotProducts: Bool)?

    public static let defaultLease: TimeInterval = 120
    public static let defaultClaimBatch = 4

    /// host:pid:random, unique per process.
    public static func defaultWorker() -> String {
        "\(ProcessInfo.processInfo.hostName):\(getpid()):\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
    }
    public init(mirageVersion: String, gitRevision: String? = nil, checkMemory: Bool = true, sourcePath: String? = nil,
                retryFailed: Bool = false) {
        self.mirageVersion = mirageVersion; self.gitRevision = gitRevision; self.checkMemory = checkMemory
        self.sourcePath = sourcePath; self.retryFailed = retryFailed
    }
}

/// What one run ended with.
public struct RunOutcome {
    public var run: RunRecord
    public var protocolName: String
    public var tally: RunTally
    public var metrics: [String: Double]
    /// True when every item was already stored before this invocation.
    public var wasComplete: Bool
    /// Items of this invocation whose prompt prefix (everything up to the image's end) was asked of the prefix
    /// cache, and how many of them forked a kept prefix instead of computing it.
    public var prefixPrefills = 0
    public var prefixReused = 0

    /// "prefix cache: 29 of 30 prefills reused", or nil when no item asked the cache.
    public var prefixCacheSummary: String? {
        prefixPrefills > 0 ? "prefix cache: \(prefixReused) of \(prefixPrefills) prefill\(prefixPrefills == 1 ? "" : "s") reused" : nil
    }
}

/// Runs an experiment into a store: per model, every (protocol, decoder, seed) is one run; images are
/// visited once each, in sorted id order, and each image's embedding serves every run's items of it.
public final class ExperimentRunner {
    public let experiment: Experiment
    public let store: any RunRepository
    public let resources: RunResources
    public let options: RunnerOptions
    public var progress: RunProgress
    /// Per-item extension point (attention recording); called after each decoded item is stored.
    public var itemObservers: [any RunItemObserver] = []

    public init(experiment: Experiment, store: any RunRepository, resources: RunResources, options: RunnerOptions,
                progress: RunProgress = RunProgress()) {
        self.experiment = experiment; self.store = store; self.resources = resources; self.options = options
        self.progress = progress
    }

    /// One (model, protocol, decoder, seed) run and its pending work.
    final class Plan {
        let name: String
        let prepared: PreparedProtocol
        let decoder: any Decoder
        let seed: UInt64
        let run: RunRecord
        let template: RunProtocol.Template
        /// The family's paper settings when the protocol applies them: the answer text is made by them.
        let paperSettings: PaperSettings?
        var pending: [Int: [PlannedItem]]
        /// Stored items an observer lacks (see `RunItemObserver.itemsMissingObservation`), by image id.
        var backfill: [Int: [(PlannedItem, StoredItem)]] = [:]
        var remaining: Int
        var tally: RunTally
        var sessionItems = 0
        var prefixPrefills = 0
        var prefixReused = 0
        let started = Date()
        let wasComplete: Bool
        init(name: String, prepared: PreparedProtocol, decoder: any Decoder, seed: UInt64, run: RunRecord,
             template: RunProtocol.Template, paperSettings: PaperSettings?, pending: [Int: [PlannedItem]], tally: RunTally,
             wasComplete: Bool) {
            self.name = name; self.prepared = prepared; self.decoder = decoder; self.seed = seed; self.run = run
            self.template = template; self.paperSettings = paperSettings; self.pending = pending; self.tally = tally
            self.wasComplete = wasComplete
            remaining = pending.values.reduce(0) { $0 + $1.count }
        }
    }

    /// Runs everything; returns one outcome per run in plan order.
    public func run() throws -> [RunOutcome] {
        try experiment.validate()
        if experiment.recordAttention && itemObservers.isEmpty {
            throw RunnerError.configuration("record_attention / --record-attention needs an attention recorder, and none is registered in this build")
        }
        let specs = try experiment.protocols.map { try resources.protocols.resolve($0) }
        try experiment.checkLabels(protocolNames: specs.map(\.name))
        let truth = try experiment.groundTruth.map { try ChairGroundTruth(prebuiltJSON: URL(fileURLWithPath: $0)) }
        let imageSet = try ImageSet(folder: experiment.images.map { URL(fileURLWithPath: $0) },
                                    instances: experiment.instances.map { URL(fileURLWithPath: $0) }, groundTruth: truth)
        var scorers: [ChairOptions: ChairScorer] = [:]
        let prepared = try specs.map { spec in
            try PreparedProtocol.prepare(spec, imageSet: imageSet, limit: experiment.limit, chairScorer: { o in
                if let s = scorers[o] { return s }
                let s = try resources.chairScorer(o)
                scorers[o] = s
                return s
            }, questionFile: resources.questionFile)
        }
        let decoders = try experiment.decoders.map { ($0, try $0.makeDecoder()) }
        var outcomes: [RunOutcome] = []
        for modelPath in experiment.models {
            outcomes += try runModel(URL(fileURLWithPath: modelPath), prepared: prepared, decoders: decoders, imageSet: imageSet)
        }
        return outcomes
    }

    /// The resume key of a run: SHA-256 of everything that defines its items, the shard excluded.
    /// `precision` is `precisionKeyField(...)`: nil keeps the key of runs stored before the precision was
    /// explicit. `output` is the paper settings' output handling (`PaperSettings.outputDescription`) when the
    /// protocol applies them; nil (the plain stripped text) keeps earlier keys.
    public static func resumeKey(modelFingerprint: String, quantize: String?, evalProtocol: EvalProtocol,
                                 padToSquare: Bool, decoder: any Decoder, seed: UInt64, precision: String? = nil,
                                 output: String? = nil) -> String {
        var fields = [
            "kind": "mirage-run/1", "model": modelFingerprint, "quantize": quantize ?? "",
            "protocol": evalProtocol.hash, "pad_to_square": String(padToSquare),
            "decoder": decoder.name, "parameters": decoder.parameters.canonicalJSON, "seed": String(seed),
        ]
        if let precision { fields["precision"] = precision }
        if let output { fields["output"] = output }
        return ContentHash.sha256Hex(Data(CanonicalJSON.string(fields).utf8))
    }

    /// The precision as the resume key records it. Runs stored before the precision was explicit have no
    /// precision in their key; they were computed as `fast` computes today for bf16 checkpoints (bf16 dot
    /// products) and as `exact` does for f32 and f16 checkpoints (f16 was always widened to f32). So the
    /// key leaves the precision out exactly when it is that old behaviour for the checkpoint's stored
    /// format, and such old runs keep resuming under the precision that reproduces them; every other
    /// combination gets its own key, so exact and fast runs never share one.
    /// A fast run's `route` (nil: the standard one) is part of it: the standard route keeps the key fast runs
    /// were stored under (nil for bf16 checkpoints, "fast" otherwise); any other adds its `keyComponent`
    /// ("fast/bf16:f32"), so a worker whose CPU computes fast differently forms a run of its own.
    public static func precisionKeyField(_ precision: Precision, storedFormat: WeightFormat, route: FastRoute? = nil) -> String? {
        if precision == .fast, let route, !route.isStandard { return "fast/" + route.keyComponent }
        let before: Precision = storedFormat == .bf16 ? .fast : .exact
        return precision == before ? nil : precision.rawValue
    }

    /// The dot products `--precision fast` takes for `vlm` (`FastRoute`): its language model's weight formats
    /// and those of a vision tower loaded from a folder of its own (`towerFolders`, `ModelShape.otherWeightFolders`),
    /// by this CPU's probes unless other decisions are passed.
    public static func fastRoute(_ vlm: any VisionLanguageModel, towerFolders: [URL],
                                 bf16DotProducts: Bool = Kernels.usesBF16DotProducts,
                                 int8DotProducts: Bool = Kernels.usesInt8DotProducts) throws -> FastRoute {
        FastRoute(loadedFormat: vlm.languageModel.weightFormat, storedFormat: vlm.languageModel.storedWeightFormat,
                  towerFormats: try FastRoute.matrixFormats(in: towerFolders), bf16DotProducts: bf16DotProducts,
                  int8DotProducts: int8DotProducts)
    }

    /// The model's identity in the store: name and fingerprint carry q8 and the precision, so runs that
    /// differ in either are different models in `mirage compare` (exact, the default, adds nothing to
    /// the name). A fast run off the standard route (`route`) carries it too (`+fast/bf16:f32`).
    public static func modelSpec(folderName: String, architecture: String, fingerprint: String, quantized: Bool,
                                 precision: Precision, route: FastRoute? = nil) -> ModelSpec {
        let offRoute = precision == .fast ? route.flatMap { $0.isStandard ? nil : "/" + $0.keyComponent } ?? "" : ""
        var notes: [String] = []
        if quantized { notes.append("q8") }
        if precision == .fast { notes.append("fast" + offRoute) }
        return ModelSpec(name: folderName + (notes.isEmpty ? "" : " (\(notes.joined(separator: ", ")))"),
                         architecture: architecture,
                         fingerprint: fingerprint + (quantized ? "+q8" : "") + "+\(precision.rawValue)" + offRoute)
    }

    /// The paper settings `spec` applies to `model`: the family's, when the protocol says `paper_settings: true`.
    public static func paperSettings(for model: any VisionLanguageModel, protocol spec: RunProtocol) -> PaperSettings? {
        spec.paperSettings ? model.paperSettings : nil
    }

    /// The decoder of `choice` for a run of `spec` on `model`: with the paper settings' decoder parameters
    /// (`paperSettings(for:protocol:)`) as overrides, for the parameters the decoder has and `choice` does not set
    /// itself (a preset's value for such a parameter is replaced too). Without paper settings: `choice`'s decoder.
    public static func decoder(_ choice: DecoderChoice, for model: any VisionLanguageModel, protocol spec: RunProtocol,
                               registry: DecoderRegistry = .standard) throws -> any Decoder {
        guard let settings = paperSettings(for: model, protocol: spec), !settings.decoderParameters.isEmpty else {
            return try choice.makeDecoder(registry: registry)
        }
        let known = Set(try registry.descriptor(named: choice.name).parameters.map(\.name))
        let own = Set(choice.overrides.map(\.key))
        var adjusted = choice
        adjusted.overrides = settings.decoderParameters.sorted { $0.key < $1.key }
            .filter { known.contains($0.key) && !own.contains($0.key) }
            .map { DecoderChoice.Override($0.key, $0.value) } + choice.overrides
        return try adjusted.makeDecoder(registry: registry)
    }

    /// The answer text stored for `result`: the paper settings' post-processing of its tokens, else the decoded
    /// text stripped of surrounding whitespace.
    public static func answerText(_ result: DecodeResult, paperSettings: PaperSettings?, tokenizer: Tokenizer) -> String {
        guard let paperSettings else { return result.text.trimmingCharacters(in: .whitespacesAndNewlines) }
        return paperSettings.answer(tokens: result.tokens, tokenizer: tokenizer)
    }

    /// The decoder's view of a built prompt: the runner's shared prefix ends with the image (what follows it,
    /// the template's separator, the question or instruction, the assistant tag, is per item and prefilled as its
    /// own chunk whether or not it is cached); OPERA's reference span as the prompt builder states it.
    public static func layout(_ built: MultimodalPrompt, sharedPrefix: Bool = true) -> PromptLayout {
        var layout = PromptLayout(items: built.items, imageSpan: built.imageSpan, inputIDs: built.inputIDs,
                                  prefixLength: sharedPrefix ? built.imageSpan.upperBound : nil)
        layout.operaImageSpan = built.operaImageSpan
        return layout
    }

    /// The `source_hash` a run is stored under: the resume key, plus `:shard=i/n` for a shard's run.
    public static func sourceHash(resumeKey: String, shard: Shard?) -> String {
        guard let shard, shard.count > 1 else { return resumeKey }
        return "\(resumeKey):shard=\(shard.index)/\(shard.count)"
    }

    private func runModel(_ folder: URL, prepared: [PreparedProtocol], decoders: [(DecoderChoice, any Decoder)],
                          imageSet: ImageSet) throws -> [RunOutcome] {
        let quantize: WeightFormat? = experiment.quantize == "q8" ? .q8 : nil
        let visionTower = experiment.visionTower.map { URL(fileURLWithPath: $0) }
        let shape: ModelShape
        do {
            shape = try ModelFamilies.shape(of: folder, visionTower: visionTower)
        } catch {
            // Not a model folder of a registered family, or one with a broken or missing config: the error
            // names the file, field and fix (or what Mirage loads).
            throw RunnerError.configuration("model \(folder.path): \(error)")
        }
        if options.checkMemory {
            let inputs = decoders.map(\.1.inputs)
            let estimate = try MemoryEstimate.estimate(
                folder: folder, visionTower: visionTower, quantize: quantize, promptTokens: shape.imageTokenCount + 160,
                maxNewTokens: prepared.map(\.spec.maxNewTokens).max() ?? 0,
                sequences: inputs.map(\.sequencesPerStep).max() ?? 1,
                promptCopies: inputs.map(\.promptPrefills).max() ?? 1)
            try estimate.check(available: options.memoryLimit ?? MemoryEstimate.availableBytes(), quantized: quantize != nil)
        }
        let fingerprint = try ModelFingerprint.compute(folder: folder, others: shape.otherWeightFolders)
        var loadOptions = LoadOptions(quantize: quantize, threads: experiment.threads ?? ProcessInfo.processInfo.activeProcessorCount,
                                      precision: experiment.precision)
        loadOptions.visionTower = visionTower
        let vlm = try ModelFamilies.load(folder, options: loadOptions)
        let tokenizer = try Tokenizer(folder: folder)
        // The dot products this CPU takes for the model's weights in fast mode: part of the run's identity.
        let decisions = options.fastRouteDecisions ?? (Kernels.usesBF16DotProducts, Kernels.usesInt8DotProducts)
        let route = experiment.precision == .fast
            ? try Self.fastRoute(vlm, towerFolders: shape.otherWeightFolders, bf16DotProducts: decisions.bf16DotProducts,
                                 int8DotProducts: decisions.int8DotProducts) : nil
        let modelSpec = Self.modelSpec(folderName: folder.lastPathComponent, architecture: vlm.architectureName,
                                       fingerprint: fingerprint, quantized: quantize != nil, precision: experiment.precision,
                                       route: route)
        let modelName = modelSpec.name
        let precisionKey = Self.precisionKeyField(experiment.precision, storedFormat: vlm.languageModel.storedWeightFormat,
                                                  route: route)
        // One prefix cache per model: an image's prompt prefix serves its questions, decoders and runs.
        let prefixCacheMB = experiment.prefixCacheMB ?? Experiment.defaultPrefixCacheMB
        let prefixCache = prefixCacheMB > 0 ? PromptPrefixCache(limitBytes: prefixCacheMB << 20) : nil

        // Runs: protocol × decoder × seed.
        var plans: [Plan] = []
        for p in prepared {
            let evalProtocol = try p.evalProtocol(for: vlm)
            let mine = p.items.filter { experiment.shard?.contains(imageID: $0.imageID) ?? true }
            let context = vlm.contextLength
            if p.spec.maxNewTokens > context - vlm.imageTokenCount {
                progress.note("note: \(p.spec.name) asks for max_new_tokens \(p.spec.maxNewTokens), more than \(folder.lastPathComponent)'s context of \(context) positions holds after a prompt; each item generates at most up to the context (its prompt included)")
            }
            let paperSettings = Self.paperSettings(for: vlm, protocol: p.spec)
            for (choice, plain) in decoders {
                let decoder = paperSettings == nil ? plain : try Self.decoder(choice, for: vlm, protocol: p.spec)
                for seed in experiment.seeds {
                    let key = Self.resumeKey(modelFingerprint: fingerprint, quantize: experiment.quantize, evalProtocol: evalProtocol,
                                             padToSquare: p.spec.padToSquare, decoder: decoder, seed: seed,
                                             precision: precisionKey, output: paperSettings?.outputDescription)
                    var (run, _) = try store.createRun(NewRun(
                        evalProtocol: evalProtocol, protocolName: p.spec.name, model: modelSpec,
                        decoder: DecoderSpec(name: decoder.name, parametersJSON: decoder.parameters.canonicalJSON),
                        seed: Int64(bitPattern: seed), label: nil,
                        sourceHash: Self.sourceHash(resumeKey: key, shard: experiment.shard),
                        sourcePath: options.sourcePath.map { s in experiment.shard.map { "\(s) (shard \($0))" } ?? s },
                        expectedItems: mine.count, mirageVersion: options.mirageVersion, gitRevision: options.gitRevision))
                    if plans.contains(where: { $0.run.id == run.id }) {
                        progress.note("note: run \(run.id) is listed twice in the experiment (same protocol, decoder settings and seed); running it once")
                        continue
                    }
                    if let label = experiment.label(model: folder.lastPathComponent, protocolName: p.spec.name, decoder: choice, seed: seed),
                       label != run.label {
                        if let old = run.label {
                            progress.note("note: run \(run.id) keeps its label '\(old)' (`mirage runs label \(run.id) \(label)` renames it)")
                        } else {
                            try store.setLabel(run: run.id, to: label)
                            run = try store.run(id: run.id)
                        }
                    }
                    if options.retryFailed {
                        let retried = try store.deleteFailedItems(run: run.id)
                        if retried > 0 { progress.note("run \(run.id): retrying \(retried) failed item\(retried == 1 ? "" : "s")") }
                    }
                    var tally = RunTally(total: mine.count)
                    for stored in try store.items(run: run.id) {
                        tally.add(score: stored.score, failure: stored.item.failureReason)
                    }
                    let recorded = try store.recordedItemKeys(run: run.id)
                    let pending = Dictionary(grouping: mine.filter { !recorded.contains($0.key) }, by: \.imageID)
                    let backfill = try self.backfill(run: run.id, items: mine)
                    if !backfill.isEmpty {
                        progress.note("run \(run.id): recording what is missing (e.g. attention) for \(backfill.count) stored item\(backfill.count == 1 ? "" : "s")")
                    }
                    let name = "run \(run.id) \(modelName) \(p.spec.name) \(choice) seed \(seed)"
                        + (experiment.shard.map { " shard \($0)" } ?? "")
                    let plan = Plan(name: name, prepared: p, decoder: decoder, seed: seed, run: run,
                                    template: p.spec.template(for: vlm), paperSettings: paperSettings, pending: pending, tally: tally,
                                    wasComplete: pending.isEmpty && run.status == .complete)
                    plan.backfill = Dictionary(grouping: backfill, by: \.0.imageID)
                    plans.append(plan)
                }
            }
        }

        var outcomes: [Int64: RunOutcome] = [:]
        func finish(_ plan: Plan) throws {
            // Other workers stored some of the items: the tally is the store's.
            if !plan.wasComplete, try store.workProgress(runs: [plan.run.id]).recorded[plan.run.id, default: 0] > plan.tally.done {
                var tally = RunTally(total: plan.tally.total)
                for stored in try store.items(run: plan.run.id) { tally.add(score: stored.score, failure: stored.item.failureReason) }
                plan.tally = tally
            }
            // A run whose every item failed (all images missing, say) has no result: it is stored as failed.
            let status: RunStatus = plan.tally.allFailed ? .failed : .complete
            let metrics = plan.wasComplete ? try store.metrics(run: plan.run.id) : try store.finishRun(plan.run.id, status: status, metrics: RunEvaluation.metrics)
            var outcome = RunOutcome(run: try store.run(id: plan.run.id), protocolName: plan.prepared.spec.name,
                                     tally: plan.tally, metrics: metrics, wasComplete: plan.wasComplete)
            outcome.prefixPrefills = plan.prefixPrefills
            outcome.prefixReused = plan.prefixReused
            progress.finished(name: plan.name, tally: plan.tally, sessionItems: plan.sessionItems,
                              sessionSeconds: Date().timeIntervalSince(plan.started), detail: outcome.prefixCacheSummary)
            outcomes[plan.run.id] = outcome
        }
        for plan in plans where plan.remaining == 0 { try finish(plan) }

        // Several workers (processes, machines) may run this experiment against one store: each claims a few
        // items at a time, whole images in image order, under a lease renewed while it decodes, and skips
        // what others claimed. What others still hold at the end of a pass is waited for: recorded by them,
        // or claimed here once their lease expires (a killed worker).
        let heartbeat = ClaimHeartbeat(store: store, worker: options.worker, lease: options.lease)
        defer {
            heartbeat.stop()
            try? store.releaseClaims(worker: options.worker)
        }
        var images = Set(plans.flatMap { Array($0.pending.keys) + Array($0.backfill.keys) }).sorted()
        var notedWaiting = false
        var waitBeforePolling = 0.02
        while !images.isEmpty {
            var index = 0
            while index < images.count {
                var window: [Int] = [], candidates: [ItemRef] = []
                while index < images.count && (window.isEmpty || candidates.count < options.claimBatch) {
                    let imageID = images[index]
                    index += 1
                    window.append(imageID)
                    for plan in plans {
                        candidates += (plan.pending[imageID] ?? []).map { ItemRef(run: plan.run.id, key: $0.key) }
                    }
                }
                let claimed = Set(try store.claimItems(candidates, worker: options.worker, lease: options.lease))
                try showWorkProgress(plans)
                for imageID in window {
                    // Images are visited once each: earlier images' prefixes are never asked for again.
                    prefixCache?.removeAll()
                    var context = ImageContext(imageID: imageID, url: imageSet.url(for: imageID), model: vlm,
                                               missingReason: imageSet.missingReason(for: imageID))
                    for plan in plans {
                        for (item, stored) in plan.backfill[imageID] ?? [] {
                            try observeAgain(item, stored: stored, plan: plan, image: &context, tokenizer: tokenizer, model: vlm)
                        }
                        plan.backfill[imageID] = nil
                        guard let items = plan.pending[imageID] else { continue }
                        var elsewhere: [PlannedItem] = []
                        for item in items {
                            guard claimed.contains(ItemRef(run: plan.run.id, key: item.key)) else { elsewhere.append(item); continue }
                            try runItem(item, plan: plan, image: &context, tokenizer: tokenizer, model: vlm, prefixCache: prefixCache)
                            plan.remaining -= 1
                        }
                        plan.pending[imageID] = elsewhere.isEmpty ? nil : elsewhere
                        if plan.pending.isEmpty && outcomes[plan.run.id] == nil { try finish(plan) }
                    }
                }
            }
            // Items this worker could not claim: drop those recorded meanwhile, wait for the rest.
            for plan in plans where outcomes[plan.run.id] == nil {
                let recorded = try store.recordedItemKeys(run: plan.run.id)
                for (imageID, items) in plan.pending {
                    let left = items.filter { !recorded.contains($0.key) }
                    plan.pending[imageID] = left.isEmpty ? nil : left
                }
                plan.remaining = plan.pending.values.reduce(0) { $0 + $1.count }
                if plan.pending.isEmpty { try finish(plan) }
            }
            images = Set(plans.flatMap { Array($0.pending.keys) }).sorted()
            guard !images.isEmpty else { break }
            if !notedWaiting {
                notedWaiting = true
                let count = plans.reduce(0) { $0 + $1.remaining }
                progress.note("waiting for \(count) item\(count == 1 ? "" : "s") other workers hold (recorded by them, or "
                    + "taken over here when their lease of \(Int(options.lease)) s runs out)")
            }
            // Poll soon first (others' items are usually a few seconds of decoding away), then back off to
            // an eighth of the lease: a fixed 2 s wait made two workers on a short experiment slower than one.
            Thread.sleep(forTimeInterval: waitBeforePolling)
            waitBeforePolling = min(min(2, max(0.05, options.lease / 8)), waitBeforePolling * 2)
        }
        return plans.map { outcomes[$0.run.id]! }
    }

    /// Shows how far every unfinished run is over all workers (items stored by others join the tallies).
    private func showWorkProgress(_ plans: [Plan]) throws {
        let open = plans.filter { $0.remaining > 0 }
        guard !open.isEmpty else { return }
        let work = try store.workProgress(runs: open.map(\.run.id))
        for plan in open {
            plan.tally.workers = max(1, work.workers)
            plan.tally.elsewhere = max(0, work.recorded[plan.run.id, default: 0] - plan.tally.done)
        }
    }

    /// The stored items of a run that an observer lacks, with their planned items (items of this shard only).
    private func backfill(run: Int64, items: [PlannedItem]) throws -> [(PlannedItem, StoredItem)] {
        var missing = Set<String>()
        for observer in itemObservers { missing.formUnion(try observer.itemsMissingObservation(run: run)) }
        guard !missing.isEmpty else { return [] }
        let planned = Dictionary(items.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        return try store.items(run: run).compactMap { stored in
            guard missing.contains(stored.item.key), stored.item.failureReason == nil,
                  let tokens = stored.item.outputTokens, !tokens.isEmpty,
                  let item = planned[stored.item.key] else { return nil }
            return (item, stored)
        }
    }

    /// The prompt of an item on its image, as the decoder is given it.
    private func promptLayout(_ item: PlannedItem, plan: Plan, image: inout ImageContext, tokenizer: Tokenizer,
                              model vlm: any VisionLanguageModel) throws -> (PromptLayout, rendered: String, ImageEmbedding) {
        let embedding = try image.embedding(padToSquare: plan.prepared.spec.padToSquare, instruction: item.text)
        let (built, rendered) = try Self.itemPrompt(item.text, template: plan.template, model: vlm, tokenizer: tokenizer,
                                                    image: embedding)
        return (Self.layout(built), rendered, embedding)
    }

    /// A branch prompt as the decoder declares it (`DecoderInputs.branches`): the item's prompt again or without
    /// its image rows, or a prompt rebuilt with a transformed image and/or a changed instruction.
    private func branchLayout(_ spec: BranchSpec, of layout: PromptLayout, item: PlannedItem, plan: Plan,
                              image: inout ImageContext, tokenizer: Tokenizer,
                              model vlm: any VisionLanguageModel) throws -> PromptLayout {
        if let derived = spec.derived(from: layout) { return derived }
        let instruction = spec.instruction.apply(to: item.text)
        let padToSquare = plan.prepared.spec.padToSquare
        let embedding: ImageEmbedding
        if case let .transformed(transform) = spec.image {
            embedding = try image.transformedEmbedding(padToSquare: padToSquare, transform: transform, seed: plan.seed,
                                                       instruction: instruction)
        } else {
            embedding = try image.embedding(padToSquare: padToSquare, instruction: instruction)
        }
        let built = try Self.itemPrompt(instruction, template: plan.template, model: vlm, tokenizer: tokenizer,
                                        image: embedding).0
        let branch = Self.layout(built, sharedPrefix: false)
        return spec.image == .none ? branch.removingImage() : branch
    }

    /// The prompt of one item's text under a protocol template: a named template as the model knows it
    /// (`processor` builds what the folder's processor builds), custom text rendered and placed as written.
    static func itemPrompt(_ text: String, template: RunProtocol.Template, model: any VisionLanguageModel,
                           tokenizer: Tokenizer, image: ImageEmbedding) throws -> (MultimodalPrompt, rendered: String) {
        if let named = try RunProtocol.promptTemplate(template, model: model) {
            return (try model.prompt(text, template: named, tokenizer: tokenizer, image: image), named.render(text))
        }
        let rendered = try RunProtocol.render(template, text: text)
        return (try model.prompt(rendered, tokenizer: tokenizer, image: image), rendered)
    }

    /// Gives the observers a stored item again (its prompt rebuilt, its stored tokens as the result), without
    /// decoding; the item itself is not touched. An image that cannot be used now is noted and skipped.
    private func observeAgain(_ item: PlannedItem, stored: StoredItem, plan: Plan, image: inout ImageContext,
                              tokenizer: Tokenizer, model vlm: any VisionLanguageModel) throws {
        let layout: PromptLayout
        do {
            layout = try promptLayout(item, plan: plan, image: &image, tokenizer: tokenizer, model: vlm).0
        } catch let failure as ItemFailure {
            progress.note("run \(plan.run.id) item \(item.key): not recorded again: \(failure.reason)"); return
        } catch let failure as ImageFailure {
            progress.note("run \(plan.run.id) item \(item.key): not recorded again: \(failure.reason)"); return
        }
        let tokens = stored.item.outputTokens ?? []
        let stop: StopReason = tokens.last.map { vlm.languageModel.eosTokenIDs.contains($0) } == true ? .eos : .maxNewTokens
        let result = DecodeResult(tokens: tokens, text: stored.item.outputText, stopReason: stop, meter: ForwardMeter())
        for observer in itemObservers {
            try observer.itemRecorded(run: plan.run.id, itemKey: item.key, model: vlm.languageModel, prompt: layout,
                                      result: result, tokenizer: tokenizer)
        }
    }

    /// Decodes one item (or records why it could not be) and stores it with its score.
    private func runItem(_ item: PlannedItem, plan: Plan, image: inout ImageContext, tokenizer: Tokenizer,
                         model vlm: any VisionLanguageModel, prefixCache: PromptPrefixCache?) throws {
        let start = Date()
        let seed = Int64(bitPattern: plan.seed)
        var newItem = NewItem(key: item.key, ordinal: item.ordinal, imageID: item.imageID, questionID: item.questionID,
                              prompt: item.text, outputText: "", seed: seed)
        var score: ItemScore?
        var decoded: (PromptLayout, DecodeResult)?
        do {
            let (layout, _, _) = try promptLayout(item, plan: plan, image: &image, tokenizer: tokenizer, model: vlm)
            var branches: [String: PromptLayout] = [:]
            for spec in plan.decoder.inputs.branches {
                branches[spec.role] = try branchLayout(spec, of: layout, item: item, plan: plan, image: &image,
                                                       tokenizer: tokenizer, model: vlm)
            }
            let limits = GenerationLimits(
                maxNewTokens: MemoryEstimate.generationLimit(maxNewTokens: plan.prepared.spec.maxNewTokens,
                                                             promptTokens: layout.items.count,
                                                             context: vlm.contextLength),
                eosTokenIDs: Set(vlm.languageModel.eosTokenIDs))
            var context = DecodingContext(model: vlm.languageModel, prompt: layout, branches: branches, limits: limits,
                                          tokenizer: tokenizer, randomKey: RandomKey(seed: plan.seed, item: item.key))
            context.prefixCache = prefixCache
            let asked = (prefixCache?.prefills ?? 0, prefixCache?.reused ?? 0)
            defer {
                plan.prefixPrefills += (prefixCache?.prefills ?? 0) - asked.0
                plan.prefixReused += (prefixCache?.reused ?? 0) - asked.1
            }
            do {
                let result = try plan.decoder.decode(context)
                newItem.outputText = Self.answerText(result, paperSettings: plan.paperSettings, tokenizer: tokenizer)
                newItem.outputTokens = result.tokens
                newItem.prefillSeconds = result.prefillSeconds
                newItem.decodeSeconds = result.decodeSeconds
                newItem.forwardPasses = result.forwardPasses
                decoded = (layout, result)
            } catch {
                throw ItemFailure("decoder error", "\(error)")
            }
            score = try plan.prepared.scorer.score(newItem)
        } catch let failure as ItemFailure {
            newItem.failureReason = failure.reason
            newItem.outputText = ""
        } catch let failure as ImageFailure {
            newItem.failureReason = failure.reason
        }
        _ = try store.recordItem(run: plan.run.id, newItem, score: score)
        if let (layout, result) = decoded, newItem.failureReason == nil {
            for observer in itemObservers {
                try observer.itemRecorded(run: plan.run.id, itemKey: item.key, model: vlm.languageModel, prompt: layout,
                                          result: result, tokenizer: tokenizer)
            }
        }
        plan.tally.add(score: score, failure: newItem.failureReason)
        plan.sessionItems += 1
        progress.item(run: plan.run.id, name: plan.name, key: item.key, tally: plan.tally,
                      status: newItem.failureReason == nil ? "ok" : "failed", reason: newItem.failureReason,
                      seconds: Date().timeIntervalSince(start), sessionItems: plan.sessionItems,
                      sessionSeconds: Date().timeIntervalSince(plan.started))
    }
}

/// A failure that is recorded on the item (the run goes on).
struct ItemFailure: Error {
    let reason: String
    init(_ kind: String, _ detail: String) { reason = "\(kind): \(detail)" }
}

/// An image that cannot be used: every item of it fails with the same reason.
struct ImageFailure: Error {
    let reason: String
}

/// The image being worked on: its embeddings, computed on first use and reused by every item of it (by
/// every item with the same instruction when the model's image rows read the instruction).
struct ImageContext {
    let imageID: Int
    let url: URL?
    let model: any VisionLanguageModel
    let missingReason: String
    private var pixels: [Bool: Result<PixelTensor, ImageFailure>] = [:]
    private var embeddings: [String: ImageEmbedding] = [:]
    private var transformed: [String: ImageEmbedding] = [:]

    init(imageID: Int, url: URL?, model: any VisionLanguageModel, missingReason: String) {
        self.imageID = imageID; self.url = url; self.model = model; self.missingReason = missingReason
    }

    mutating func pixelTensor(padToSquare: Bool) throws -> PixelTensor {
        if let cached = pixels[padToSquare] { return try cached.get() }
        let result: Result<PixelTensor, ImageFailure>
        if let url {
            do {
                result = .success(try model.pixels(ofImageAt: url.path, padToSquare: padToSquare))
            } catch {
                result = .failure(ImageFailure(reason: "unreadable image: \(url.lastPathComponent): \(error)"))
            }
        } else {
            result = .failure(ImageFailure(reason: "missing image: \(missingReason)"))
        }
        pixels[padToSquare] = result
        return try result.get()
    }

    /// The cache key of the image rows: the padding, and the instruction when the model's rows read it.
    func embeddingKey(padToSquare: Bool, instruction: String) -> String {
        model.imageRowsReadInstruction ? "\(padToSquare)\u{0}\(instruction)" : "\(padToSquare)"
    }

    mutating func embedding(padToSquare: Bool, instruction: String) throws -> ImageEmbedding {
        let key = embeddingKey(padToSquare: padToSquare, instruction: instruction)
        if let e = embeddings[key] { return e }
        let p = try pixelTensor(padToSquare: padToSquare)
        let e: ImageEmbedding
        do { e = try model.embedImage(p, instruction: instruction) } catch { throw ItemFailure("vision error", "\(error)") }
        embeddings[key] = e
        return e
    }

    /// A branch's image (VCD's noised one): the pixels changed by `transform` with the random key of (seed, image id).
    mutating func transformedEmbedding(padToSquare: Bool, transform: ImageTransform, seed: UInt64,
                                       instruction: String) throws -> ImageEmbedding {
        let key = "\(transform.id)/\(seed)/" + embeddingKey(padToSquare: padToSquare, instruction: instruction)
        if let e = transformed[key] { return e }
        var p = try pixelTensor(padToSquare: padToSquare)
        do {
            p.values = try transform.apply(p.values, p.channels, p.height, p.width, RandomKey(seed: seed, item: "image-\(imageID)"))
            let e = try model.embedImage(p, instruction: instruction)
            transformed[key] = e
            return e
        } catch {
            throw ItemFailure("vision error", "\(error)")
        }
    }
}

/// Renews a worker's item claims every third of the lease on a background thread, so items that take long to
/// decode stay claimed; stopped when the worker has no more to claim.
final class ClaimHeartbeat: @unchecked Sendable {
    private let condition = NSCondition()
    private var stopped = false

    init(store: any RunRepository, worker: String, lease: TimeInterval) {
        let thread = Thread { [condition] in
            condition.lock()
            defer { condition.unlock() }
            while !self.stopped {
                _ = condition.wait(until: Date().addingTimeInterval(lease / 3))
                if self.stopped { break }
                condition.unlock()
                do {
                    try store.renewClaims(worker: worker, lease: lease)
                } catch {
                    let message = "warning: could not renew this worker's item claims (\(error)); "
                        + "another worker may take them over and decode them again\n"
                    FileHandle.standardError.write(Data(message.utf8))
                }
                condition.lock()
            }
        }
        thread.name = "mirage-claim-heartbeat"
        thread.start()
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }
}
