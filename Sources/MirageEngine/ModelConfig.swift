import Foundation

/// The decoder architectures Mirage runs (config.json `architectures[0]` / `model_type`).
public enum Architecture: String, Sendable, CaseIterable {
    case llama = "LlamaForCausalLM"
    case qwen2 = "Qwen2ForCausalLM"

    public var modelType: String {
        switch self {
        case .llama: return "llama"
        case .qwen2: return "qwen2"
        }
    }
}

/// RoPE frequency scaling, as transformers' `rope_parameters` (v5) or `rope_scaling` (v4) describe it.
public enum RopeScaling: Sendable, Equatable {
    case none
    /// Positions divided by `factor` (inverse frequencies divided by it).
    case linear(factor: Double)
    /// Llama 3.1's band-wise scaling.
    case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositions: Int)
    /// NTK-aware base growth once the sequence exceeds `max_position_embeddings`.
    case dynamic(factor: Double)
}

/// What Mirage needs from `config.json`. Reads both layouts found in the wild: transformers 5's
/// (`rope_parameters`, `dtype`) and the older one (`rope_theta`, `rope_scaling`, `torch_dtype`).
public struct ModelConfig: Sendable, Equatable {
    public var architecture: Architecture
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var numKVHeads: Int
    public var headDim: Int
    public var vocabSize: Int
    public var rmsNormEps: Float
    public var maxPositionEmbeddings: Int
    public var tieWordEmbeddings: Bool
    public var ropeTheta: Double
    public var ropeScaling: RopeScaling
    /// Biases on q/k/v (Qwen2 always; Llama when `attention_bias`, which also adds one to o_proj).
    public var qkvBias: Bool
    public var outputBias: Bool
    public var mlpBias: Bool
    /// The dtype the checkpoint declares (`dtype` or `torch_dtype`), if any.
    public var declaredDType: String?
    public var bosTokenID: Int?
    public var eosTokenIDs: [Int]
    /// The MLP's activation (`hidden_act`); Llama and Qwen2 use SiLU.
    public var hiddenActivation: String

    public init(architecture: Architecture, hiddenSize: Int, intermediateSize: Int, numLayers: Int,
                numHeads: Int, numKVHeads: Int, headDim: Int? = nil, vocabSize: Int, rmsNormEps: Float = 1e-6,
                maxPositionEmbeddings: Int = 2048, tieWordEmbeddings: Bool, ropeTheta: Double = 10000,
                ropeScaling: RopeScaling = .none, declaredDType: String? = nil,
                bosTokenID: Int? = nil, eosTokenIDs: [Int] = []) {
        self.architecture = architecture
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.numKVHeads = numKVHeads
        // Out-of-range counts are left for `validate` to report; nothing here may trap on them.
        self.headDim = headDim ?? (numHeads > 0 ? hiddenSize / numHeads : 0)
        self.vocabSize = vocabSize
        self.rmsNormEps = rmsNormEps
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.tieWordEmbeddings = tieWordEmbeddings
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.qkvBias = architecture == .qwen2
        self.outputBias = false
        self.mlpBias = false
        self.declaredDType = declaredDType
        self.bosTokenID = bosTokenID
        self.eosTokenIDs = eosTokenIDs
        self.hiddenActivation = "silu"
    }

    /// The longest sequence the model is meant to run: `max_position_embeddings`, times the factor of
    /// `dynamic` RoPE scaling (which exists to run past it).
    public var contextLength: Int {
        if case let .dynamic(factor) = ropeScaling, factor > 1 {
            let scaled = Double(maxPositionEmbeddings) * factor
            return scaled < Double(1 << 40) ? Int(scaled) : 1 << 40
        }
        return maxPositionEmbeddings
    }

    /// Reads and validates `config.json` (see `ConfigLimits`).
    public static func load(from url: URL) throws -> ModelConfig {
        let object = try JSONSerialization.configObject(
            at: url, hint: "A model folder needs the config.json written with its weights.")
        return try ModelConfig(json: object, path: url.path)
    }

