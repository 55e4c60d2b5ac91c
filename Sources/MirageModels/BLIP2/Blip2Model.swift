import Foundation
import MirageEngine
import MirageKernels
import MirageImaging
import MirageTokenizers

/// A BLIP-2-style config.json (`Blip2ForConditionalGeneration`, `InstructBlipForConditionalGeneration`):
/// vision_config, qformer_config, text_config, num_query_tokens, image_token_index.
public struct Blip2Config: Sendable {
    public var vision: BlipVisionConfig
    public var qformer: QFormerConfig
    public var text: ModelConfig
    public var numQueryTokens: Int
    /// The placeholder id the processor repeats `numQueryTokens` times before the text.
    public var imageTokenID: Int
    /// InstructBLIP: the Q-Former reads the instruction.
    public var readsInstruction: Bool

    public init(json: [String: Any], path: String, readsInstruction: Bool) throws {
        guard let textJSON = json["text_config"] as? [String: Any] else {
            throw ModelError.badConfig(path: path, field: "text_config",
                                       detail: "is missing: a BLIP-2 / InstructBLIP config.json describes its language model there")
        }
        let textType = (textJSON["model_type"] as? String) ?? "llama"
        guard textType == "llama" else {
            throw ModelError.badConfig(path: path, field: "text_config.model_type",
                                       detail: "is '\(textType)'; Mirage runs BLIP-2 and InstructBLIP with Llama / Vicuna "
                                       + "decoders (OPT and Flan-T5 checkpoints are not supported)")
        }
        vision = try BlipVisionConfig(json: (json["vision_config"] as? [String: Any]) ?? [:], path: path)
        qformer = try QFormerConfig(json: (json["qformer_config"] as? [String: Any]) ?? [:], path: path)
        text = try ModelConfig(json: Self.withLlamaDefaults(textJSON), path: path, prefix: "text_config.")
        numQueryTokens = (json["num_query_tokens"] as? Int) ?? 32
        // Blip2Config / InstructBlipConfig call it image_token_index (attribute image_token_id).
        guard let token = (json["image_token_index"] as? Int) ?? (json["image_token_id"] as? Int) else {
            throw ModelError.badConfig(path: path, field: "image_token_index",
                                       detail: "is missing: checkpoints converted before transformers 4.47 lack the image "
                                       + "placeholder; re-save the model and processor with a current transformers")
        }
        imageTokenID = token
        self.readsInstruction = readsInstruction
        try validate(path: path)
    }

    /// Fields a saved text_config may omit take transformers 5.24 LlamaConfig's defaults (configuration_llama.py).
    static func withLlamaDefaults(_ json: [String: Any]) -> [String: Any] {
        var out = json
        let defaults: [String: Any] = [
            "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
            "vocab_size": 32000, "max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "model_type": "llama",
        ]
        for (key, value) in defaults where out[key] == nil || out[key] is NSNull { out[key] = value }
        return out
    }

    public static func load(folder: ModelFolder, readsInstruction: Bool) throws -> Blip2Config {
        guard folder.files.contains("config.json") else {
            throw ModelError.fileNotFound(path: folder.url.appendingPathComponent("config.json").path,
                                          hint: "A BLIP-2 / InstructBLIP model folder needs the config.json written with its weights.")
        }
        return try Blip2Config(json: folder.config, path: folder.url.appendingPathComponent("config.json").path,
                               readsInstruction: readsInstruction)
    }

    /// What the runner's memory estimate needs: decoder config, rows per image, the tower's f32 activations.
    public var shape: ModelShape {
        var shape = ModelShape(text: text, imageTokenCount: numQueryTokens, imageEncoderActivationBytes: Self.activationBytes(vision))
        // EVA ViT-g over its rows; the Q-Former (a few BERT layers over 32 queries) is small beside it.
        shape.imageEncoderFLOPs = vision.encoderConfig.encoderFLOPs
        return shape
    }

    /// f32 activations of one image through the tower: the rows' residual, norm, q/k/v, attention and MLP buffers
    /// and two rows × rows score matrices.
    static func activationBytes(_ vision: BlipVisionConfig) -> Int64 {
        let rows = Int64(vision.sequenceLength), h = Int64(vision.hiddenSize)
        return rows * (6 * h + 2 * Int64(vision.intermediateSize)) * 4 + rows * rows * 4 * 2
    }

