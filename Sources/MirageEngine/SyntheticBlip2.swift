import Foundation
import MirageImaging

/// Deterministic random-weight InstructBLIP / BLIP-2 (Llama) folders in transformers 5.24's save_pretrained layout
/// (`vision_model.*`, `query_tokens`, `qformer.*`, `language_projection.*`, `language_model.*`), with the processor
/// files (processor_config.json with a BlipImageProcessor, the decoder's tokenizer with `<image>` as its last token,
/// and for InstructBLIP a `qformer_tokenizer/` BERT vocabulary). For benchmarks and end-to-end checks.
public struct SyntheticBlip2Spec: Sendable {
    public enum Size: String, Sendable, CaseIterable {
        /// Vision 32 wide (2 blocks, 32-pixel images, patch 8), Q-Former 32 wide (2 layers), 4 queries, the tiny decoder.
        case tiny
        /// Salesforce/instructblip-vicuna-7b's shapes: EVA ViT-g/14 at 224, BERT-base Q-Former, 32 queries, LLaMA-7B.
        case sevenB = "7b"
    }

    /// True: InstructBLIP (the Q-Former reads the instruction); false: BLIP-2 with a Llama decoder.
    public var instruct: Bool
    public var size: Size
    public var seed: UInt64
    public var dtype: TensorDType

    public init(instruct: Bool, size: Size, seed: UInt64, dtype: TensorDType = .f16) {
        self.instruct = instruct
        self.size = size
        self.seed = seed
        self.dtype = dtype
    }

    public static let imageToken = "<image>"

    public var text: SyntheticModelSpec {
        SyntheticModelSpec(architecture: .llama, size: size == .tiny ? .tiny : .sevenB, seed: seed, dtype: dtype)
    }

    public var vision: BlipVisionConfig {
        size == .tiny
            ? BlipVisionConfig(hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 2, imageSize: 32, patchSize: 8)
            : .evaViTg
    }

    public var qformer: QFormerConfig {
        size == .tiny
            ? QFormerConfig(hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 2, crossAttentionFrequency: 2,
                            encoderHiddenSize: vision.hiddenSize, vocabSize: Self.bertVocabulary(size: 200).count,
                            maxPositionEmbeddings: 64)
            : QFormerConfig(encoderHiddenSize: vision.hiddenSize)
    }

    public var numQueryTokens: Int { size == .tiny ? 4 : 32 }

    /// A BERT vocabulary of `size` entries: the five special tokens, printable ASCII, `##` continuations of letters
    /// and digits, then `[unusedN]` fillers.
    static func bertVocabulary(size: Int) -> [String] {
        var tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        let printable = (33...126).map { String(UnicodeScalar(UInt8($0))) }.filter { $0.lowercased() == $0 }
        tokens += printable
        tokens += printable.filter { $0.first!.isLetter || $0.first!.isNumber }.map { "##" + $0 }
        var i = 0
        while tokens.count < size { tokens.append("[unused\(i)]"); i += 1 }
        return Array(tokens.prefix(size))
    }

    /// The vision tower's tensors under `prefix` (transformers' Blip2VisionModel names).
    func visionTensors(prefix: String) -> [(SafeTensorsWriter.Declaration, Float?)] {
        let c = vision, h = c.hiddenSize, n = c.sequenceLength
        var list: [(SafeTensorsWriter.Declaration, Float?)] = []
        func add(_ name: String, _ shape: [Int], _ s: Float?) { list.append((.init(name: prefix + name, dtype: dtype, shape: shape), s)) }
        let std: Float = 0.02
        add("embeddings.class_embedding", [1, 1, h], std)
        add("embeddings.patch_embedding.weight", [h, 3, c.patchSize, c.patchSize], std)
        add("embeddings.patch_embedding.bias", [h], std)
        add("embeddings.position_embedding", [1, n, h], std)
        for l in 0..<c.numLayers {
            let p = "encoder.layers.\(l)."
            for norm in ["layer_norm1", "layer_norm2"] {
                add(p + norm + ".weight", [h], nil)
                add(p + norm + ".bias", [h], std)
            }
            add(p + "self_attn.qkv.weight", [3 * h, h], std)
            add(p + "self_attn.qkv.bias", [3 * h], std)
            add(p + "self_attn.projection.weight", [h, h], std)
            add(p + "self_attn.projection.bias", [h], std)
            add(p + "mlp.fc1.weight", [c.intermediateSize, h], std)
            add(p + "mlp.fc1.bias", [c.intermediateSize], std)
            add(p + "mlp.fc2.weight", [h, c.intermediateSize], std)
            add(p + "mlp.fc2.bias", [h], std)
        }
        add("post_layernorm.weight", [h], nil)
        add("post_layernorm.bias", [h], std)
        return list
    }