    /// Parses and validates a decoder config; `prefix` names the object it sits in (LLaVA's "text_config."),
    /// so errors name the field as the file spells it.
    public init(json: [String: Any], path: String = "config.json", prefix: String = "") throws {
        let reader = JSONFields(object: json, path: path, prefix: prefix)
        let archName: String
        if let archs = json["architectures"] as? [String], let first = archs.first {
            archName = first
        } else if let modelType = json["model_type"] as? String,
                  let arch = Architecture.allCases.first(where: { $0.modelType == modelType }) {
            archName = arch.rawValue
        } else {
            throw ModelError.badConfig(path: path, field: prefix + "architectures", detail: "is missing (and model_type is unknown)")
        }
        guard let architecture = Architecture(rawValue: archName) else {
            throw ModelError.unsupportedArchitecture(archName)
        }
        let hidden = try reader.int("hidden_size")
        let heads = try reader.int("num_attention_heads")
        self.init(
            architecture: architecture,
            hiddenSize: hidden,
            intermediateSize: try reader.int("intermediate_size"),
            numLayers: try reader.int("num_hidden_layers"),
            numHeads: heads,
            numKVHeads: try reader.optionalInt("num_key_value_heads") ?? heads,
            headDim: try reader.optionalInt("head_dim"),
            vocabSize: try reader.int("vocab_size"),
            rmsNormEps: Float(try reader.optionalDouble("rms_norm_eps") ?? 1e-6),
            maxPositionEmbeddings: try reader.optionalInt("max_position_embeddings") ?? 2048,
            tieWordEmbeddings: (json["tie_word_embeddings"] as? Bool) ?? false,
            declaredDType: (json["dtype"] as? String) ?? (json["torch_dtype"] as? String),
            bosTokenID: try reader.optionalInt("bos_token_id"),
            eosTokenIDs: try reader.intOrList("eos_token_id"))
        if architecture == .llama {
            let attentionBias = (json["attention_bias"] as? Bool) ?? false
            qkvBias = attentionBias
            outputBias = attentionBias
            mlpBias = (json["mlp_bias"] as? Bool) ?? false
        }
        if let act = json["hidden_act"], !(act is NSNull) {
            guard let name = act as? String else {
                throw ModelError.badConfig(path: path, field: prefix + "hidden_act", detail: "must be a string such as \"silu\"")
            }
            hiddenActivation = name
        }
        if architecture == .qwen2, (json["use_sliding_window"] as? Bool) == true {
            throw ModelError.badConfig(path: path, field: prefix + "use_sliding_window",
                                       detail: "is true; Mirage implements full attention only")
        }
        // RoPE: transformers 5 nests everything in `rope_parameters`; older configs have top-level
        // `rope_theta` and an optional `rope_scaling` dict whose kind is `rope_type` (or legacy `type`).
        let rope: [String: Any]?
        if let params = json["rope_parameters"] as? [String: Any] {
            rope = params
            ropeTheta = try JSONFields(object: params, path: path, prefix: prefix + "rope_parameters.").optionalDouble("rope_theta")
                ?? reader.optionalDouble("rope_theta") ?? 10000
        } else {
            rope = json["rope_scaling"] as? [String: Any]
            ropeTheta = try reader.optionalDouble("rope_theta") ?? 10000
        }
        // rope_theta is checked here as well as in `validate`, so the error names where the file keeps it.
        try ConfigValidator(path: path, prefix: prefix + (json["rope_parameters"] is [String: Any] ? "rope_parameters." : ""))
            .positive("rope_theta", ropeTheta, max: ConfigLimits.ropeThetaMax)
        ropeScaling = try Self.parseScaling(rope, path: path,
                                            prefix: prefix + (json["rope_parameters"] != nil ? "rope_parameters." : "rope_scaling."))
        try validate(path: path, prefix: prefix)
    }

    private static func parseScaling(_ rope: [String: Any]?, path: String, prefix: String) throws -> RopeScaling {
        guard let rope else { return .none }
        let fields = JSONFields(object: rope, path: path, prefix: prefix)
        let kind = (rope["rope_type"] as? String) ?? (rope["type"] as? String) ?? "default"
        switch kind {
        case "default":
            return .none
        case "linear":
            return .linear(factor: try fields.double("factor"))
        case "dynamic":
            return .dynamic(factor: try fields.double("factor"))
        case "llama3":
            return .llama3(factor: try fields.double("factor"),
                           lowFreqFactor: try fields.double("low_freq_factor"),
                           highFreqFactor: try fields.double("high_freq_factor"),
                           originalMaxPositions: try fields.int("original_max_position_embeddings"))
        default:
            throw ModelError.unsupportedRopeType(kind)
        }
    }

