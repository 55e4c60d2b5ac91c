import Foundation
import MirageData
import MirageDecoding
import MirageEngine
import MirageKernels
import MirageModels
import MirageStore
import MirageTokenizers

/// This machine's speed for one model's matrix shapes, measured in about a second with the engine's own
/// kernels (`mirage run --estimate`). Decode streams weights, so it is timed on copies of the model's largest
/// projection that together exceed the caches; prefill and the image encoder are matrix products, timed as one.
public struct MachineRates: Sendable, Equatable {
    /// Weight bytes per second a one-row step streams.
    public var decodeBytesPerSecond: Double
    /// Time of a k-row step ÷ a one-row step, for the sequence counts the experiment's decoders use.
    public var stepRatio: [Int: Double]
    /// Multiply-adds × 2 per second of a many-row product (prefill, image encoder).
    public var prefillFLOPs: Double

    public init(decodeBytesPerSecond: Double, stepRatio: [Int: Double], prefillFLOPs: Double) {
        self.decodeBytesPerSecond = decodeBytesPerSecond
        self.stepRatio = stepRatio
        self.prefillFLOPs = prefillFLOPs
    }

    /// Times `Kernels.linear` on [intermediate × hidden] matrices of `format` with `pool`.
    public static func measure(hidden: Int, intermediate: Int, format: WeightFormat, precision: Precision,
                               sequences: Set<Int>, pool: WorkerPool) -> MachineRates {
        let rows = max(1, intermediate), cols = max(1, hidden)
        let stored: WeightFormat = format == .q8 ? .f16 : format
        let matrixBytes = rows * cols * stored.bytesPerElement
        // Enough copies to exceed the last-level cache several times over (256 MB), at most 32.
        let copies = max(2, min(32, (256 << 20) / max(1, matrixBytes) + 1))
        var generator = SplitMix64(seed: 0x6d69_7261_6765)
        func small() -> Float { Float(Double(generator.next() >> 11) / Double(1 << 53) - 0.5) * 0.04 }
        let buffers = (0..<copies).map { _ -> AlignedBuffer in
            let buffer = AlignedBuffer(byteCount: matrixBytes)
            let count = rows * cols
            switch stored {
            case .f32:
                let p = buffer.pointer.assumingMemoryBound(to: Float.self)
                for i in 0..<count { p[i] = small() }
            case .f16, .bf16, .q8:
                let p = buffer.pointer.assumingMemoryBound(to: UInt16.self)
                for i in 0..<count {
                    let value = small()
                    p[i] = stored == .bf16 ? UInt16(truncatingIfNeeded: value.bitPattern >> 16) : Float16(value).bitPattern
                }
            }
            return buffer
        }
        var matrices = buffers.map {
            WeightMatrix(rows: rows, cols: cols, format: stored, data: UnsafeRawPointer($0.pointer), owner: $0, precision: precision)
        }
        if format == .q8 { matrices = matrices.map { $0.quantizedQ8(pool: pool) } }
        let maxRows = max(256, sequences.max() ?? 1)
        let x = UnsafeMutablePointer<Float>.allocate(capacity: maxRows * cols)
        let y = UnsafeMutablePointer<Float>.allocate(capacity: maxRows * rows)
        defer { x.deallocate(); y.deallocate() }
        for i in 0..<(maxRows * cols) { x[i] = small() * 25 }

        /// Seconds per matrix: each call timed on its own (a few ms, so another process taking a core rarely
        /// lands inside one), each matrix's best of `repeats` calls kept, averaged over the matrices. Copies are
        /// visited in turn, so every call reads its weights from memory, not the caches.
        func time(n: Int, repeats: Int, over list: [WeightMatrix]) -> Double {
            var best = [Double](repeating: .infinity, count: list.count)
            for _ in 0..<repeats {
                for (i, m) in list.enumerated() {
                    let start = DispatchTime.now().uptimeNanoseconds
                    Kernels.linear(x, n: n, weight: m, bias: nil, into: y, pool: pool)
                    best[i] = min(best[i], Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                }
            }
            return best.reduce(0, +) / Double(list.count)
        }
        _ = time(n: 1, repeats: 1, over: matrices)   // warm-up: page in, wake the pool
        let single = time(n: 1, repeats: 8, over: matrices)
        var ratios: [Int: Double] = [1: 1]
        for k in sequences where k > 1 { ratios[k] = time(n: k, repeats: 8, over: matrices) / single }
        let prefillRows = 256
        let product = time(n: prefillRows, repeats: 3, over: Array(matrices.prefix(2)))
        return MachineRates(decodeBytesPerSecond: Double(matrices[0].byteCount) / single, stepRatio: ratios,
                            prefillFLOPs: 2 * Double(prefillRows) * Double(rows) * Double(cols) / product)
    }
}

/// The predicted cost of an experiment, per (model, protocol, decoder), before running it.
public struct RunEstimate: Sendable {
    public struct Row: Sendable {
        public var model: String
        public var protocolName: String
        public var decoder: String
        public var items: Int
        public var images: Int
        /// Seconds of this run's own work with typical answer lengths (see `RunEstimate.typicalNewTokens`),
        /// and with every item generating `max_new_tokens`.
        public var typicalSeconds: Double
        public var maximumSeconds: Double
        /// Seconds per item split into prefill and decode (typical answer lengths).
        public var prefillSecondsPerItem: Double
        public var decodeSecondsPerItem: Double
        public var newTokensTypical: Int
        public var newTokensMaximum: Int
    }

