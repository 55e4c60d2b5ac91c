import Foundation
import MirageEngine

/// A random-weight LLaVA folder: a synthetic decoder (`SyntheticModelSpec`) and tower, the projector,
/// config.json in transformers 5's layout, preprocessor and processor configs, and a byte-level BPE
/// tokenizer with `<image>` as its last token (the image token). CLIP towers use LLaVA-1.5's
/// `vision_feature_layer: -2` with the "default" strategy; SigLIP towers `-1` with "full".
public struct SyntheticLlavaSpec: Sendable {
    public var text: SyntheticModelSpec
    public var vision: SyntheticVisionSpec
    /// Whole words given their own tokens (lower-case ASCII), for demos whose random model should write
    /// words rather than byte soup; their LM-head rows are multiplied by `wordLogitScale` (untied heads
    /// only), so greedy decoding picks them over the byte and prefix tokens. Empty: the plain synthetic model.
    public var words: [String] = []
    public var wordLogitScale: Float = 1

    public init(text: SyntheticModelSpec, vision: SyntheticVisionSpec) {
        self.text = text
        self.vision = vision
    }

    public static let imageToken = "<image>"

    public var config: LlavaConfig {
        var t = text.config
        t.eosTokenIDs = [t.vocabSize - SyntheticModelSpec.specialTokens.count - 1]
        let clip = vision.kind == .clip
        return LlavaConfig(text: t, vision: vision.config, imageTokenID: t.vocabSize - 1,
                           featureLayers: [clip ? -2 : -1], featureSelect: clip ? .default : .full)
    }

    public func write(to folder: URL, progress: (Double) -> Void = { _ in }) throws {
        try createFolder(folder)
        let c = config, t = c.text
        var textJSON = t.transformers5JSON()
        textJSON.removeValue(forKey: "architectures")
        var visionJSON = c.vision.transformersJSON()
        if c.vision.kind == .siglip { visionJSON["vision_use_head"] = false }
        let json: [String: Any] = [
            "architectures": ["LlavaForConditionalGeneration"], "model_type": "llava", "text_config": textJSON,
            "vision_config": visionJSON, "image_token_id": c.imageTokenID, "image_seq_length": c.imageTokenCount,
            "vision_feature_layer": c.featureLayers[0], "vision_feature_select_strategy": c.featureSelect.rawValue,
            "projector_hidden_act": "gelu", "multimodal_projector_bias": true, "tie_word_embeddings": t.tieWordEmbeddings,
            "dtype": textJSON["dtype"] ?? "float16", "transformers_version": "5.24.0",
        ]
        try writeJSONFile(json, to: folder.appendingPathComponent("config.json"))
        try writeJSONFile(["eos_token_id": t.eosTokenIDs[0], "transformers_version": "5.24.0"],
                          to: folder.appendingPathComponent("generation_config.json"))
        try writeJSONFile(vision.preprocessorJSON, to: folder.appendingPathComponent("preprocessor_config.json"))
        try writeJSONFile(["processor_class": "LlavaProcessor", "image_token": Self.imageToken,
                           "patch_size": c.vision.patchSize, "vision_feature_select_strategy": c.featureSelect.rawValue,
                           "num_additional_image_tokens": c.vision.hasClassToken ? 1 : 0],
                          to: folder.appendingPathComponent("processor_config.json"))
        var tokenizer = SyntheticTokenizerFiles(vocabularySize: t.vocabSize,
                                                specialTokens: SyntheticModelSpec.specialTokens + [Self.imageToken])
        tokenizer.words = words
        try writeJSONFile(tokenizer.tokenizerJSON(), to: folder.appendingPathComponent("tokenizer.json"))
        try writeJSONFile(tokenizer.tokenizerConfigJSON(), to: folder.appendingPathComponent("tokenizer_config.json"))

        // transformers 5.24's save_pretrained layout: language_model.model.*, language_model.lm_head.weight,
        // multi_modal_projector.*, vision_tower.* (no vision_model.).
        var tensors = text.tensors.map { declaration, std -> (SafeTensorsWriter.Declaration, Float?) in
            var d = declaration
            d.name = "language_model." + d.name
            return (d, std)
        }
        let h = t.hiddenSize, v = c.vision.hiddenSize * c.featureLayers.count
        for (name, shape) in [("linear_1.weight", [h, v]), ("linear_1.bias", [h]), ("linear_2.weight", [h, h]), ("linear_2.bias", [h])] {
            tensors.append((.init(name: "multi_modal_projector." + name, dtype: text.dtype, shape: shape), 0.02))
        }
        tensors += vision.tensors(prefix: "vision_tower.")
        var rowScales: [String: [Float]] = [:]
        if !words.isEmpty && wordLogitScale != 1 {
            guard !t.tieWordEmbeddings else {
                throw ModelError.invalidInput("word logit scaling needs an untied LM head (a llama text model)")
            }
            var scales = [Float](repeating: 1, count: t.vocabSize)
            for id in tokenizer.wordTokenIDs() { scales[id] = wordLogitScale }
            rowScales["language_model.lm_head.weight"] = scales
        }
        try writeRandomTensors(tensors, path: folder.appendingPathComponent("model.safetensors").path,
                               seed: text.seed, rowScales: rowScales, progress: progress)
    }
}