    /// The config in the layout transformers 5 writes (used by `mirage models synth`).
    public func transformers5JSON() -> [String: Any] {
        var rope: [String: Any] = ["rope_theta": ropeTheta]
        switch ropeScaling {
        case .none: rope["rope_type"] = "default"
        case let .linear(f): rope["rope_type"] = "linear"; rope["factor"] = f
        case let .dynamic(f): rope["rope_type"] = "dynamic"; rope["factor"] = f
        case let .llama3(f, lo, hi, orig):
            rope["rope_type"] = "llama3"; rope["factor"] = f; rope["low_freq_factor"] = lo
            rope["high_freq_factor"] = hi; rope["original_max_position_embeddings"] = orig
        }
        var json: [String: Any] = [
            "architectures": [architecture.rawValue],
            "model_type": architecture.modelType,
            "hidden_act": hiddenActivation,
            "hidden_size": hiddenSize,
            "intermediate_size": intermediateSize,
            "num_hidden_layers": numLayers,
            "num_attention_heads": numHeads,
            "num_key_value_heads": numKVHeads,
            "head_dim": headDim,
            "vocab_size": vocabSize,
            "rms_norm_eps": Double(rmsNormEps),
            "max_position_embeddings": maxPositionEmbeddings,
            "tie_word_embeddings": tieWordEmbeddings,
            "rope_parameters": rope,
            "use_cache": true,
            "attention_dropout": 0.0,
        ]
        if let declaredDType { json["dtype"] = declaredDType }
        if let bosTokenID { json["bos_token_id"] = bosTokenID }
        if let eos = eosTokenIDs.first { json["eos_token_id"] = eosTokenIDs.count == 1 ? eos : eosTokenIDs }
        switch architecture {
        case .llama:
            json["attention_bias"] = qkvBias
            json["mlp_bias"] = mlpBias
        case .qwen2:
            json["use_sliding_window"] = false
            json["sliding_window"] = NSNull()
            json["max_window_layers"] = numLayers
        }
        return json
    }
}

/// `generation_config.json`: the token ids generation stops at and starts with.
public struct GenerationConfig: Sendable, Equatable {
    public var bosTokenID: Int?
    public var eosTokenIDs: [Int]
    public var padTokenID: Int?

    public init(bosTokenID: Int? = nil, eosTokenIDs: [Int] = [], padTokenID: Int? = nil) {
        self.bosTokenID = bosTokenID
        self.eosTokenIDs = eosTokenIDs
        self.padTokenID = padTokenID
    }

    /// Reads the file when present; returns nil when the folder has none.
    public static func load(from url: URL) throws -> GenerationConfig? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let object = try JSONSerialization.configObject(at: url, hint: "")
        let fields = JSONFields(object: object, path: url.path)
        return GenerationConfig(bosTokenID: try fields.optionalInt("bos_token_id"),
                                eosTokenIDs: try fields.intOrList("eos_token_id"),
                                padTokenID: try fields.optionalInt("pad_token_id"))
    }
}

/// Typed access to JSON fields with errors naming the file and field.
public struct JSONFields {
    public let object: [String: Any]
    public let path: String
    /// The nested object's name as errors spell fields, e.g. "text_config.".
    public var prefix = ""

    public init(object: [String: Any], path: String, prefix: String = "") {
        self.object = object
        self.path = path
        self.prefix = prefix
    }

    private func bad(_ key: String, _ detail: String) -> ModelError {
        .badConfig(path: path, field: prefix + key, detail: detail)
    }

    /// An integer as JSON writes it; a whole float (2.0) counts, a float beyond Int's range or a fraction does not.
    public static func integer(_ value: Any) -> Int? {
        if let n = value as? Int { return n }
        if let d = value as? Double, d.rounded() == d { return Int(exactly: d) }
        return nil
    }

    public func optionalInt(_ key: String) throws -> Int? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard let n = Self.integer(value) else {
            throw bad(key, "is \(value); it must be an integer between \(Int.min) and \(Int.max)")
        }
        return n
    }

    public func int(_ key: String) throws -> Int {
        guard let n = try optionalInt(key) else { throw bad(key, "is missing") }
        return n
    }

    public func optionalDouble(_ key: String) throws -> Double? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        if let d = value as? Double { return d }
        if let n = value as? Int { return Double(n) }
        throw bad(key, "must be a number")
    }

    public func double(_ key: String) throws -> Double {
        guard let d = try optionalDouble(key) else { throw bad(key, "is missing") }
        return d
    }

    public func intOrList(_ key: String) throws -> [Int] {
        if let list = object[key] as? [Any] {
            return try list.map { v in
                guard let n = Self.integer(v) else { throw bad(key, "must be an integer or a list of integers") }
                return n
            }
        }
        return try optionalInt(key).map { [$0] } ?? []
    }
}
