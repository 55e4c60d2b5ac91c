import Foundation
import MirageEngine
import MirageImaging
import MirageTokenizers

/// An assembled LAVIS-layout folder (InstructBLIP's blip2_vicuna_instruct or MiniGPT-4, as OPERA runs them;
/// docs/models.md): config.json `{"model_type": "lavis-blip2", "lavis_arch", "vision_config": {"num_attention_heads"},
/// "qformer_config": <BERT config>, "text_config": <Vicuna config>}`, the tensors (EVA under `visual_encoder.`,
/// `ln_vision.*`, `Qformer.bert.*`, `query_tokens`, `llm_proj.*` / `llama_proj.*`, the Vicuna `model.*` and
/// `lm_head.weight`), the Vicuna tokenizer, and for InstructBLIP `qformer_tokenizer/`.
public struct LavisConfig: Sendable {
    public enum Architecture: String, Sendable {
        case instructBlip = "blip2_vicuna_instruct"
        case miniGPT4 = "mini_gpt4"
    }

    public var architecture: Architecture
    public var visionHeads: Int?
    /// Where the EVA tensors are: "visual_encoder." (a LAVIS model state dict) or "" (`eva_vit_g.pth` as released).
    public var visionPrefix: String
    public var qformer: QFormerConfig
    public var text: ModelConfig

    public init(folder: ModelFolder) throws {
        let path = folder.url.appendingPathComponent("config.json").path
        let json = folder.config
        guard let name = json["lavis_arch"] as? String, let architecture = Architecture(rawValue: name) else {
            throw ModelError.badConfig(path: path, field: "lavis_arch",
                                       detail: "must be blip2_vicuna_instruct or mini_gpt4 (the LAVIS model the folder was assembled from)")
        }
        guard let textJSON = json["text_config"] as? [String: Any], let qformerJSON = json["qformer_config"] as? [String: Any] else {
            throw ModelError.badConfig(path: path, field: "text_config / qformer_config",
                                       detail: "are missing: put the Vicuna folder's config.json and the Q-Former's BERT config.json there")
        }
        self.architecture = architecture
        let vision = json["vision_config"] as? [String: Any]
        visionHeads = vision?["num_attention_heads"] as? Int
        visionPrefix = (vision?["tensor_prefix"] as? String) ?? "visual_encoder."
        qformer = try QFormerConfig(json: qformerJSON, path: path)
        text = try ModelConfig(json: Blip2Config.withLlamaDefaults(textJSON), path: path, prefix: "text_config.")
    }

    /// The longest Q-Former instruction, special tokens included: `max_txt_len` (128 in OPERA's
    /// eval_configs/instructblip_eval.yaml, LAVIS' blip2_vicuna_instruct.py default).
    public static let qformerMaxTextLength = 128

    /// The Q-Former's instruction ids as LAVIS' `BertTokenizer(truncation_side="left")(prompt, truncation=True,
    /// max_length=128)` gives them (blip2_vicuna_instruct.py `generate`): `ids` is the whole encoding, `[CLS] … [SEP]`;
    /// a longer one keeps `[CLS]`, the last `maxLength - 2` word pieces and `[SEP]` (transformers truncates the text
    /// from the left and adds the special tokens afterwards).
    public static func truncatedInstruction(_ ids: [Int], maxLength: Int = qformerMaxTextLength) -> [Int] {
        guard ids.count > maxLength, ids.count >= 2, maxLength >= 2 else { return ids }
        return [ids[0]] + ids[(ids.count - 1 - (maxLength - 2))..<(ids.count - 1)] + [ids[ids.count - 1]]
    }

    public static func isLavis(_ folder: ModelFolder, _ architecture: Architecture) -> Bool {
        folder.modelType == "lavis-blip2" && (folder.config["lavis_arch"] as? String) == architecture.rawValue
    }
}

/// InstructBLIP or MiniGPT-4 in LAVIS' layout behind `VisionLanguageModel`: `LavisImageEncoder` for the image rows,
/// `LavisPrompts` for where they go, the Vicuna decoder as `languageModel`.
public final class LavisBlip2Model: VisionLanguageModel, @unchecked Sendable {
    public let family: ModelFamily
    public let config: LavisConfig
    public let languageModel: LanguageModel
    public let encoder: LavisImageEncoder
    public let qformerTokenizer: BertTokenizer?
    let folder: URL