    /// EVA ViT-g's (the LAVIS folders' shape is estimated before their tensors are read).
    static let evaActivationBytes = activationBytes(.evaViTg)
}

extension Blip2Config: ValidatedConfig {
    /// The parts (each validated when read) against each other: query count, image placeholder, Q-Former input width.
    public func validate(_ v: ConfigValidator) throws {
        try v.count("num_query_tokens", numQueryTokens, in: 1...4096)
        try v.count("image_token_index", imageTokenID, in: 0...(text.vocabSize - 1))
        guard qformer.encoderHiddenSize == vision.hiddenSize else {
            throw v.fail("qformer_config.encoder_hidden_size",
                         "is \(qformer.encoderHiddenSize) but vision_config.hidden_size is \(vision.hiddenSize): they must match")
        }
    }
}

/// transformers' `Blip2ForConditionalGeneration` (Llama decoder) and `InstructBlipForConditionalGeneration`:
/// EVA ViT-g (`vision_model.*`, `post_layernorm` = LAVIS' ln_vision) → Q-Former (`qformer.*`, `query_tokens`,
/// with the instruction for InstructBLIP) → `language_projection` → Llama (`language_model.*`).
///
/// `prompt` follows the HF processors: `num_query_tokens` image placeholders, then the text tokenized with BOS.
/// A template with text before the marker (MiniGPT-4 style) tokenizes that part with BOS, the image rows, then the
/// rest without special tokens.
public final class Blip2Model: VisionLanguageModel, @unchecked Sendable {
    public let family: ModelFamily
    public let config: Blip2Config
    public let languageModel: LanguageModel
    public let vision: BlipVisionModel
    public let qformer: QFormer
    /// `numQueryTokens × qformer.hiddenSize`, f32.
    let queryTokens: [Float]
    let projection: WeightMatrix
    let projectionBias: [Float]
    /// The Q-Former's BERT tokenizer (`qformer_tokenizer/`); nil for BLIP-2.
    public let qformerTokenizer: BertTokenizer?
    let familyTemplates: [PromptTemplate]

    public init(family: ModelFamily, folder modelFolder: ModelFolder, readsInstruction: Bool, templates: [PromptTemplate],
                options: LoadOptions = LoadOptions()) throws {
        let folder = modelFolder.url
        let config = try Blip2Config.load(folder: modelFolder, readsInstruction: readsInstruction)
        self.family = family
        self.config = config
        familyTemplates = templates
        var store = try TensorStore(folder: folder)
        store.precision = options.precision
        let generation = try GenerationConfig.load(from: folder.appendingPathComponent("generation_config.json"))
        var text = config.text
        if store.entry("language_model.lm_head.weight") == nil && store.entry("language_model.model.embed_tokens.weight") != nil {
            text.tieWordEmbeddings = true   // saved without the head: tied to the embeddings
        }
        languageModel = try LanguageModel(config: text, generationConfig: generation, tensors: store,
                                          naming: .prefixed("language_model."), options: options)
        vision = try BlipVisionModel(config: config.vision, store: store, layout: .transformers(prefix: "vision_model."),
                                     pool: languageModel.pool)
        qformer = try QFormer(config: config.qformer, store: store,
                              names: readsInstruction ? .instructBlip : .blip2, pool: languageModel.pool)
        let q = config.numQueryTokens, qh = config.qformer.hiddenSize
        let (entry, pointer, _) = try store.require("query_tokens", shape: [1, q, qh])
        queryTokens = Self.floats(pointer, count: q * qh, dtype: entry.dtype)
        projection = try store.matrix("language_projection.weight", rows: config.text.hiddenSize, cols: qh)
        projectionBias = try store.vector("language_projection.bias", count: config.text.hiddenSize)
        if readsInstruction {
            let tokenizerFolder = folder.appendingPathComponent("qformer_tokenizer")
            guard FileManager.default.fileExists(atPath: tokenizerFolder.path) else {
                throw ModelError.invalidInput("\(folder.path) has no qformer_tokenizer/ folder: InstructBLIP's Q-Former reads "
                                              + "the instruction with it; save the InstructBlipProcessor into the model folder")
            }
            qformerTokenizer = try BertTokenizer(folder: tokenizerFolder)
        } else {
            qformerTokenizer = nil
        }
    }

