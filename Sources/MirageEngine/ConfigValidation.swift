import Foundation
import MirageImaging

/// The bounds every model config is checked against before anything is allocated from it. They are far
/// above any published checkpoint (Llama 3.1 405B: hidden 16384, 126 layers, 128 heads, vocab 128256) and
/// far below what would overflow the size arithmetic: the largest product the engine forms from them
/// (vocab × hidden, layers × kv width × positions) stays well inside `Int`.
public enum ConfigLimits {
    public static let hiddenSize = 1...(1 << 16)
    public static let intermediateSize = 1...(1 << 20)
    public static let layers = 1...1024
    public static let heads = 1...1024
    public static let headDim = 2...1024
    public static let vocabSize = 1...(1 << 22)
    public static let maxPositionEmbeddings = 1...(1 << 24)
    /// RoPE base: positive and finite; published models use 10⁴ to 10⁸.
    public static let ropeThetaMax = 1e12
    /// RMSNorm / LayerNorm epsilon: positive and below 1 (published models use 1e-12 to 1e-5).
    public static let epsMax = 1.0
    /// RoPE scaling factors (linear, dynamic, llama3).
    public static let ropeFactorMax = 1e6
    /// Image sides in pixels (`image_size`, and the preprocessor's sizes: `ImagePreprocessorConfig.sizeLimits`).
    public static let imageSize = ImagePreprocessorConfig.sizeLimits
    /// Patches per image side (image_size / patch_size): at most 256, i.e. 65,536 patches per image.
    public static let patchesPerSide = 1...256
    /// Hidden states a LLaVA projector may concatenate (`vision_feature_layer` as a list).
    public static let featureLayers = 1...64
    /// Activations the text decoders implement (transformers' ACT2FN names; "swish" is SiLU there too).
    public static let textActivations = ["silu", "swish"]
}

/// A model config that can check itself against `ConfigLimits`. Each kind of config (text decoder, vision
/// tower, LLaVA's projector and whatever is added next, e.g. a Q-Former) states its rules in its own
/// `validate(_:)`, and a composite config validates its parts with `validator.nested("part_config")`, so
/// every error names the full field path.
public protocol ValidatedConfig {
    /// Throws `ModelError.badConfig` naming the file, the field and its allowed range for the first
    /// field out of bounds or inconsistent with another.
    func validate(_ validator: ConfigValidator) throws
}

extension ValidatedConfig {
    /// Validates the config read from `path`; `prefix` names the object it came from ("text_config.").
    public func validate(path: String, prefix: String = "") throws {
        try validate(ConfigValidator(path: path, prefix: prefix))
    }
}

/// The checks configs are built from. Every failure is a `ModelError.badConfig` whose field carries the
/// prefix of the nested object (`vision_config.patch_size`) and whose detail says the value and what is allowed.
public struct ConfigValidator: Sendable {
    public let path: String
    public let prefix: String

    public init(path: String, prefix: String = "") {
        self.path = path
        self.prefix = prefix
    }

    /// The validator of a nested object, e.g. `nested("vision_config")`.
    public func nested(_ name: String) -> ConfigValidator {
        ConfigValidator(path: path, prefix: prefix + name + ".")
    }

    public func fail(_ field: String, _ detail: String) -> ModelError {
        .badConfig(path: path, field: prefix + field, detail: detail)
    }

