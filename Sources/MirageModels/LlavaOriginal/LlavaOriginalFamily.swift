import Foundation
import MirageEngine
import MirageImaging

extension ModelFamily {
    /// The original LLaVA-1.5 layout (liuhaotian/llava-v1.5-7b: `LlavaLlamaForCausalLM`, `mm_*` fields, the CLIP
    /// tower in its own folder named by `mm_vision_tower`), as OPERA loads it.
    public static let llavaOriginal = ModelFamily(
        name: "llava-original",
        summary: "LLaVA-1.5 in its original layout (LlavaLlamaForCausalLM, e.g. liuhaotian/llava-v1.5-7b; CLIP tower from its own folder, see --vision-tower)",
        recognizes: { LlavaOriginalConfig.isOriginal($0.config) },
        shape: { folder in
            let path = folder.url.appendingPathComponent("config.json").path
            let config = try LlavaOriginalConfig(json: folder.config, path: path)
            let tower = try VisionTowerLocator.locate(config.visionTower, model: folder.url, given: folder.visionTower)
            let vision = try LlavaOriginalConfig.towerConfig(folder: tower)
            var shape = ModelShape(text: config.text, imageTokenCount: config.imageTokenCount(tower: vision),
                                   imageEncoderActivationBytes: vision.activationBytes)
            shape.otherWeightFolders = [tower]
            let width = Double(config.text.hiddenSize)
            // The projector counted as mlp2x_gelu (Shikra's single linear layer is smaller).
            shape.imageEncoderFLOPs = vision.encoderFLOPs
                + 2 * Double(shape.imageTokenCount) * (Double(vision.hiddenSize) * width + width * width)
            return shape
        },
        load: { folder, options in
            var options = options
            if options.visionTower == nil { options.visionTower = folder.visionTower }
            return try LlavaOriginalForCausalLM(folder: folder.url, options: options)
        },
        templates: ModelFamily.llava.templates.filter { !$0.name.hasPrefix("chatml") },
        synthesizer: ModelSynthesizer(
            architectures: ["llava-original"], sizes: ["tiny", "7b"],
            write: { request, folder, progress in
                let spec = try SyntheticLlavaOriginalSpec(request: request)
                let tower = try spec.write(to: folder, progress: progress)
                let t = spec.text.config, v = spec.vision.config
                return "LlavaLlamaForCausalLM, \(t.numLayers) layers, hidden \(t.hiddenSize), vocab \(t.vocabSize), "
                    + "\(request.dtype.rawValue.lowercased()), mlp2x_gelu projector, \(spec.imageTokenCount) image rows; "
                    + "CLIP tower \(v.imageSize)px/\(v.patchSize) in \(tower.path) (mm_vision_tower \(spec.towerName))"
            }),
        imageProcessorFolder: { folder in try LlavaOriginalConfig.towerFolder(of: folder) },
        paperSettings: PaperSettings(
            text: [.before("###"), .strip],
            source: "shikiw/OPERA @ 61426ef minigpt4/models/llava.py:212-245: no repetition/length penalty (1.0 / 1.0), "
                + "eos/bos/pad from the tokenizer; the new ids decoded with skip_special_tokens, then split('###')[0].strip()"))
}

extension LlavaOriginalForCausalLM: VisionLanguageModel {
    public var family: ModelFamily { .llavaOriginal }

    public var architectureName: String { "llava-original-\(config.text.architecture.modelType)" }

    public var imageRowsReadInstruction: Bool { false }

    /// LLaVA-1.5's own evaluation conversation (`conv_vicuna_v1`: system message, `USER: <image>\n...`).
    public var defaultTemplate: PromptTemplate { templates.first { $0.name == "llava15-system" }! }

    public var templates: [PromptTemplate] { ModelFamily.llavaOriginal.templates }

    public func embedImage(_ pixels: PixelTensor, instruction: String?) throws -> ImageEmbedding {
        try embedImage(pixels)
    }
}