    static func floats(_ pointer: UnsafeRawPointer, count: Int, dtype: TensorDType) -> [Float] {
        (0..<count).map { i -> Float in
            switch dtype {
            case .f16: return Float(Float16(bitPattern: pointer.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            case .bf16: return Float(bitPattern: UInt32(pointer.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
            default: return pointer.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
            }
        }
    }

    public var architectureName: String { "\(family.name)-\(config.text.architecture.modelType)" }
    public var imageTokenCount: Int { config.numQueryTokens }
    public var imageRowsReadInstruction: Bool { config.readsInstruction }
    public var templates: [PromptTemplate] { familyTemplates }
    public var defaultTemplate: PromptTemplate { familyTemplates[0] }

    public func pixels(ofImageAt path: String, padToSquare: Bool) throws -> PixelTensor {
        guard !padToSquare else {
            throw ModelError.invalidInput("\(family.name) resizes images straight to \(config.vision.imageSize)×"
                                          + "\(config.vision.imageSize); LLaVA's pad-to-square does not apply: drop --pad-to-square")
        }
        guard let folder = languageModel.folder else {
            throw ModelError.invalidInput("this model was not loaded from a folder, so it has no processor configuration")
        }
        let preprocessor = ImagePreprocessor(config: try ImagePreprocessorConfig.load(modelDirectory: folder.path))
        return try preprocessor.process(try ImageDecoder.load(path: path), padToSquare: false)
    }

    /// The vision tower's output rows (`post_layernorm` applied).
    public func visionRows(_ pixels: PixelTensor) throws -> [Float] { try vision.imageRows(pixels) }

    /// The Q-Former's last hidden state for `pixels` and (InstructBLIP) `instruction`: query rows, then instruction rows.
    public func qformerOutput(_ pixels: PixelTensor, instruction: String?) throws -> [Float] {
        let image = try vision.imageRows(pixels)
        let ids = qformerTokenizer.map { $0.encode(instruction ?? "") } ?? []
        return try qformer.run(queries: queryTokens, queryCount: config.numQueryTokens, textIDs: ids, image: image,
                               imageRows: config.vision.sequenceLength)
    }

    /// Vision → Q-Former → `language_projection` of the query rows. For InstructBLIP, `instruction` is the text the
    /// Q-Former reads (the user's prompt, as the HF processor passes it to the qformer_tokenizer).
    public func embedImage(_ pixels: PixelTensor, instruction: String?) throws -> ImageEmbedding {
        let q = config.numQueryTokens, hidden = config.text.hiddenSize
        let output = try qformerOutput(pixels, instruction: instruction)
        var rows = [Float](repeating: 0, count: q * hidden)
        output.withUnsafeBufferPointer { x in rows.withUnsafeMutableBufferPointer { y in
            projectionBias.withUnsafeBufferPointer { b in
                Kernels.linear(x.baseAddress!, n: q, weight: projection, bias: b.baseAddress, into: y.baseAddress!,
                               pool: languageModel.pool)
            }
        }}
        return ImageEmbedding(tokenCount: q, width: hidden, values: rows)
    }

    /// Token ids of a rendered prompt (see the class comment), with `numQueryTokens` placeholders.
    public func promptTokenIDs(_ text: String, tokenizer: Tokenizer) throws -> [Int] {
        let parts = text.components(separatedBy: PromptTemplate.imageMarker)
        guard parts.count == 2 else {
            throw ModelError.invalidInput("the prompt must hold exactly one '\(PromptTemplate.imageMarker)' marker (the templates "
                                          + "add it; with the raw template write it yourself)")
        }
        let placeholders = [Int](repeating: config.imageTokenID, count: config.numQueryTokens)
        if parts[0].isEmpty { return placeholders + tokenizer.encode(parts[1]) }
        return tokenizer.encode(parts[0]) + placeholders + tokenizer.encode(parts[1], addSpecialTokens: false)
    }

    public func prompt(_ text: String, tokenizer: Tokenizer, image: ImageEmbedding) throws -> MultimodalPrompt {
        try MultimodalPrompt(tokenIDs: try promptTokenIDs(text, tokenizer: tokenizer), imageTokenID: config.imageTokenID,
                             image: image)
    }
}

extension Blip2Model {
    /// The HF processors' layout: the image rows, then the prompt (tokenized with BOS).
    public static let processorTemplate = PromptTemplate(
        name: "processor", format: "\(PromptTemplate.imageMarker){prompt}",
        summary: "the HF processor's input_ids: num_query_tokens image rows, then BOS and the prompt")
}
