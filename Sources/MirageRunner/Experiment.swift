import Foundation
import MirageDecoding
import MirageKernels

/// One decoder setting of an experiment: `name[:preset][,k=v...]`.
public struct DecoderChoice: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var preset: String?
    public var overrides: [Override]

    public struct Override: Sendable, Equatable {
        public var key: String
        public var value: String
        public init(_ key: String, _ value: String) { self.key = key; self.value = value }
    }

    public init(name: String, preset: String? = nil, overrides: [Override] = []) {
        self.name = name; self.preset = preset; self.overrides = overrides
    }

    /// Parses `greedy`, `opera:opera-paper`, `beam,num_beams=3` or `opera:opera-paper,num_beams=3,threshold=25`.
    public init(parsing text: String) throws {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let head = parts[0]
        if let colon = head.firstIndex(of: ":") {
            name = String(head[..<colon])
            preset = String(head[head.index(after: colon)...])
            if preset!.isEmpty { throw RunnerError.configuration("decoder '\(text)': empty preset after ':'") }
        } else {
            name = head
        }
        if name.isEmpty { throw RunnerError.configuration("decoder '\(text)': no decoder name; use NAME[:preset][,k=v...], e.g. opera:opera-paper,num_beams=3") }
        overrides = try parts.dropFirst().map { p in
            guard let eq = p.firstIndex(of: "="), eq != p.startIndex else {
                throw RunnerError.configuration("decoder '\(text)': '\(p)' is not k=v; use NAME[:preset][,k=v...], e.g. beam,num_beams=3")
            }
            return Override(String(p[..<eq]), String(p[p.index(after: eq)...]))
        }
    }

    public var description: String {
        name + (preset.map { ":\($0)" } ?? "") + overrides.map { ",\($0.key)=\($0.value)" }.joined()
    }

    /// The decoder with every parameter resolved (defaults, preset, overrides); errors name the choice.
    public func makeDecoder(registry: DecoderRegistry = .standard) throws -> any Decoder {
        do {
            return try registry.makeDecoder(name, preset: preset, overrides: overrides.map { ($0.key, $0.value) })
        } catch let e as DecodingError {
            throw RunnerError.configuration("decoder '\(self)': \(e.description)")
        }
    }
}

/// An experiment: models × protocols × decoders × seeds over an image set, into a run store.
/// Read from YAML (`mirage run experiment.yaml`) or assembled from flags. See docs/runner.md.
public struct Experiment: Sendable, Equatable {
    /// Model folders.
    public var models: [String] = []
    /// Protocol names or files.
    public var protocols: [String] = []
    /// Default: greedy.
    public var decoders: [DecoderChoice] = [DecoderChoice(name: "greedy")]
    public var seeds: [UInt64] = [0]
    /// Run only the first N images (sorted ids) of each protocol.
    public var limit: Int?
    /// The folder of COCO images.
    public var images: String?
    /// COCO instances JSON files (file names, ids to sample from).
    public var instances: [String] = []
    /// COCO captions JSON files: with the instances files, CHAIR's ground truth is built from them (as CHAIR's
    /// reference builds it from instances + captions) when no prebuilt one is named.
    public var captions: [String] = []
    /// CHAIR's prebuilt ground truth (`coco2014_gt_objects.json`).
    public var groundTruth: String?
    /// The run database.
    public var database: String?
    /// `q8` to quantize at load.
    public var quantize: String?
    /// How the models multiply their weights (`LoadOptions.precision`; file key `precision: exact|fast`).
    public var precision: Precision = .exact
    public var threads: Int?
    /// The vision tower folder for models that keep their tower outside their folder (the original LLaVA
    /// layout; `vision_tower:`, `--vision-tower`); nil: each model's family looks for it (docs/vision.md).
    public var visionTower: String?
    public var shard: Shard?
    /// Ask the registered item observers to record attention (see `RunItemObserver`).
    public var recordAttention = false
    /// The label of each run, with `{model}`, `{protocol}`, `{decoder}`, `{preset}` and `{seed}` replaced
    /// (labels are unique: with several runs the placeholders must tell them apart).
    public var label: String?
    /// Megabytes of KV cache the runner may keep for shared prompt prefixes (`prefix_cache`, `--prefix-cache`);
    /// 0 turns the cache off. Default: `defaultPrefixCacheMB`. Outputs are the same either way.
    public var prefixCacheMB: Int?