    /// The Q-Former's tensors (transformers' names; InstructBLIP adds the text embeddings and text feed-forward).
    func qformerTensors() -> [(SafeTensorsWriter.Declaration, Float?)] {
        let c = qformer, h = c.hiddenSize, f = c.intermediateSize
        var list: [(SafeTensorsWriter.Declaration, Float?)] = []
        func add(_ name: String, _ shape: [Int], _ s: Float?) { list.append((.init(name: "qformer." + name, dtype: dtype, shape: shape), s)) }
        let std: Float = 0.02
        func norm(_ p: String) { add(p + ".weight", [h], nil); add(p + ".bias", [h], std) }
        func dense(_ p: String, _ rows: Int, _ cols: Int) { add(p + ".weight", [rows, cols], std); add(p + ".bias", [rows], std) }
        if instruct {
            add("embeddings.word_embeddings.weight", [c.vocabSize, h], std)
            add("embeddings.position_embeddings.weight", [c.maxPositionEmbeddings, h], std)
            norm("embeddings.layernorm")
        } else {
            norm("layernorm")
        }
        for l in 0..<c.numLayers {
            let p = "encoder.layer.\(l)."
            var blocks = [("attention", h)]
            if c.hasCrossAttention(l) { blocks.append(("crossattention", c.encoderHiddenSize)) }
            for (block, width) in blocks {
                dense(p + block + ".attention.query", h, h)
                dense(p + block + ".attention.key", h, width)
                dense(p + block + ".attention.value", h, width)
                dense(p + block + ".output.dense", h, h)
                norm(p + block + ".output.LayerNorm")
            }
            for (inner, outer) in [("intermediate_query", "output_query")] + (instruct ? [("intermediate", "output")] : []) {
                dense(p + inner + ".dense", f, h)
                dense(p + outer + ".dense", h, f)
                norm(p + outer + ".LayerNorm")
            }
        }
        return list
    }