    public var rows: [Row] = []
    /// Seconds shared by the runs of a model: image encoding and the shared prompt prefixes, each once per image.
    public var sharedSeconds: [String: Double] = [:]
    /// What was measured, per model (for the printed assumptions).
    public var rates: [String: MachineRates] = [:]
    public var totalTypicalSeconds: Double { rows.map(\.typicalSeconds).reduce(0, +) + sharedSeconds.values.reduce(0, +) }
    public var totalMaximumSeconds: Double { rows.map(\.maximumSeconds).reduce(0, +) + sharedSeconds.values.reduce(0, +) }

    /// New tokens of a typical CHAIR caption: OPERA's released LLaVA-1.5 greedy captions
    /// (shikiw/OPERA, log/chair_eval_results) average 87 words, about 115 LLaMA tokens at ~1.3 tokens per
    /// English word. POPE answers are counted at their `max_new_tokens` (OPERA's protocols: 10).
    public static let typicalChairTokens = 115

    public static func typicalNewTokens(task: EvalProtocol.Task, maxNewTokens: Int) -> Int {
        task == .chair ? min(maxNewTokens, typicalChairTokens) : maxNewTokens
    }
}

/// The decoder's work per generated token, as the estimate counts it.
struct DecoderCost {
    /// Sequences advanced per step (`DecoderInputs.sequencesPerStep`: beams × (1 + branches)).
    var sequences: Int
    /// Extra factor on decode steps measured for the method (`DecoderInputs.stepFactor`: OPERA's candidate re-scoring).
    var stepFactor: Double
    /// Prompt prefills per item (the prompt and each branch's own).
    var prefills: Int

    init(_ decoder: any Decoder) {
        let inputs = decoder.inputs
        sequences = inputs.sequencesPerStep
        prefills = inputs.promptPrefills
        stepFactor = inputs.stepFactor
    }
}

/// `mirage run --estimate`: the experiment's cost, predicted without a store and without decoding.
public struct RunEstimator {
    public let experiment: Experiment
    public let resources: RunResources

    public init(experiment: Experiment, resources: RunResources) {
        self.experiment = experiment
        self.resources = resources
    }