    public init(family: ModelFamily, folder modelFolder: ModelFolder, options: LoadOptions = LoadOptions()) throws {
        let config = try LavisConfig(folder: modelFolder)
        self.family = family
        self.config = config
        folder = modelFolder.url
        var store = try TensorStore(folder: folder)
        store.precision = options.precision
        let generation = try GenerationConfig.load(from: folder.appendingPathComponent("generation_config.json"))
        languageModel = try LanguageModel(config: config.text, generationConfig: generation, tensors: store,
                                          naming: .causalLM, options: options)
        let instruct = config.architecture == .instructBlip
        let vision = try LavisImageEncoder.visionConfig(store: store, prefix: config.visionPrefix, heads: config.visionHeads)
        encoder = try LavisImageEncoder(store: store, vision: vision, qformer: config.qformer, readsInstruction: instruct,
                                        projection: instruct ? "llm_proj." : "llama_proj.", visionPrefix: config.visionPrefix,
                                        pool: languageModel.pool)
        qformerTokenizer = instruct ? try BertTokenizer(folder: folder.appendingPathComponent("qformer_tokenizer")) : nil
    }

    public var architectureName: String { "\(family.name)-\(config.text.architecture.modelType)" }
    public var imageTokenCount: Int { encoder.numQueryTokens }
    public var imageRowsReadInstruction: Bool { config.architecture == .instructBlip }
    public var templates: [PromptTemplate] {
        config.architecture == .instructBlip ? ModelFamily.lavisInstructBlipTemplates : ModelFamily.miniGPT4Templates
    }
    public var defaultTemplate: PromptTemplate { templates[0] }

    /// LAVIS' `blip_image_eval` at the tower's size: resize straight to it (bicubic), /255, CLIP mean/std.
    public func pixels(ofImageAt path: String, padToSquare: Bool) throws -> PixelTensor {
        guard !padToSquare else {
            throw ModelError.invalidInput("\(family.name) resizes images straight to its input size; LLaVA's pad-to-square "
                                          + "does not apply: drop --pad-to-square")
        }
        var processor = ImagePreprocessorConfig.blip
        let side = encoder.vision.config.imageSize
        processor.size = .fixed(height: side, width: side)
        return try ImagePreprocessor(config: processor).process(try ImageDecoder.load(path: path))
    }

    /// InstructBLIP's Q-Former reads `instruction` (the prompt after the image marker, as OPERA's wrapper passes it),
    /// cut to LAVIS' `max_txt_len` from the left (`LavisConfig.truncatedInstruction`).
    public func embedImage(_ pixels: PixelTensor, instruction: String?) throws -> ImageEmbedding {
        try encoder.embed(pixels, instructionIDs: qformerTokenizer.map {
            LavisConfig.truncatedInstruction($0.encode(instruction ?? ""))
        } ?? [])
    }

    /// MiniGPT-4: `[bos] + before + rows + after`, both parts without special tokens. InstructBLIP: rows + `</s>` (LAVIS'
    /// BOS) + the text after the marker without special tokens; text before the marker is dropped, as the wrapper's
    /// `prompt.split("<ImageHere>")[-1]` drops it.
    public func prompt(_ text: String, tokenizer: Tokenizer, image: ImageEmbedding) throws -> MultimodalPrompt {
        let parts = text.components(separatedBy: PromptTemplate.imageMarker)
        guard parts.count == 2 else {
            throw ModelError.invalidInput("the prompt must hold exactly one '\(PromptTemplate.imageMarker)' marker (the templates add it)")
        }
        switch config.architecture {
        case .miniGPT4:
            guard let bos = tokenizer.bosTokenID else {
                throw ModelError.invalidInput("the tokenizer has no BOS token: use the Vicuna tokenizer saved in the model folder")
            }
            return try LavisPrompts.miniGPT4(bos: bos, before: tokenizer.encode(parts[0], addSpecialTokens: false),
                                             after: tokenizer.encode(parts[1], addSpecialTokens: false), image: image,
                                             dummyBOS: languageModel.bosTokenID)
        case .instructBlip:
            guard let eos = tokenizer.id(for: "</s>") else {
                throw ModelError.invalidInput("the tokenizer has no </s> token, which LAVIS' InstructBLIP uses as BOS: use the Vicuna tokenizer")
            }
            return try LavisPrompts.instructBlip(llmIDs: [eos] + tokenizer.encode(parts[1], addSpecialTokens: false), image: image,
                                                 dummyBOS: languageModel.bosTokenID)
        }
    }
}

