import Foundation

/// Deterministic random-weight vision towers and LLaVA folders (`mirage models synth --arch llava-*`),
/// written as transformers 5.24 saves them, so transformers loads them too.
public struct SyntheticVisionSpec: Sendable {
    public enum Size: String, Sendable, CaseIterable {
        /// hidden 32, 2 layers, 2 heads, 32×32 images, patch 8 (16 patches).
        case tiny
        /// CLIP ViT-L/14-336 shapes (LLaVA-1.5's tower): hidden 1024, 24 layers, 16 heads, 336×336, patch 14.
        case l14_336 = "l14-336"
    }

    public var kind: VisionConfig.Kind
    public var size: Size
    public var seed: UInt64
    public var dtype: TensorDType

    public init(kind: VisionConfig.Kind, size: Size, seed: UInt64, dtype: TensorDType = .f16) {
        self.kind = kind
        self.size = size
        self.seed = seed
        self.dtype = dtype
    }

    public var config: VisionConfig {
        switch size {
        case .tiny:
            return VisionConfig(kind: kind, hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 2,
                                imageSize: 32, patchSize: 8)
        case .l14_336:
            return VisionConfig(kind: kind, hiddenSize: 1024, intermediateSize: 4096, numLayers: 24, numHeads: 16,
                                imageSize: 336, patchSize: 14)
        }
    }

    /// The tower's tensors under `prefix` ("vision_tower." in a transformers 5 LLaVA, "vision_model." alone).
    /// LayerNorm weights are ones (std nil), biases and everything else uniform with std 0.02.
    func tensors(prefix: String) -> [(SafeTensorsWriter.Declaration, Float?)] {
        let c = config, h = c.hiddenSize
        var list: [(SafeTensorsWriter.Declaration, Float?)] = []
        func add(_ name: String, _ shape: [Int], _ s: Float?) { list.append((.init(name: prefix + name, dtype: dtype, shape: shape), s)) }
        let std: Float = 0.02
        if kind == .clip { add("embeddings.class_embedding", [h], std) }
        add("embeddings.patch_embedding.weight", [h, c.numChannels, c.patchSize, c.patchSize], std)
        if kind == .siglip { add("embeddings.patch_embedding.bias", [h], std) }
        add("embeddings.position_embedding.weight", [c.sequenceLength, h], std)
        if kind == .clip {
            add("pre_layrnorm.weight", [h], nil)
            add("pre_layrnorm.bias", [h], std)
        }
        for l in 0..<c.numLayers {
            let p = "encoder.layers.\(l)."
            for norm in ["layer_norm1", "layer_norm2"] {
                add(p + norm + ".weight", [h], nil)
                add(p + norm + ".bias", [h], std)
            }
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                add(p + "self_attn.\(proj).weight", [h, h], std)
                add(p + "self_attn.\(proj).bias", [h], std)
            }
            add(p + "mlp.fc1.weight", [c.intermediateSize, h], std)
            add(p + "mlp.fc1.bias", [c.intermediateSize], std)
            add(p + "mlp.fc2.weight", [h, c.intermediateSize], std)
            add(p + "mlp.fc2.bias", [h], std)
        }
        add("post_layernorm.weight", [h], nil)
        add("post_layernorm.bias", [h], std)
        return list
    }

    /// A standalone tower folder: config.json (the vision config) and model.safetensors (`vision_model.*`).
    public func write(to folder: URL, progress: (Double) -> Void = { _ in }) throws {
        try createFolder(folder)
        var json = config.transformersJSON()
        if kind == .siglip { json["vision_use_head"] = false }
        try writeJSONFile(json, to: folder.appendingPathComponent("config.json"))
        try writeRandomTensors(tensors(prefix: "vision_model."), path: folder.appendingPathComponent("model.safetensors").path,
                               seed: seed, progress: progress)
    }

    /// transformers' preprocessor_config.json for the tower: CLIPImageProcessor (shortest edge + centre crop,
    /// OpenAI CLIP mean/std) or SiglipImageProcessor (fixed size, mean = std = 0.5); bicubic, 1/255.
    public var preprocessorJSON: [String: Any] {
        let s = config.imageSize
        if kind == .clip {
            return ["image_processor_type": "CLIPImageProcessor", "do_resize": true, "size": ["shortest_edge": s],
                    "do_center_crop": true, "crop_size": ["height": s, "width": s], "resample": 3,
                    "do_rescale": true, "rescale_factor": 1.0 / 255, "do_normalize": true, "do_convert_rgb": true,
                    "image_mean": ImagePreprocessorConfig.openAIClipMean, "image_std": ImagePreprocessorConfig.openAIClipStd]
        }
        return ["image_processor_type": "SiglipImageProcessor", "do_resize": true, "size": ["height": s, "width": s],
                "resample": 3, "do_rescale": true, "rescale_factor": 1.0 / 255, "do_normalize": true, "do_convert_rgb": true,
                "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]]
    }
}

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

private func createFolder(_ folder: URL) throws {
    do { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
        throw ModelError.writeFailed(path: folder.path, reason: error.localizedDescription)
    }
}