    /// Predicts the wall time of the experiment on this machine without decoding anything: item counts from
    /// the protocols (POPE question files are read, CHAIR needs no ground truth), prompt lengths from the
    /// model's tokenizer, costs from the model's configuration and `MachineRates` measured now.
    public func estimate(log: (String) -> Void = { _ in }) throws -> RunEstimate {
        try experiment.validate()
        let specs = try experiment.protocols.map { try resources.protocols.resolve($0) }
        let decoders = try experiment.decoders.map { ($0, try $0.makeDecoder()) }
        var result = RunEstimate()
        for modelPath in experiment.models {
            let folder = URL(fileURLWithPath: modelPath)
            var (family, found) = try ModelFamilies.family(of: folder)
            found.visionTower = experiment.visionTower.map { URL(fileURLWithPath: $0) }
            let shape = try family.shape(found)
            if shape.imageEncoderFLOPs == 0 {
                log("note: the \(family.name) family does not give its image encoder's cost; images are counted as free")
            }
            let tokenizer = try Tokenizer(folder: folder)
            let name = folder.lastPathComponent
            let t = shape.text
            let format: WeightFormat = experiment.quantize == "q8" ? .q8 : try Self.storedFormat(folder: folder)
            let threads = experiment.threads ?? ProcessInfo.processInfo.activeProcessorCount
            let costs = decoders.map { DecoderCost($0.1) }
            log("measuring this machine's speed on \(name)'s shapes (\(format.rawValue), \(threads) threads)…")
            let rates = MachineRates.measure(hidden: t.hiddenSize, intermediate: t.intermediateSize, format: format,
                                             precision: experiment.precision, sequences: Set(costs.map(\.sequences)),
                                             pool: WorkerPool(threadCount: threads))
            result.rates[name] = rates

            // Decoder weights: attention and MLP projections per layer, and the LM head.
            let qDim = Double(t.numHeads * t.headDim), kvDim = Double(t.numKVHeads * t.headDim)
            let h = Double(t.hiddenSize), inter = Double(t.intermediateSize)
            let layerParams = h * qDim * 2 + h * kvDim * 2 + 3 * h * inter
            let params = Double(t.numLayers) * layerParams + Double(t.vocabSize) * h
            let bytesPerWeight = format == .q8 ? 1 + 4.0 / 32 : Double(format.bytesPerElement)
            let stepSeconds = params * bytesPerWeight / rates.decodeBytesPerSecond
            func prefillSeconds(_ rows: Int, context: Int) -> Double {
                // Products over the prompt rows, plus attention scores and values over the context.
                let products = 2 * params * Double(rows)
                let attention = 4 * Double(t.numLayers) * qDim * Double(rows) * Double(context)
                return (products + attention) / rates.prefillFLOPs
            }
            // Per generated token: a step over k sequences, plus reading the KV cache (f32 keys and values).
            func decodeSeconds(tokens: Int, promptRows: Int, cost: DecoderCost) -> Double {
                let ratio = rates.stepRatio[cost.sequences] ?? Double(cost.sequences)
                let averageContext = Double(promptRows) + Double(tokens) / 2
                let kvBytes = 2 * Double(t.numLayers) * kvDim * 4 * averageContext * Double(cost.sequences)
                return Double(tokens) * (stepSeconds * ratio * cost.stepFactor + kvBytes / rates.decodeBytesPerSecond)
            }
            let imageSeconds = shape.imageEncoderFLOPs / rates.prefillFLOPs

            var sharedImages = Set<Int>()
            var shared = 0.0
            for spec in specs {
                let (items, images, sample) = try itemCounts(spec)
                // The protocol's template for this model, keyed as the runner keys it (architecture name, family,
                // decoder type); a named template as the family renders it.
                let keys = ["\(family.name)-\(t.architecture.modelType)", family.name, t.architecture.modelType]
                let template = keys.lazy.compactMap { spec.templates[$0] }.first ?? spec.template
                let rendered: String
                if case .named(let templateName) = template, let known = family.templates.first(where: { $0.name == templateName }) {
                    rendered = known.render(sample)
                } else {
                    rendered = try RunProtocol.render(template, text: sample)
                }
                let parts = rendered.components(separatedBy: "<image>")
                let before = tokenizer.encode(parts.first ?? "").count
                let after = parts.count > 1 ? tokenizer.encode(parts.dropFirst().joined(), addSpecialTokens: false).count : 0
                let prefixRows = before + shape.imageTokenCount, suffixRows = after
                let promptRows = prefixRows + suffixRows
                let limit = max(1, t.maxPositionEmbeddings - promptRows)
                let maximum = min(spec.maxNewTokens, limit)
                let typical = min(RunEstimate.typicalNewTokens(task: spec.task, maxNewTokens: spec.maxNewTokens), limit)
                // Each image is encoded once per model (the image cache); its prompt prefix too, unless the prefix
                // cache is off (`--prefix-cache 0`), when every item prefills its whole prompt.
                let prefixCached = (experiment.prefixCacheMB ?? Experiment.defaultPrefixCacheMB) > 0
                let newImages = images.subtracting(sharedImages)
                sharedImages.formUnion(newImages)
                shared += Double(newImages.count) * (imageSeconds + (prefixCached ? prefillSeconds(prefixRows, context: prefixRows) : 0))
                for ((choice, _), cost) in zip(decoders, costs) {
                    let prefill = (prefixCached ? prefillSeconds(suffixRows, context: promptRows) : prefillSeconds(promptRows, context: promptRows))
                        + Double(cost.prefills - 1) * (imageSeconds + prefillSeconds(promptRows, context: promptRows))
                    let decodeTypical = decodeSeconds(tokens: typical, promptRows: promptRows, cost: cost)
                    let decodeMaximum = decodeSeconds(tokens: maximum, promptRows: promptRows, cost: cost)
                    let runs = Double(experiment.seeds.count)
                    result.rows.append(RunEstimate.Row(
                        model: name, protocolName: spec.name, decoder: choice.description, items: items * experiment.seeds.count,
                        images: images.count, typicalSeconds: runs * Double(items) * (prefill + decodeTypical),
                        maximumSeconds: runs * Double(items) * (prefill + decodeMaximum),
                        prefillSecondsPerItem: prefill, decodeSecondsPerItem: decodeTypical,
                        newTokensTypical: typical, newTokensMaximum: maximum))
                }
            }
            result.sharedSeconds[name] = shared
        }
        return result
    }

