import Foundation
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

/// The image features of one image, projected into the language model's embedding space: one row of
/// `width` (= text hidden size) floats per image token. Compute once, reuse across prompts and decoders.
public struct ImageEmbedding: Sendable, Equatable {
    public let tokenCount: Int
    public let width: Int
    /// tokenCount × width, row-major.
    public let values: [Float]

    public init(tokenCount: Int, width: Int, values: [Float]) {
        precondition(values.count == tokenCount * width, "ImageEmbedding: \(tokenCount) × \(width) values expected")
        self.tokenCount = tokenCount
        self.width = width
        self.values = values
    }

    /// Row `i` (image token i).
    public func row(_ i: Int) -> [Float] { Array(values[i * width..<(i + 1) * width]) }

    /// The rows as `.embedding` prompt items.
    public var promptItems: [PromptItem] { (0..<tokenCount).map { .embedding(row($0)) } }
}

/// A prompt with one image: the items to feed a session, where the image rows are, and where the model's
/// response begins (the first generated token's position), so decoders never count positions by hand.
public struct MultimodalPrompt: Sendable, Equatable {
    /// Token ids with the image token repeated once per image row (what transformers' processor produces).
    public let tokenIDs: [Int]
    /// `tokenIDs` with the image-token run replaced by the image embedding rows.
    public let items: [PromptItem]
    /// Positions of the image rows.
    public let imageSpan: Range<Int>
    /// Position of the first response token (= the prompt length).
    public var responseStart: Int { items.count }

    /// Substitutes `image` for the run of `imageTokenID` in `tokenIDs` (which must hold exactly
    /// `image.tokenCount` of them, consecutive), as LLaVA's forward scatters image features into the
    /// image-token positions.
    public init(tokenIDs: [Int], imageTokenID: Int, image: ImageEmbedding) throws {
        let positions = tokenIDs.indices.filter { tokenIDs[$0] == imageTokenID }
        guard positions.count == image.tokenCount, let first = positions.first,
              positions.last! - first + 1 == positions.count else {
            throw ModelError.invalidInput(
                "the prompt has \(positions.count) image tokens (id \(imageTokenID))\(positions.isEmpty ? "" : " ") but the image has "
                + "\(image.tokenCount) rows: expand the image placeholder to exactly \(image.tokenCount) consecutive image tokens "
                + "(LlavaForConditionalGeneration.prompt does it)")
        }
        self.tokenIDs = tokenIDs
        imageSpan = first..<(first + image.tokenCount)
        var items = tokenIDs.map { PromptItem.token($0) }
        for i in 0..<image.tokenCount { items[first + i] = .embedding(image.row(i)) }
        self.items = items
    }
}

/// transformers' `LlavaForConditionalGeneration` for inference: a CLIP or SigLIP tower, the 2-layer GELU
/// projector and a Llama or Qwen2 decoder (`languageModel`, a plain `LanguageModel`: sessions, decoders and
/// attention edits work on it unchanged).
public final class LlavaForConditionalGeneration: @unchecked Sendable {
    public let config: LlavaConfig
    public let vision: any VisionTower
    public let languageModel: LanguageModel
    let projector1: Projection
    let projector2: Projection
    let featureLayers: [Int]

    /// Opens a LLaVA folder (config.json, safetensors, optional generation_config.json) in either tensor
    /// layout: published / transformers 4 (`language_model.model.*`, `language_model.lm_head.weight`,
    /// `vision_tower.vision_model.*`, `multi_modal_projector.*`) or transformers 5 (`model.language_model.*`
    /// or `language_model.model.*` with `lm_head.weight`, `vision_tower.*` without `vision_model.`).
    public convenience init(folder: URL, options: LoadOptions = LoadOptions()) throws {
        let config = try LlavaConfig.load(from: folder.appendingPathComponent("config.json"))
        let generation = try GenerationConfig.load(from: folder.appendingPathComponent("generation_config.json"))
        try self.init(config: config, generationConfig: generation, tensors: TensorStore(folder: folder), options: options)
    }

