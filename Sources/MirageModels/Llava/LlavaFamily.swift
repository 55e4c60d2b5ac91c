import Foundation
import MirageEngine
import MirageImaging
import MirageTokenizers

extension ModelFamily {
    /// transformers' `LlavaForConditionalGeneration` (llava-hf/llava-1.5-7b-hf and the like): a CLIP or SigLIP
    /// tower, the two-layer projector, a Llama or Qwen2 decoder.
    public static let llava = ModelFamily(
        name: "llava",
        summary: "LLaVA in the transformers layout (LlavaForConditionalGeneration: CLIP/SigLIP + Llama/Qwen2, e.g. llava-hf/llava-1.5-7b-hf)",
        recognizes: { LlavaConfig.isLlava($0.config) && $0.config["text_config"] != nil },
        shape: { folder in
            let config = try LlavaConfig(json: folder.config, path: folder.url.appendingPathComponent("config.json").path)
            var shape = ModelShape(text: config.text, imageTokenCount: config.imageTokenCount,
                                   imageEncoderActivationBytes: config.vision.activationBytes)
            let inputs = Double(config.vision.hiddenSize * config.featureLayers.count), width = Double(config.text.hiddenSize)
            shape.imageEncoderFLOPs = config.vision.encoderFLOPs
                + 2 * Double(config.imageTokenCount) * (inputs * width + width * width)
            return shape
        },
        load: { folder, options in try LlavaForConditionalGeneration(folder: folder.url, options: options) },
        templates: LlavaChatTemplate.names.map { LlavaForConditionalGeneration.template(LlavaChatTemplate(name: $0)!, name: $0) },
        synthesizer: ModelSynthesizer(
            architectures: ["llava-llama", "llava-qwen2"], sizes: SyntheticModelSpec.Size.allCases.map(\.rawValue),
            visions: ["clip", "siglip"],
            write: { request, folder, progress in
                var spec = try SyntheticLlavaSpec(request: request)
                spec.words = request.words
                spec.wordLogitScale = request.wordLogitScale
                try spec.write(to: folder, progress: progress)
                let c = spec.config, t = c.text
                return "\(t.architecture.rawValue), \(t.numLayers) layers, hidden \(t.hiddenSize), \(t.numHeads)/\(t.numKVHeads) heads, "
                    + "vocab \(t.vocabSize), \(request.dtype.rawValue.lowercased()), \(request.vision ?? "clip") tower \(c.vision.imageSize)px/"
                    + "\(c.vision.patchSize) (\(c.imageTokenCount) image tokens, image token id \(c.imageTokenID))"
            }))
}

extension VisionConfig {
    /// Bytes of f32 activations the tower needs for one image (its sequence × the widest per-layer buffers),
    /// for the runner's memory estimate.
    public var activationBytes: Int64 {
        let side = imageSize / max(1, patchSize)
        return Int64(side * side + 1) * Int64(6 * hiddenSize + 2 * intermediateSize) * 4
    }

    /// Floating-point operations of one image through the tower: per layer the four attention projections and
    /// the MLP over every row, and the attention scores and weighted values.
    public var encoderFLOPs: Double {
        let side = imageSize / max(1, patchSize)
        let rows = Double(side * side + 1), h = Double(hiddenSize)
        return Double(numLayers) * (2 * rows * (4 * h * h + 2 * h * Double(intermediateSize)) + 4 * rows * rows * h)
    }
}

extension LlavaForConditionalGeneration: VisionLanguageModel {
    public var family: ModelFamily { .llava }

    public var architectureName: String { "llava-\(config.text.architecture.modelType)" }

    public var imageRowsReadInstruction: Bool { false }

    public var defaultTemplate: PromptTemplate {
        Self.template(LlavaChatTemplate.default(for: config.text.architecture),
                      name: config.text.architecture == .qwen2 ? "chatml" : "llava15")
    }

    public var templates: [PromptTemplate] {
        ModelFamily.llava.templates
    }

    static func template(_ chat: LlavaChatTemplate, name: String) -> PromptTemplate {
        let summaries = [
            "raw": "the prompt as given; it must contain <image>",
            "plain": "<image>\\n{prompt}",
            "llava15": "USER: <image>\\n{prompt} ASSISTANT:",
            "llava15-system": "LLaVA v1's system message, then llava15",
            "chatml": "ChatML with Qwen's default system message",
            "chatml-nosystem": "ChatML without a system turn",
        ]
        return PromptTemplate(name: name, format: chat.render("{prompt}", imageToken: PromptTemplate.imageMarker),
                              summary: summaries[name] ?? name)
    }

    public func embedImage(_ pixels: PixelTensor, instruction: String?) throws -> ImageEmbedding {
        try embedImage(pixels)
    }

    public func prompt(_ text: String, tokenizer: Tokenizer, image: ImageEmbedding) throws -> MultimodalPrompt {
        try prompt(text, template: .raw, tokenizer: tokenizer, image: image, imageToken: PromptTemplate.imageMarker)
    }
}

extension SyntheticLlavaSpec {
    /// The spec `mirage models synth --arch llava-llama|llava-qwen2` writes: the decoder at `size`, the tower
    /// at the tiny size for `tiny` and ViT-L/14-336 shapes otherwise.
    public init(request: SynthesisRequest) throws {
        guard let size = SyntheticModelSpec.Size(rawValue: request.size) else {
            throw ModelError.invalidInput("llava synth takes --size \(SyntheticModelSpec.Size.allCases.map(\.rawValue).joined(separator: ", ")) (got '\(request.size)')")
        }
        let kind: VisionConfig.Kind
        switch request.vision ?? "clip" {
        case "clip": kind = .clip
        case "siglip": kind = .siglip
        default: throw ModelError.invalidInput("llava synth takes --vision clip or siglip (got '\(request.vision ?? "")')")
        }
        let text = SyntheticModelSpec(architecture: request.architecture == "llava-qwen2" ? .qwen2 : .llama, size: size,
                                      seed: request.seed, dtype: request.dtype)
        self.init(text: text, vision: SyntheticVisionSpec(kind: kind, size: size == .tiny ? .tiny : .l14_336,
                                                          seed: request.seed, dtype: request.dtype))
    }
}
