import Foundation
import MirageEngine
import MirageImaging
import MirageTokenizers
import MirageKernels

/// The original LLaVA-1.5 (`LlavaLlamaForCausalLM` of haotian-liu/LLaVA, as OPERA's `minigpt4/models/llava.py`
/// runs it): a LLaMA decoder (`model.*`, `lm_head.weight`), the `model.mm_projector` and a CLIP tower loaded
/// from its own folder. The image goes into `input_ids` as one `-200` placeholder that the forward replaces by
/// the projected rows (llava_arch.py `prepare_inputs_labels_for_multimodal`).
public final class LlavaOriginalForCausalLM: @unchecked Sendable {
    public let config: LlavaOriginalConfig
    public let vision: any VisionTower
    public let languageModel: LanguageModel
    /// The tower folder (config.json, weights, preprocessor_config.json).
    public let towerFolder: URL
    let projector: [Projection]
    let selectLayer: Int

    /// Opens a model folder and its tower (`options.visionTower`, else found by `VisionTowerLocator`).
    public convenience init(folder: URL, options: LoadOptions = LoadOptions()) throws {
        let path = folder.appendingPathComponent("config.json").path
        let json = try JSONSerialization.configObject(at: URL(fileURLWithPath: path),
                                                      hint: "An original LLaVA folder needs the config.json written with its weights.")
        let config = try LlavaOriginalConfig(json: json, path: path)
        let tower = try VisionTowerLocator.locate(config.visionTower, model: folder, given: options.visionTower)
        let generation = try GenerationConfig.load(from: folder.appendingPathComponent("generation_config.json"))
        try self.init(config: config, generationConfig: generation, tensors: TensorStore(folder: folder),
                      towerFolder: tower, options: options)
    }

    public init(config: LlavaOriginalConfig, generationConfig: GenerationConfig?, tensors: TensorStore, towerFolder: URL,
                options: LoadOptions = LoadOptions()) throws {
        let towerConfig = try LlavaOriginalConfig.towerConfig(folder: towerFolder)
        let configPath = URL(fileURLWithPath: tensors.folder).appendingPathComponent("config.json").path
        guard towerConfig.hiddenSize == config.mmHiddenSize else {
            throw ModelError.badConfig(path: configPath, field: "mm_hidden_size",
                                       detail: "is \(config.mmHiddenSize) but the tower in \(towerFolder.path) is \(towerConfig.hiddenSize) wide: give the tower the model was trained with (\(config.visionTower))")
        }
        selectLayer = try config.resolvedSelectLayer(towerLayers: towerConfig.numLayers, path: configPath)
        var store = tensors
        store.precision = options.precision
        self.config = config
        self.towerFolder = towerFolder
        languageModel = try LanguageModel(config: config.text, generationConfig: generationConfig, tensors: store,
                                          naming: TensorNaming(body: "model.", lmHead: "lm_head.weight"), options: options)
        var towerStore = try TensorStore(folder: towerFolder)
        towerStore.precision = options.precision
        vision = try loadVisionTower(config: towerConfig, store: towerStore, pool: languageModel.pool)
        let hidden = config.text.hiddenSize
        projector = try config.projector.linearNames.enumerated().map { index, name in
            let cols = index == 0 ? config.mmHiddenSize : hidden
            return Projection(weight: try store.matrix(name + "weight", rows: hidden, cols: cols),
                              bias: try store.vector(name + "bias", count: hidden))
        }
    }

    /// Rows per image (`LlavaOriginalConfig.imageTokenCount`).
    public var imageTokenCount: Int { config.imageTokenCount(tower: vision.config) }

