import Foundation
import MirageEngine
import MirageImaging

extension ModelFamily {
    /// Shikra-7B (shikras/shikra-7b-delta-v1 after apply_delta: `ShikraLlamaForCausalLM`), as OPERA runs it.
    public static let shikra = ModelFamily(
        name: "shikra",
        summary: "Shikra (ShikraLlamaForCausalLM, shikras/shikra-7b-delta-v1 after apply_delta; CLIP ViT-L/14 tower from its own folder, see --vision-tower)",
        recognizes: { folder in
            folder.config["text_config"] == nil && ((folder.modelType == "shikra")
                || folder.architectures.contains("ShikraLlamaForCausalLM"))
        },
        shape: { folder in try ModelFamily.llavaOriginal.shape(folder) },
        load: { folder, options in
            var options = options
            if options.visionTower == nil { options.visionTower = folder.visionTower }
            return try ShikraForCausalLM(folder: folder.url, options: options)
        },
        templates: [
            // shikras/shikra mllm/conversation/base_conversation.py, `vicuna_v1.1`: the system message, " ", then
            // "USER: " + the user turn + " ASSISTANT:".
            PromptTemplate(name: "vicuna11",
                           format: "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
                               + "helpful, detailed, and polite answers to the user's questions. USER: <image> {prompt} ASSISTANT:",
                           summary: "Shikra's vicuna_v1.1 conversation: system message, USER: <image> {prompt} ASSISTANT:"),
            PromptTemplate(name: "raw", format: "{prompt}", summary: "the prompt as given; it must contain <image>"),
        ],
        synthesizer: ModelSynthesizer(
            architectures: ["shikra"], sizes: ["tiny", "7b"],
            write: { request, folder, progress in
                let spec = try SyntheticShikraSpec(request: request)
                let tower = try spec.write(to: folder, progress: progress)
                let t = spec.text.config, v = spec.vision.config
                return "ShikraLlamaForCausalLM, \(t.numLayers) layers, hidden \(t.hiddenSize), vocab \(t.vocabSize), "
                    + "\(request.dtype.rawValue.lowercased()), linear projector, \(v.numPatches) image rows between <im_start> and <im_end>; "
                    + "CLIP tower \(v.imageSize)px/\(v.patchSize) in \(tower.path) (mm_vision_tower \(spec.towerName))"
            }),
        imageProcessorFolder: { folder in try LlavaOriginalConfig.towerFolder(of: folder) },
        // The wrapper decodes the prompt and the response together and keeps what follows the last "ASSISTANT:";
        // its prompt ends with "ASSISTANT:", so that is the response's text after its own last "ASSISTANT:", if any.
        paperSettings: PaperSettings(
            outputIDRewrites: [0: 2, 1: 2], text: [.afterLast("ASSISTANT:"), .strip],
            source: "shikiw/OPERA @ 61426ef minigpt4/models/shikra.py:240-271: no repetition/length penalty, eos/bos/pad from "
                + "the tokenizer; ids 0 and 1 → 2, decoded with skip_special_tokens, split('ASSISTANT:')[-1].strip()"))
}

extension ShikraForCausalLM: VisionLanguageModel {
    public var family: ModelFamily { .shikra }
    public var languageModel: LanguageModel { base.languageModel }
    public var architectureName: String { "shikra-\(config.text.architecture.modelType)" }
    public var imageTokenCount: Int { base.imageTokenCount }
    public var imageRowsReadInstruction: Bool { false }
    public var defaultTemplate: PromptTemplate { templates[0] }
    public var templates: [PromptTemplate] { ModelFamily.shikra.templates }

    public func pixels(ofImageAt path: String, padToSquare: Bool) throws -> PixelTensor {
        try base.pixels(ofImageAt: path, padToSquare: padToSquare)
    }

    public func embedImage(_ pixels: PixelTensor, instruction: String?) throws -> ImageEmbedding {
        try base.embedImage(pixels)
    }
}