    public static let defaultPrefixCacheMB = 1024

    public init() {}

    /// The placeholders a label may use.
    public static let labelPlaceholders = ["{model}", "{protocol}", "{decoder}", "{preset}", "{seed}"]

    /// `label` for one run: `model` is the model's name (its folder name), `protocolName` the protocol's name.
    public func label(model: String, protocolName: String, decoder: DecoderChoice, seed: UInt64) -> String? {
        label.map { template in
            template.replacingOccurrences(of: "{model}", with: model)
                .replacingOccurrences(of: "{protocol}", with: protocolName)
                .replacingOccurrences(of: "{decoder}", with: decoder.name)
                .replacingOccurrences(of: "{preset}", with: decoder.preset ?? "")
                .replacingOccurrences(of: "{seed}", with: String(seed))
        }
    }

    /// Refuses a label that would give two runs the same name, or a run a number for a name.
    public func checkLabels(protocolNames: [String]) throws {
        guard let template = label else { return }
        var seen: [String: String] = [:]
        for model in models {
            let modelName = URL(fileURLWithPath: model).lastPathComponent
            for p in protocolNames {
                for d in decoders {
                    for seed in seeds {
                        let name = self.label(model: modelName, protocolName: p, decoder: d, seed: seed)!
                        let run = "\(modelName) \(p) \(d) seed \(seed)"
                        if name.isEmpty || Int64(name) != nil {
                            throw RunnerError.configuration("label '\(template)' gives run \(run) the label '\(name)'; a label must be non-empty text that is not a number (numbers are run ids)")
                        }
                        if let other = seen[name] {
                            throw RunnerError.configuration("""
                                label '\(template)' names two runs '\(name)' (\(other); \(run)), and labels are unique; \
                                add a placeholder for what differs (\(Self.labelPlaceholders.joined(separator: ", "))), \
                                e.g. --label 'llava-{decoder}-{seed}', or run them with separate commands and labels
                                """)
                        }
                        seen[name] = run
                    }
                }
            }
        }
    }

    /// Reads an experiment file; relative paths are resolved against its folder.
    public static func load(path: String) throws -> Experiment {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RunnerError.unreadableFile(file: path, reason: "no such file or not readable")
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        return try parse(String(decoding: data, as: UTF8.self), file: path, baseFolder: folder)
    }