    /// The selected tower features (`hidden_states[mm_vision_select_layer]`, CLS dropped for `patch`) projected
    /// into the decoder's width.
    public func embedImage(_ pixels: PixelTensor) throws -> ImageEmbedding {
        let state = try vision.hiddenStates(pixels, layers: [selectLayer])[0]
        let rows = imageTokenCount, skip = vision.config.sequenceLength - rows
        var x = Array(state[(skip * config.mmHiddenSize)...])
        let hidden = config.text.hiddenSize
        for (index, layer) in projector.enumerated() {
            if index > 0 {
                x.withUnsafeMutableBufferPointer { Kernels.gelu($0.baseAddress!, count: rows * hidden, approximation: .erf) }
            }
            var y = [Float](repeating: 0, count: rows * hidden)
            x.withUnsafeBufferPointer { xs in y.withUnsafeMutableBufferPointer { ys in
                languageModel.linearRows(xs.baseAddress!, rows: rows, weight: layer.weight, bias: layer.bias, into: ys.baseAddress!)
            }}
            x = y
        }
        return ImageEmbedding(tokenCount: rows, width: hidden, values: x)
    }

    /// Decodes and preprocesses an image with the tower folder's preprocessor_config.json (CLIPImageProcessor).
    public func pixels(ofImageAt path: String, padToSquare: Bool) throws -> PixelTensor {
        let preprocessor = ImagePreprocessor(config: try ImagePreprocessorConfig.load(modelDirectory: towerFolder.path))
        return try preprocessor.process(try ImageDecoder.load(path: path), padToSquare: padToSquare)
    }

    /// The ids of one separately tokenized segment as transformers 4.29's slow `LlamaTokenizer` gives them (OPERA's
    /// llava.py tokenizes the text after the image on its own, docs/paper-models.md): sentencepiece always puts its
    /// dummy prefix `▁` in front, so `" Please …"` becomes `▁▁Please …`. A tokenizer that adds no prefix to text
    /// already starting with a space (Mirage's Metaspace with `prepend_scheme: first`, what it builds for tokenizer.model
    /// folders, docs/tokenizer.md) is given the segment with one more leading space, which gives the same pieces; a
    /// tokenizer that always prefixes gets it unchanged.
    public static func sentencePieceSegment(_ text: String, tokenizer: Tokenizer) -> [Int] {
        guard let first = text.unicodeScalars.first, first == " " else { return tokenizer.encode(text, addSpecialTokens: false) }
        let prefixesSpaceLed = tokenizer.encode(" a", addSpecialTokens: false) != tokenizer.encode("a", addSpecialTokens: false)
        return tokenizer.encode(prefixesSpaceLed ? text : " " + text, addSpecialTokens: false)
    }

    /// LLaVA's `tokenizer_image_token`: the text before the one `<image>` tokenized with the tokenizer's special
    /// tokens (BOS), the image, the text after it without them; `<im_start>`/`<im_end>` around the image when
    /// `mm_use_im_start_end`. `inputIDs` holds the single `-200` placeholder OPERA's `generate` sees.
    public func prompt(_ text: String, tokenizer: Tokenizer, image: ImageEmbedding) throws -> MultimodalPrompt {
        let parts = text.components(separatedBy: PromptTemplate.imageMarker)
        guard parts.count == 2 else {
            throw ModelError.invalidInput("the prompt must hold exactly one '\(PromptTemplate.imageMarker)' (it holds \(parts.count - 1)); "
                                          + "the templates add it, with raw or processor write it yourself")
        }
        var before = parts[0], after = parts[1]
        if config.useImageStartEnd {
            // llava/constants.py DEFAULT_IM_START_TOKEN / DEFAULT_IM_END_TOKEN around the image.
            for token in ["<im_start>", "<im_end>"] where tokenizer.id(for: token) == nil {
                throw ModelError.invalidInput("config.json sets mm_use_im_start_end but the tokenizer has no \(token): use the tokenizer saved with the model")
            }
            before += "<im_start>"
            after = "<im_end>" + after
        }
        let head = tokenizer.encode(before), tail = Self.sentencePieceSegment(after, tokenizer: tokenizer)
        let placeholder = LlavaOriginalConfig.imageTokenIndex
        return try MultimodalPrompt(tokenIDs: head + Array(repeating: placeholder, count: image.tokenCount) + tail,
                                    imageTokenID: placeholder, image: image, inputIDs: head + [placeholder] + tail)
    }
}
