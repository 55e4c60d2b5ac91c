import Foundation
import MirageEngine
import MirageKernels

/// `LlavaForConditionalGeneration`'s config.json: text_config, vision_config and how image features are taken.
public struct LlavaConfig: Sendable, Equatable {
    /// How `vision_feature_select_strategy` treats the first token of each selected hidden state.
    public enum FeatureSelect: String, Sendable, CaseIterable {
        /// Drop token 0 (CLIP's class token), as transformers does for "default" (with any tower).
        case `default`
        /// Keep every token.
        case full
    }

    public var text: ModelConfig
    public var vision: VisionConfig
    public var imageTokenID: Int
    /// Hidden-state indices into the tower's `hidden_states` (0 = embeddings output; negative counts from the end).
    public var featureLayers: [Int]
    public var featureSelect: FeatureSelect
    public var projectorActivation: GeluKind
    public var projectorBias: Bool

    public init(text: ModelConfig, vision: VisionConfig, imageTokenID: Int, featureLayers: [Int],
                featureSelect: FeatureSelect, projectorActivation: GeluKind = .erf, projectorBias: Bool = true) {
        self.text = text
        self.vision = vision
        self.imageTokenID = imageTokenID
        self.featureLayers = featureLayers
        self.featureSelect = featureSelect
        self.projectorActivation = projectorActivation
        self.projectorBias = projectorBias
    }

    /// Reads and validates a LLaVA `config.json` (see `ConfigLimits`).
    public static func load(from url: URL) throws -> LlavaConfig {
        try LlavaConfig(json: try readJSON(from: url), path: url.path)
    }

    /// The config file's JSON object, or an error saying why it cannot be read (missing, a directory,
    /// not JSON, not an object).
    public static func readJSON(from url: URL) throws -> [String: Any] {
        try JSONSerialization.configObject(
            at: url, hint: "A LLaVA model folder needs the config.json written with its weights.")
    }

    /// True when a config.json object describes a LLaVA model (`model_type: llava` or the architecture name).
    public static func isLlava(_ json: [String: Any]) -> Bool {
        (json["model_type"] as? String) == "llava"
            || ((json["architectures"] as? [String])?.contains("LlavaForConditionalGeneration") ?? false)
    }

    public init(json: [String: Any], path: String = "config.json") throws {
        let fields = JSONFields(object: json, path: path)
        guard var textJSON = json["text_config"] as? [String: Any] else {
            throw ModelError.badConfig(path: path, field: "text_config", detail: "is missing (not a LLaVA config.json?)")
        }
        textJSON = Self.withTextDefaults(textJSON)
        let text = try ModelConfig(json: textJSON, path: path, prefix: "text_config.")
        let vision = try VisionConfig(json: (json["vision_config"] as? [String: Any]) ?? [:], path: path, prefix: "vision_config.")
        // transformers 4 wrote image_token_index, 5 writes image_token_id; LlavaConfig's default is 32000.
        let imageToken = try fields.optionalInt("image_token_id") ?? fields.optionalInt("image_token_index") ?? 32000
        var layers = try fields.intOrList("vision_feature_layer")
        if layers.isEmpty { layers = [-2] }   // LlavaConfig default
        let selectName = (json["vision_feature_select_strategy"] as? String) ?? "default"
        guard let select = FeatureSelect(rawValue: selectName) else {
            throw ModelError.badConfig(path: path, field: "vision_feature_select_strategy",
                                       detail: "is '\(selectName)'; transformers accepts default or full")
        }
        let actName = (json["projector_hidden_act"] as? String) ?? "gelu"
        guard let act = GeluKind(huggingFaceName: actName) else {
            throw ModelError.badConfig(path: path, field: "projector_hidden_act",
                                       detail: "is '\(actName)'; Mirage implements gelu, quick_gelu and the tanh GELUs")
        }
        self.init(text: text, vision: vision, imageTokenID: imageToken, featureLayers: layers, featureSelect: select,
                  projectorActivation: act, projectorBias: (json["multimodal_projector_bias"] as? Bool) ?? true)
        try validate(path: path)
    }

    /// Published LLaVA configs keep only the fields that differ from transformers' LlamaConfig /
    /// Qwen2Config defaults (llava-1.5-7b-hf's text_config has no hidden_size); these are those defaults
    /// (transformers 5.24 configuration_llama.py / configuration_qwen2.py).
    static func withTextDefaults(_ json: [String: Any]) -> [String: Any] {
        var out = json
        let type = (json["model_type"] as? String) ?? "llama"
        let defaults: [String: Any] = type == "qwen2"
            ? ["hidden_size": 4096, "intermediate_size": 22016, "num_hidden_layers": 32, "num_attention_heads": 32,
               "num_key_value_heads": 32, "vocab_size": 151936, "max_position_embeddings": 32768, "rms_norm_eps": 1e-6,
               "model_type": "qwen2"]
            : ["hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
               "vocab_size": 32000, "max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "model_type": "llama"]
        for (key, value) in defaults where out[key] == nil || out[key] is NSNull { out[key] = value }
        return out
    }

    /// `featureLayers` as non-negative indices into the tower's `numLayers + 1` hidden states
    /// (`validate` has checked them for a config read from a file).
    public func resolvedFeatureLayers() throws -> [Int] {
        let count = vision.numLayers + 1
        return try featureLayers.map { layer in
            let index = layer < 0 ? layer + count : layer
            guard index >= 0 && index < count else {
                throw ModelError.badConfig(path: "config.json", field: "vision_feature_layer",
                                           detail: "has \(layer), but the tower has \(count) hidden states: it must be in \(-count)...\(count - 1)")
            }
            return index
        }
    }

    /// Image tokens per image: the tower's tokens, minus the first for the "default" strategy. Equal to
    /// the HF processor's `(size/patch)² + num_additional_image_tokens − (strategy == "default")` when the
    /// processor is configured for the model (num_additional_image_tokens = 1 for CLIP, 0 for SigLIP).
    public var imageTokenCount: Int { vision.sequenceLength - (featureSelect == .default ? 1 : 0) }
}

extension LlavaConfig: ValidatedConfig {
    /// The text decoder (`text_config.`), the tower (`vision_config.`) and the projector's own fields.
    public func validate(_ v: ConfigValidator) throws {
        try text.validate(v.nested("text_config"))
        try vision.validate(v.nested("vision_config"))
        guard imageTokenID >= 0 && imageTokenID < text.vocabSize else {
            throw v.fail("image_token_id", "is \(imageTokenID); it must be a token of the text vocabulary, 0...\(text.vocabSize - 1)")
        }
        try v.count("vision_feature_layer (number of layers)", featureLayers.count, in: ConfigLimits.featureLayers)
        let count = vision.numLayers + 1
        for layer in featureLayers where !(-count..<count).contains(layer) {
            throw v.fail("vision_feature_layer", "has \(layer), but the tower has \(count) hidden states: "
                         + "it must be in \(-count)...\(count - 1)")
        }
    }
}