    public static func parse(_ text: String, file: String, baseFolder: URL? = nil) throws -> Experiment {
        var f = try YAMLFields.load(text: text, file: file)
        func resolve(_ p: String) -> String {
            let expanded = (p as NSString).expandingTildeInPath
            guard let baseFolder, !expanded.hasPrefix("/") else { return expanded }
            return baseFolder.appendingPathComponent(expanded).path
        }
        var e = Experiment()
        if let key = try f.oneOf("models", "model") { e.models = (try f.strings(key) ?? []).map(resolve) }
        if let key = try f.oneOf("protocols", "protocol") {
            e.protocols = try (f.strings(key) ?? []).map { p in
                p.contains("/") || p.hasSuffix(".yaml") || p.hasSuffix(".yml") ? resolve(p) : p
            }
        }
        if let key = try f.oneOf("decoders", "decoder"), let items = try f.list(key) {
            e.decoders = try items.enumerated().map { i, item in
                try parseDecoder(item, f: f, key: "\(f.key(key))[\(i)]")
            }
        }
        if let key = try f.oneOf("seeds", "seed"), let seeds = try f.ints(key) {
            if seeds.isEmpty { throw f.fail(key, "the list is empty") }
            if let bad = seeds.first(where: { $0 < 0 }) { throw f.fail(key, "seed \(bad) is negative") }
            e.seeds = seeds.map { UInt64($0) }
        }
        e.limit = try f.int("limit", range: 1...Int.max)
        e.images = try f.string("images").map(resolve)
        if var a = try f.mapping("annotations") {
            e.instances = (try a.strings("instances") ?? []).map(resolve)
            e.captions = (try a.strings("captions") ?? []).map(resolve)
            e.groundTruth = try a.string("chair_ground_truth").map(resolve)
            try a.rejectUnknownKeys()
        }
        e.database = try f.string("db").map(resolve)
        if let q = try f.string("quantize") {
            guard q == "q8" else { throw f.fail("quantize", "'\(q)' is not a format; use q8 or leave it out") }
            e.quantize = q
        }
        if let p = try f.string("precision") {
            guard let precision = Precision(rawValue: p) else {
                throw f.fail("precision", "'\(p)' is not a precision; use exact (the default) or fast")
            }
            e.precision = precision
        }
        e.threads = try f.int("threads", range: 1...1024)
        e.visionTower = try f.string("vision_tower").map(resolve)
        if let s = try f.string("shard") {
            do { e.shard = try Shard(parsing: s) } catch { throw f.fail("shard", "'\(s)' is not i/n with 0 ≤ i < n, e.g. 0/2") }
        }
        e.recordAttention = try f.bool("record_attention") ?? false
        e.label = try f.string("label")
        e.prefixCacheMB = try f.int("prefix_cache", range: 0...(1 << 30))
        try f.rejectUnknownKeys()
        return e
    }

    /// A decoder entry: the `NAME[:preset][,k=v]` text, or a mapping `{name:, preset:, params: {k: v}}`.
    private static func parseDecoder(_ item: Any, f: YAMLFields, key: String) throws -> DecoderChoice {
        if let text = item as? String {
            do { return try DecoderChoice(parsing: text) } catch let e as RunnerError {
                throw RunnerError.invalidField(file: f.file, key: key, problem: e.description)
            }
        }
        guard let map = item as? [String: Any] else {
            throw RunnerError.invalidField(file: f.file, key: key, problem: "expected NAME[:preset][,k=v...] or {name:, preset:, params:}")
        }
        var m = YAMLFields(file: f.file, path: key, values: map)
        let name = try m.requiredString("name", "the decoder, e.g. opera (see `mirage decoders`)")
        let preset = try m.string("preset")
        var overrides: [DecoderChoice.Override] = []
        if var p = try m.mapping("params") {
            for k in p.values.keys.sorted() {
                guard let v = try p.string(k) else { throw p.fail(k, "has no value") }
                overrides.append(.init(k, v))
            }
        }
        try m.rejectUnknownKeys()
        return DecoderChoice(name: name, preset: preset, overrides: overrides)
    }

    /// Checks what a run needs before anything is loaded.
    public func validate(registry: DecoderRegistry = .standard) throws {
        if models.isEmpty { throw RunnerError.configuration("no model: give --model DIR or `models:` in the experiment file") }
        if protocols.isEmpty { throw RunnerError.configuration("no protocol: give --protocol NAME|FILE or `protocols:` in the experiment file (`mirage run --list-protocols` lists them)") }
        if decoders.isEmpty { throw RunnerError.configuration("no decoder: give --decoder NAME[:preset][,k=v] or `decoders:` in the experiment file") }
        for d in decoders { _ = try d.makeDecoder(registry: registry) }
        for m in models where !FileManager.default.fileExists(atPath: URL(fileURLWithPath: m).appendingPathComponent("config.json").path) {
            throw RunnerError.configuration("model folder \(m) has no config.json; a model is a vision-language model folder as its family writes it (config.json, weights, tokenizer), e.g. from `mirage models synth --arch llava-llama`; `mirage models families` lists the families")
        }
    }
}