extension ModelFamily {
    /// InstructBLIP as OPERA runs it from LAVIS' checkpoints (an assembled folder, docs/models.md).
    public static let lavisInstructBlip: ModelFamily = ModelFamily(
        name: "instructblip-lavis",
        summary: "InstructBLIP in LAVIS' layout as OPERA runs it (blip2_vicuna_instruct: EVA ViT-g + Q-Former + Vicuna v1.1, "
            + "an assembled folder)",
        recognizes: { LavisConfig.isLavis($0, .instructBlip) },
        shape: { try lavisShape($0) },
        load: { folder, options in try LavisBlip2Model(family: .lavisInstructBlip, folder: folder, options: options) },
        templates: ModelFamily.lavisInstructBlipTemplates,
        synthesizer: .lavis(.instructBlip, name: "instructblip-lavis"),
        // EOS, BOS and pad come from the folder (Vicuna v1.1's generation_config.json: dummy BOS 1, EOS 2), which
        // the loaded model reads; the prompt's BOS </s> (2) is the prompt builder's.
        paperSettings: PaperSettings(
            decoderParameters: ["repetition_penalty": "1.5"], outputIDRewrites: [0: 2], text: [.strip],
            source: "shikiw/OPERA @ 61426ef minigpt4/models/blip2_vicuna_instruct.py:243-265,379-407 (= salesforce/LAVIS): "
                + "generate's default repetition_penalty=1.5 (the eval scripts do not pass it), length_penalty=1, no "
                + "eos/pad ids; outputs[outputs == 0] = 2, batch_decode(skip_special_tokens=True), strip()"))

    /// MiniGPT-4 (Vicuna v0) as OPERA runs it from LAVIS-style checkpoints (an assembled folder, docs/models.md).
    public static let miniGPT4: ModelFamily = ModelFamily(
        name: "minigpt4",
        summary: "MiniGPT-4 as OPERA runs it (mini_gpt4: EVA ViT-g + BLIP-2 Q-Former + llama_proj + Vicuna v0, an assembled folder)",
        recognizes: { LavisConfig.isLavis($0, .miniGPT4) },
        shape: { try lavisShape($0) },
        load: { folder, options in try LavisBlip2Model(family: .miniGPT4, folder: folder, options: options) },
        templates: ModelFamily.miniGPT4Templates,
        synthesizer: .lavis(.miniGPT4, name: "minigpt4"),
        // EOS comes from the folder: a Vicuna v0 folder without generation_config.json says eos 1 (<s>), so the
        // text runs on past </s> and is cut at ### afterwards.
        paperSettings: PaperSettings(
            outputIDRewrites: [0: 2, 1: 2], text: [.before("###"), .afterLast("Assistant:"), .strip],
            source: "shikiw/OPERA @ 61426ef minigpt4/models/mini_gpt4.py:383-412: repetition_penalty=1.0, length_penalty=1, "
                + "no eos/pad ids; ids 0 and 1 → 2, decode(skip_special_tokens=True), split('###')[0].split('Assistant:')[-1].strip()"))

    /// Both LAVIS families' shape: the Vicuna decoder, the query rows, EVA ViT-g's activations and FLOPs.
    static func lavisShape(_ folder: ModelFolder) throws -> ModelShape {
        let config = try LavisConfig(folder: folder)
        var shape = ModelShape(text: config.text, imageTokenCount: try lavisQueryCount(folder),
                               imageEncoderActivationBytes: Blip2Config.evaActivationBytes)
        shape.imageEncoderFLOPs = BlipVisionConfig.evaViTg.encoderConfig.encoderFLOPs
        return shape
    }

    /// `query_tokens`' row count, read from the tensor header without loading weights.
    static func lavisQueryCount(_ folder: ModelFolder) throws -> Int {
        let store = try TensorStore(folder: folder.url)
        guard let entry = store.entry("query_tokens"), entry.shape.count == 3 else {
            throw ModelError.missingTensor(tensor: "query_tokens", folder: folder.url.path)
        }
        return entry.shape[1]
    }

    /// OPERA's templates (shikiw/OPERA chair_eval.py `INSTRUCTION_TEMPLATE`).
    static let lavisInstructBlipTemplates = [
        PromptTemplate(name: "opera", format: "\(PromptTemplate.imageMarker){prompt}",
                       summary: "OPERA's <ImageHere><question>: image rows, </s>, the question"),
        PromptTemplate(name: "raw", format: "{prompt}", summary: "the prompt as given; it must contain <image>"),
    ]
    static let miniGPT4Templates = [
        PromptTemplate(name: "opera", format: "###Human: <Img>\(PromptTemplate.imageMarker)</Img> {prompt} ###Assistant:",
                       summary: "OPERA's ###Human: <Img><ImageHere></Img> <question> ###Assistant:"),
        PromptTemplate(name: "raw", format: "{prompt}", summary: "the prompt as given; it must contain <image>"),
    ]
}