    public func write(to folder: URL, progress: (Double) -> Void = { _ in }) throws {
        do { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
            throw ModelError.writeFailed(path: folder.path, reason: error.localizedDescription)
        }
        var t = text.config
        let imageTokenID = t.vocabSize - 1
        t.eosTokenIDs = [t.vocabSize - SyntheticModelSpec.specialTokens.count - 1]
        var textJSON = t.transformers5JSON()
        textJSON.removeValue(forKey: "architectures")
        let v = vision, q = qformer
        let visionJSON: [String: Any] = [
            "model_type": instruct ? "instructblip_vision_model" : "blip_2_vision_model", "hidden_size": v.hiddenSize,
            "intermediate_size": v.intermediateSize, "num_hidden_layers": v.numLayers, "num_attention_heads": v.numHeads,
            "image_size": v.imageSize, "patch_size": v.patchSize, "layer_norm_eps": Double(v.layerNormEps),
            "hidden_act": v.activation.huggingFaceName, "qkv_bias": v.qkvBias,
        ]
        let qformerJSON: [String: Any] = [
            "model_type": instruct ? "instructblip_qformer" : "blip_2_qformer", "hidden_size": q.hiddenSize,
            "intermediate_size": q.intermediateSize, "num_hidden_layers": q.numLayers, "num_attention_heads": q.numHeads,
            "cross_attention_frequency": q.crossAttentionFrequency, "encoder_hidden_size": q.encoderHiddenSize,
            "layer_norm_eps": Double(q.layerNormEps), "hidden_act": q.activation.huggingFaceName,
            "vocab_size": q.vocabSize, "max_position_embeddings": q.maxPositionEmbeddings, "pad_token_id": 0,
        ]
        let architecture = instruct ? "InstructBlipForConditionalGeneration" : "Blip2ForConditionalGeneration"
        try writeJSONFile([
            "architectures": [architecture], "model_type": instruct ? "instructblip" : "blip-2",
            "text_config": textJSON, "vision_config": visionJSON, "qformer_config": qformerJSON,
            "num_query_tokens": numQueryTokens, "image_token_index": imageTokenID,
            "use_decoder_only_language_model": true, "dtype": textJSON["dtype"] ?? "float16",
            "transformers_version": "5.24.0",
        ], to: folder.appendingPathComponent("config.json"))
        try writeJSONFile(["eos_token_id": t.eosTokenIDs[0], "transformers_version": "5.24.0"],
                          to: folder.appendingPathComponent("generation_config.json"))
        try writeJSONFile([
            "processor_class": instruct ? "InstructBlipProcessor" : "Blip2Processor", "num_query_tokens": numQueryTokens,
            "image_processor": [
                "image_processor_type": "BlipImageProcessor", "do_resize": true,
                "size": ["height": v.imageSize, "width": v.imageSize], "resample": 3, "do_rescale": true,
                "rescale_factor": 1.0 / 255, "do_normalize": true, "do_convert_rgb": true,
                "image_mean": ImagePreprocessorConfig.openAIClipMean, "image_std": ImagePreprocessorConfig.openAIClipStd,
            ] as [String: Any],
        ], to: folder.appendingPathComponent("processor_config.json"))
        let tokenizer = SyntheticTokenizerFiles(vocabularySize: t.vocabSize,
                                                specialTokens: SyntheticModelSpec.specialTokens + [Self.imageToken])
        try writeJSONFile(tokenizer.tokenizerJSON(), to: folder.appendingPathComponent("tokenizer.json"))
        try writeJSONFile(tokenizer.tokenizerConfigJSON(), to: folder.appendingPathComponent("tokenizer_config.json"))
        if instruct {
            let bert = folder.appendingPathComponent("qformer_tokenizer")
            do {
                try FileManager.default.createDirectory(at: bert, withIntermediateDirectories: true)
                try (Self.bertVocabulary(size: q.vocabSize).joined(separator: "\n") + "\n")
                    .write(to: bert.appendingPathComponent("vocab.txt"), atomically: true, encoding: .utf8)
            } catch {
                throw ModelError.writeFailed(path: bert.path, reason: error.localizedDescription)
            }
            try writeJSONFile(["tokenizer_class": "BertTokenizer", "do_lower_case": true, "tokenize_chinese_chars": true,
                               "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                               "mask_token": "[MASK]"], to: bert.appendingPathComponent("tokenizer_config.json"))
        }
        var tensors = text.tensors.map { declaration, std -> (SafeTensorsWriter.Declaration, Float?) in
            var d = declaration
            d.name = "language_model." + d.name
            return (d, std)
        }
        tensors.append((.init(name: "language_projection.weight", dtype: dtype, shape: [t.hiddenSize, q.hiddenSize]), 0.02))
        tensors.append((.init(name: "language_projection.bias", dtype: dtype, shape: [t.hiddenSize]), 0.02))
        tensors.append((.init(name: "query_tokens", dtype: dtype, shape: [1, numQueryTokens, q.hiddenSize]), 0.02))
        tensors += qformerTensors()
        tensors += visionTensors(prefix: "vision_model.")
        try writeRandomTensors(tensors, path: folder.appendingPathComponent("model.safetensors").path,
                               seed: seed, progress: progress)
    }

    /// Only the image encoder (`vision_model.*`, `query_tokens`, `qformer.*`: no decoder), for measuring the tower
    /// and the Q-Former alone without writing a 7B decoder.
    public func writeImageEncoder(to folder: URL, progress: (Double) -> Void = { _ in }) throws {
        do { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
            throw ModelError.writeFailed(path: folder.path, reason: error.localizedDescription)
        }
        let tensors = [(SafeTensorsWriter.Declaration(name: "query_tokens", dtype: dtype, shape: [1, numQueryTokens, qformer.hiddenSize]),
                        Float(0.02) as Float?)] + qformerTensors() + visionTensors(prefix: "vision_model.")
        try writeRandomTensors(tensors, path: folder.appendingPathComponent("model.safetensors").path, seed: seed,
                               progress: progress)
    }
}
