import Foundation
import MirageEngine
import MirageImaging
import MirageTokenizers
import MirageKernels

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