    /// Items, images and one item's user text of a protocol, without CHAIR's ground truth.
    func itemCounts(_ spec: RunProtocol) throws -> (Int, Set<Int>, String) {
        switch spec.task {
        case .chair:
            var ids: [Int]
            switch spec.images {
            case .ids(let list): ids = Array(Set(list)).sorted()
            case let .sample(count, _): ids = Array(repeating: 0, count: count).indices.map { -$0 - 1 }
            case .questionFile: throw RunnerError.configuration("protocol \(spec.name): a CHAIR protocol needs images: {ids: [...]} or {sample: N}")
            }
            if let limit = experiment.limit { ids = Array(ids.prefix(limit)) }
            if let shard = experiment.shard { ids = ids.filter { shard.contains(imageID: $0) } }
            return (ids.count, Set(ids), spec.userText())
        case .pope:
            guard let source = spec.questions else {
                throw RunnerError.configuration("protocol \(spec.name): a POPE protocol needs questions:")
            }
            let file = try POPEQuestionReader.load(try resources.questionFile(source))
            let byImage = Dictionary(grouping: file.questions.compactMap { q in q.cocoImageID.map { ($0, q) } }, by: \.0)
            var ids = byImage.keys.sorted()
            switch spec.images {
            case .questionFile: break
            case .ids(let list): ids = ids.filter(Set(list).contains)
            case let .sample(count, seed): ids = ImageSampler.sample(ids, count: count, seed: seed)
            }
            if let limit = experiment.limit { ids = Array(ids.prefix(limit)) }
            if let shard = experiment.shard { ids = ids.filter { shard.contains(imageID: $0) } }
            let items = ids.reduce(0) { $0 + (byImage[$1]?.count ?? 0) }
            let sample = file.questions.first.map { spec.userText(question: $0.text) } ?? spec.userText(question: "Is there a dog in the image?")
            return (items, Set(ids), sample)
        }
    }

    /// The weight format of the decoder's projections in the folder's checkpoint.
    static func storedFormat(folder: URL) throws -> WeightFormat {
        let store = try TensorStore(folder: folder)
        let projection = store.tensorNames.first { Q8Checkpoint.isQuantized(name: $0, shape: store.entry($0)?.shape ?? []) }
            ?? store.tensorNames.first { $0.hasSuffix(Q8Checkpoint.suffix) }
        guard let name = projection, let entry = store.entry(name) else { return .f16 }
        return name.hasSuffix(Q8Checkpoint.suffix) ? .q8 : entry.dtype.weightFormat ?? .f16
    }
}