    public init(config: LlavaConfig, generationConfig: GenerationConfig?, tensors: TensorStore,
                options: LoadOptions = LoadOptions()) throws {
        try config.validate(path: URL(fileURLWithPath: tensors.folder).appendingPathComponent("config.json").path)
        // The vision tower and the projector follow the decoder's precision (`LoadOptions.precision`).
        var store = tensors
        store.precision = options.precision
        self.config = config
        featureLayers = try config.resolvedFeatureLayers()
        let naming = try Self.languageModelNaming(in: store)
        languageModel = try LanguageModel(config: config.text, generationConfig: generationConfig, tensors: store,
                                          naming: naming, options: options)
        vision = try loadVisionTower(config: config.vision, store: store, pool: languageModel.pool)
        let projectorPrefix = ["multi_modal_projector.", "model.multi_modal_projector."]
            .first { store.entry($0 + "linear_1.weight") != nil } ?? "multi_modal_projector."
        let inputs = config.vision.hiddenSize * featureLayers.count, hidden = config.text.hiddenSize
        func projection(_ name: String, rows: Int, cols: Int) throws -> Projection {
            Projection(weight: try store.matrix(projectorPrefix + name + ".weight", rows: rows, cols: cols),
                       bias: config.projectorBias ? try store.vector(projectorPrefix + name + ".bias", count: rows) : nil)
        }
        projector1 = try projection("linear_1", rows: hidden, cols: inputs)
        projector2 = try projection("linear_2", rows: hidden, cols: hidden)
    }

    /// The decoder's tensor names in the checkpoint (see `init(folder:)`).
    static func languageModelNaming(in store: TensorStore) throws -> TensorNaming {
        for body in ["language_model.model.", "model.language_model.", "language_model."] {
            guard store.entry(body + "embed_tokens.weight") != nil else { continue }
            let heads = ["language_model.lm_head.weight", "lm_head.weight"]
            let head = heads.first { store.entry($0) != nil } ?? heads[body == "language_model.model." ? 0 : 1]
            return TensorNaming(body: body, lmHead: head)
        }
        throw ModelError.missingTensor(tensor: "language_model.model.embed_tokens.weight (or model.language_model.embed_tokens.weight)",
                                       folder: store.folder)
    }

    /// Image tokens per image (see `LlavaConfig.imageTokenCount`).
    public var imageTokenCount: Int { config.imageTokenCount }

    /// The selected vision features before the projector (transformers' `selected_image_feature`):
    /// `imageTokenCount × (visionHidden · featureLayers.count)`, row-major.
    public func selectedVisionFeatures(_ pixels: PixelTensor) throws -> [Float] {
        let unique = Array(Set(featureLayers)).sorted()
        let states = try vision.hiddenStates(pixels, layers: unique)
        let h = config.vision.hiddenSize, skip = config.featureSelect == .default ? 1 : 0
        let rows = config.vision.sequenceLength - skip, width = h * featureLayers.count
        var out = [Float](repeating: 0, count: rows * width)
        for (slot, layer) in featureLayers.enumerated() {
            let state = states[unique.firstIndex(of: layer)!]
            for r in 0..<rows {
                out.withUnsafeMutableBufferPointer { o in
                    state.withUnsafeBufferPointer { s in
                        (o.baseAddress! + r * width + slot * h).update(from: s.baseAddress! + (r + skip) * h, count: h)
                    }
                }
            }
        }
        return out
    }

    /// Encodes one image: tower, feature selection, projector (linear_1 → GELU → linear_2).
    public func embedImage(_ pixels: PixelTensor) throws -> ImageEmbedding {
        let features = try selectedVisionFeatures(pixels)
        let rows = imageTokenCount, hidden = config.text.hiddenSize
        var middle = [Float](repeating: 0, count: rows * hidden)
        var out = middle
        features.withUnsafeBufferPointer { x in middle.withUnsafeMutableBufferPointer { y in
            languageModel.linearRows(x.baseAddress!, rows: rows, weight: projector1.weight, bias: projector1.bias, into: y.baseAddress!)
        }}
        middle.withUnsafeMutableBufferPointer { y in
            Kernels.gelu(y.baseAddress!, count: rows * hidden, approximation: config.projectorActivation)
        }
        middle.withUnsafeBufferPointer { x in out.withUnsafeMutableBufferPointer { y in
            languageModel.linearRows(x.baseAddress!, rows: rows, weight: projector2.weight, bias: projector2.bias, into: y.baseAddress!)
        }}
        return ImageEmbedding(tokenCount: rows, width: hidden, values: out)
    }

    /// Decodes an image file (JPEG/PNG) and preprocesses it with the folder's preprocessor_config.json
    /// (Pillow-exact resize/crop, rescale, normalize); `padToSquare` applies LLaVA's `expand2square` first.
    public func pixels(ofImageAt path: String, padToSquare: Bool = false) throws -> PixelTensor {
        guard let folder = languageModel.folder else {
            throw ModelError.invalidInput("this model was not loaded from a folder, so it has no preprocessor_config.json")
        }
        let preprocessor = ImagePreprocessor(config: try ImagePreprocessorConfig.load(modelDirectory: folder.path))
        return try preprocessor.process(try ImageDecoder.load(path: path), padToSquare: padToSquare)
    }