    /// An integer inside `range`.
    public func count(_ field: String, _ value: Int, in range: ClosedRange<Int>) throws {
        guard range.contains(value) else {
            throw fail(field, "is \(value); it must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
    }

    /// A finite number above 0 and at most `max` (below it when `inclusive` is false).
    public func positive(_ field: String, _ value: Double, max: Double, inclusive: Bool = true) throws {
        let inside = value.isFinite && value > 0 && (inclusive ? value <= max : value < max)
        guard inside else {
            throw fail(field, "is \(value); it must be a number above 0 and \(inclusive ? "at most" : "below") \(max)")
        }
    }

    /// `value` (of `field`) is a multiple of `divisor` (of `divisorField`); both are positive when this runs.
    public func divisible(_ field: String, _ value: Int, by divisorField: String, _ divisor: Int) throws {
        guard divisor > 0, value % divisor == 0 else {
            throw fail(field, "is \(value), which is not a multiple of \(prefix + divisorField) (\(divisor)); "
                       + "it must be divisible by it")
        }
    }

    /// The four sizes every transformer stack has (text decoder and vision tower alike), checked in this
    /// order under their config.json names: hidden_size, intermediate_size, num_hidden_layers, num_attention_heads.
    public func transformerStack(hiddenSize: Int, intermediateSize: Int, layers: Int, heads: Int) throws {
        try count("hidden_size", hiddenSize, in: ConfigLimits.hiddenSize)
        try count("intermediate_size", intermediateSize, in: ConfigLimits.intermediateSize)
        try count("num_hidden_layers", layers, in: ConfigLimits.layers)
        try count("num_attention_heads", heads, in: ConfigLimits.heads)
    }

    /// A name from a fixed list.
    public func oneOf(_ field: String, _ value: String, _ allowed: [String]) throws {
        guard allowed.contains(value) else {
            throw fail(field, "is '\(value)'; Mirage implements \(allowed.joined(separator: ", "))")
        }
    }
}

extension ModelConfig: ValidatedConfig {
    public func validate(_ v: ConfigValidator) throws {
        try v.transformerStack(hiddenSize: hiddenSize, intermediateSize: intermediateSize,
                               layers: numLayers, heads: numHeads)
        try v.count("num_key_value_heads", numKVHeads, in: 1...numHeads)
        try v.divisible("num_attention_heads", numHeads, by: "num_key_value_heads", numKVHeads)
        try v.count("head_dim", headDim, in: ConfigLimits.headDim)
        guard headDim % 2 == 0 else { throw v.fail("head_dim", "is \(headDim); RoPE needs an even head_dim") }
        try v.count("vocab_size", vocabSize, in: ConfigLimits.vocabSize)
        try v.count("max_position_embeddings", maxPositionEmbeddings, in: ConfigLimits.maxPositionEmbeddings)
        try v.positive("rms_norm_eps", Double(rmsNormEps), max: ConfigLimits.epsMax, inclusive: false)
        try v.positive("rope_theta", ropeTheta, max: ConfigLimits.ropeThetaMax)
        try v.oneOf("hidden_act", hiddenActivation, ConfigLimits.textActivations)
        switch ropeScaling {
        case .none:
            break
        case let .linear(factor), let .dynamic(factor):
            try v.positive("rope_scaling.factor", factor, max: ConfigLimits.ropeFactorMax)
        case let .llama3(factor, low, high, original):
            try v.positive("rope_scaling.factor", factor, max: ConfigLimits.ropeFactorMax)
            try v.positive("rope_scaling.low_freq_factor", low, max: ConfigLimits.ropeFactorMax)
            try v.positive("rope_scaling.high_freq_factor", high, max: ConfigLimits.ropeFactorMax)
            guard high > low else {
                throw v.fail("rope_scaling.high_freq_factor",
                             "is \(high); it must be above rope_scaling.low_freq_factor (\(low))")
            }
            try v.count("rope_scaling.original_max_position_embeddings", original, in: ConfigLimits.maxPositionEmbeddings)
        }
    }
}

extension VisionConfig: ValidatedConfig {
    public func validate(_ v: ConfigValidator) throws {
        try v.transformerStack(hiddenSize: hiddenSize, intermediateSize: intermediateSize,
                               layers: numLayers, heads: numHeads)
        try v.divisible("hidden_size", hiddenSize, by: "num_attention_heads", numHeads)
        try v.count("image_size", imageSize, in: ConfigLimits.imageSize)
        try v.count("patch_size", patchSize, in: 1...imageSize)
        try v.divisible("image_size", imageSize, by: "patch_size", patchSize)
        try v.count("image_size / patch_size", imageSize / patchSize, in: ConfigLimits.patchesPerSide)
        guard numChannels == 3 else {
            throw v.fail("num_channels", "is \(numChannels); it must be 3 (Mirage feeds the tower RGB images)")
        }
        try v.positive("layer_norm_eps", Double(layerNormEps), max: ConfigLimits.epsMax, inclusive: false)
    }
}

extension QFormerConfig: ValidatedConfig {
    /// The BLIP-2 Q-Former's BERT stack, its cross-attention input and its instruction embeddings.
    public func validate(_ v: ConfigValidator) throws {
        try v.transformerStack(hiddenSize: hiddenSize, intermediateSize: intermediateSize,
                               layers: numLayers, heads: numHeads)
        try v.divisible("hidden_size", hiddenSize, by: "num_attention_heads", numHeads)
        try v.count("cross_attention_frequency", crossAttentionFrequency, in: ConfigLimits.layers)
        try v.count("encoder_hidden_size", encoderHiddenSize, in: ConfigLimits.hiddenSize)
        try v.count("vocab_size", vocabSize, in: ConfigLimits.vocabSize)
        try v.count("max_position_embeddings", maxPositionEmbeddings, in: ConfigLimits.maxPositionEmbeddings)
        try v.positive("layer_norm_eps", Double(layerNormEps), max: ConfigLimits.epsMax, inclusive: false)
    }
}

extension BlipVisionConfig: ValidatedConfig {
    /// EVA ViT-g's sizes are the CLIP-style tower's (`encoderConfig`), plus its final LayerNorm's eps.
    public func validate(_ v: ConfigValidator) throws {
        try encoderConfig.validate(v)
        try v.positive("layer_norm_eps (final)", Double(finalLayerNormEps), max: ConfigLimits.epsMax, inclusive: false)
    }
}

extension JSONSerialization {
    /// The JSON object in a model folder's config file, with errors that say what is wrong with it:
    /// missing, a directory or unreadable, not JSON (with the parser's reason), or JSON but not an object.
    public static func configObject(at url: URL, hint: String) throws -> [String: Any] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw ModelError.fileNotFound(path: url.path, hint: hint)
        }
        if isDirectory.boolValue {
            throw ModelError.cannotOpen(path: url.path, reason: "it is a directory, not a file")
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ModelError.cannotOpen(path: url.path, reason: (error as NSError).localizedDescription)
        }
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: data) } catch {
            throw ModelError.unreadableConfig(path: url.path, detail: "it is not valid JSON (\(jsonErrorReason(error)))")
        }
        guard let object = json as? [String: Any] else {
            throw ModelError.unreadableConfig(path: url.path, detail: "it holds JSON but not an object ({...})")
        }
        return object
    }

    /// The parser's own explanation (Foundation puts it in the underlying error's debug description).
    private static func jsonErrorReason(_ error: Error) -> String {
        let ns = error as NSError
        if let debug = ns.userInfo[NSDebugDescriptionErrorKey] as? String, !debug.isEmpty { return debug }
        return ns.localizedDescription
    }
}
