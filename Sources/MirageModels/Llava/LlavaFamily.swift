import Foundation
import MirageEngine

extension ModelFamily {
    /// transformers' `LlavaForConditionalGeneration` (llava-hf/llava-1.5-7b-hf and the like): a CLIP or SigLIP
    /// tower, the two-layer projector, a Llama or Qwen2 decoder.
    public static let llava = ModelFamily(
        name: "llava",
        summary: "LLaVA in the transformers layout (LlavaForConditionalGeneration: CLIP/SigLIP + Llama/Qwen2, e.g. llava-hf/llava-1.5-7b-hf)",
        recognizes: { LlavaConfig.isLlava($0.config) },
        shape: { folder in
            let config = try LlavaConfig.load(from: folder.url.appendingPathComponent("config.json"))
            let v = config.vision
            let side = v.imageSize / max(1, v.patchSize)
            let rows = Int64(side * side + 1)
            return ModelShape(text: config.text, imageTokenCount: config.imageTokenCount,
                              imageEncoderActivationBytes: rows * Int64(6 * v.hiddenSize + 2 * v.intermediateSize) * 4)
        },
        load: { folder, options in try LlavaForConditionalGeneration(folder: folder.url, options: options) })
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
        ["raw", "plain", "llava15", "llava15-system", "chatml", "chatml-nosystem"].map {
            Self.template(LlavaChatTemplate(name: $0)!, name: $0)
        }
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