    /// A prompt from token ids that already hold the expanded image-token run.
    public func prompt(tokenIDs: [Int], image: ImageEmbedding) throws -> MultimodalPrompt {
        try MultimodalPrompt(tokenIDs: tokenIDs, imageTokenID: config.imageTokenID, image: image)
    }

    /// A prompt from text: `template` renders `text` around one `<image>` placeholder, which is expanded to
    /// `imageTokenCount` image tokens (as the HF LlavaProcessor expands it) before tokenizing with
    /// `tokenizer` (special tokens added as the tokenizer's template says, e.g. BOS for Llama).
    public func prompt(_ text: String, template: LlavaChatTemplate, tokenizer: Tokenizer, image: ImageEmbedding,
                       imageToken: String = "<image>") throws -> MultimodalPrompt {
        guard tokenizer.id(for: imageToken) == config.imageTokenID else {
            throw ModelError.invalidInput(
                "the tokenizer maps '\(imageToken)' to \(tokenizer.id(for: imageToken).map(String.init) ?? "no token"), but config.json's "
                + "image_token_id is \(config.imageTokenID): use the tokenizer saved with this LLaVA model")
        }
        let rendered = template.render(text, imageToken: imageToken)
        guard rendered.components(separatedBy: imageToken).count == 2 else {
            throw ModelError.invalidInput("the prompt must hold exactly one '\(imageToken)' placeholder (the templates add it; "
                                          + "with the raw template write it yourself)")
        }
        let expanded = rendered.replacingOccurrences(of: imageToken,
                                                     with: String(repeating: imageToken, count: image.tokenCount))
        return try prompt(tokenIDs: tokenizer.encode(expanded), image: image)
    }
}

/// Chat templates of the LLaVA families Mirage reproduces. The image placeholder goes first in the user
/// turn, followed by a newline, as the published evaluation scripts put it.
public enum LlavaChatTemplate: Sendable, Equatable {
    /// The prompt verbatim: it must contain the image placeholder itself.
    case raw
    /// No chat turns: `<image>\n{prompt}`.
    case plain
    /// LLaVA-1.5 (Vicuna v1 conversation): `USER: <image>\n{prompt} ASSISTANT:`, optionally preceded by
    /// the system message and a space (LLaVA's `conv_vicuna_v1`).
    case llava15(systemMessage: Bool)
    /// ChatML of Qwen2-based LLaVA models: `<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n<image>\n{prompt}<|im_end|>\n<|im_start|>assistant\n`
    /// (the system turn omitted when nil).
    case chatML(system: String?)

    /// LLaVA v1's system message (haotian-liu/LLaVA, llava/conversation.py `conv_vicuna_v1`).
    public static let llava15System = "A chat between a curious human and an artificial intelligence assistant. "
        + "The assistant gives helpful, detailed, and polite answers to the human's questions."
    /// The template for a decoder: LLaVA-1.5 (no system message) for Llama, ChatML with Qwen's default
    /// system message for Qwen2.
    public static func `default`(for architecture: Architecture) -> LlavaChatTemplate {
        architecture == .qwen2 ? .chatML(system: qwenSystem) : .llava15(systemMessage: false)
    }

    /// Parses a CLI name: raw, plain, llava15, llava15-system, chatml, chatml-nosystem.
    public init?(name: String) {
        switch name {
        case "raw": self = .raw
        case "plain": self = .plain
        case "llava15": self = .llava15(systemMessage: false)
        case "llava15-system": self = .llava15(systemMessage: true)
        case "chatml": self = .chatML(system: Self.qwenSystem)
        case "chatml-nosystem": self = .chatML(system: nil)
        default: return nil
        }
    }

    /// Qwen2's default system message.
    public static let qwenSystem = "You are a helpful assistant."

    public func render(_ prompt: String, imageToken: String = "<image>") -> String {
        switch self {
        case .raw:
            return prompt
        case .plain:
            return "\(imageToken)\n\(prompt)"
        case .llava15(let system):
            return (system ? Self.llava15System + " " : "") + "USER: \(imageToken)\n\(prompt) ASSISTANT:"
        case .chatML(let system):
            let head = system.map { "<|im_start|>system\n\($0)<|im_end|>\n" } ?? ""
            return head + "<|im_start|>user\n\(imageToken)\n\(prompt)<|im_end|>\n<|im_start|>assistant\n"
        }
    }
}
