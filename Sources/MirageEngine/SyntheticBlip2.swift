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
    public static func bertVocabulary(size: Int) -> [String] {
        var tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        let printable = (33...126).map { String(UnicodeScalar(UInt8($0))) }.filter { $0.lowercased() == $0 }
        tokens += printable
        tokens += printable.filter { $0.first!.isLetter || $0.first!.isNumber }.map { "##" + $0 }
        var i = 0
        while tokens.count < size { tokens.append("[unused\(i)]"); i += 1 }
        return Array(tokens.prefix(size))
    }

    /// Writes `folder` as a BERT tokenizer folder (`vocab.txt` of `bertVocabulary(size:)`, `tokenizer_config.json` of
    /// an uncased `BertTokenizer`): InstructBLIP's `qformer_tokenizer/` in both layouts.
    public static func writeBertTokenizer(to folder: URL, vocabularySize: Int) throws {
        try createFolder(folder)
        do {
            try (bertVocabulary(size: vocabularySize).joined(separator: "\n") + "\n")
                .write(to: folder.appendingPathComponent("vocab.txt"), atomically: true, encoding: .utf8)
        } catch {
            throw ModelError.writeFailed(path: folder.path, reason: error.localizedDescription)
        }
        try writeJSONFile(["tokenizer_class": "BertTokenizer", "do_lower_case": true, "tokenize_chinese_chars": true,
                           "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                           "mask_token": "[MASK]"], to: folder.appendingPathComponent("tokenizer_config.json"))
    }

    /// The EVA tower's tensors in either layout: transformers' Blip2VisionModel names under `prefix`
    /// (`embeddings.*`, `encoder.layers.N.{layer_norm1, self_attn.qkv, self_attn.projection, layer_norm2, mlp}`,
    /// the fused qkv bias, `post_layernorm`) or LAVIS' eva_vit.py names (`cls_token`, `patch_embed.proj`,
    /// `pos_embed`, `blocks.N.{norm1, attn.qkv, attn.q_bias, attn.v_bias, attn.proj, norm2, mlp}`) with `ln_vision`.
    public func visionTensors(layout: BlipVisionLayout) -> SyntheticTensorList {
        let c = vision, h = c.hiddenSize, n = c.sequenceLength
        var list = SyntheticTensorList(dtype: dtype)
        let lavis: Bool, p: String
        switch layout {
        case .transformers(let prefix): (lavis, p) = (false, prefix)
        case .lavis(let prefix, _): (lavis, p) = (true, prefix)
        }
        list.add(p + (lavis ? "cls_token" : "embeddings.class_embedding"), [1, 1, h])
        list.add(p + (lavis ? "patch_embed.proj.weight" : "embeddings.patch_embedding.weight"), [h, 3, c.patchSize, c.patchSize])
        list.add(p + (lavis ? "patch_embed.proj.bias" : "embeddings.patch_embedding.bias"), [h])
        list.add(p + (lavis ? "pos_embed" : "embeddings.position_embedding"), [1, n, h])
        for l in 0..<c.numLayers {
            let b = p + (lavis ? "blocks.\(l)." : "encoder.layers.\(l).")
            list.norm(b + (lavis ? "norm1." : "layer_norm1."), h)
            list.norm(b + (lavis ? "norm2." : "layer_norm2."), h)
            if lavis {
                list.add(b + "attn.qkv.weight", [3 * h, h])
                list.add(b + "attn.q_bias", [h])
                list.add(b + "attn.v_bias", [h])
                list.dense(b + "attn.proj.", rows: h, cols: h)
            } else {
                list.dense(b + "self_attn.qkv.", rows: 3 * h, cols: h)
                list.dense(b + "self_attn.projection.", rows: h, cols: h)
            }
            list.mlp(b + "mlp.", hidden: h, intermediate: c.intermediateSize)
        }
        switch layout {
        case .transformers: list.norm(p + "post_layernorm.", h)
        case .lavis(_, let lnVision): list.norm(lnVision, h)
        }
        return list
    }

    /// The Q-Former's tensors under `names` (transformers' `qformer.*` or LAVIS' `Qformer.bert.*`); a Q-Former that
    /// reads the instruction (`names.textEmbeddings`) adds the word / position embeddings (`wordRows` rows, default
    /// the vocabulary) and the text feed-forward.
    public func qformerTensors(names: QFormerNames, wordRows: Int? = nil) -> SyntheticTensorList {
        Self.qformerTensors(config: qformer, names: names, dtype: dtype, wordRows: wordRows)
    }

    /// The tensors of a Q-Former of any configuration `c` (as `qformerTensors(names:wordRows:)`).
    public static func qformerTensors(config c: QFormerConfig, names: QFormerNames, dtype: TensorDType,
                                      wordRows: Int? = nil) -> SyntheticTensorList {
        let h = c.hiddenSize, f = c.intermediateSize
        var list = SyntheticTensorList(dtype: dtype)
        if let text = names.textEmbeddings {
            list.add(text + "word_embeddings.weight", [wordRows ?? c.vocabSize, h])
            list.add(text + "position_embeddings.weight", [c.maxPositionEmbeddings, h])
        }
        list.norm(names.embeddingNorm, h)
        for l in 0..<c.numLayers {
            let p = names.body + "encoder.layer.\(l)."
            var blocks = [("attention", h)]
            if c.hasCrossAttention(l) { blocks.append(("crossattention", c.encoderHiddenSize)) }
            for (block, width) in blocks {
                let inner = p + block + "." + names.attentionInner + "."
                list.dense(inner + "query.", rows: h, cols: h)
                list.dense(inner + "key.", rows: h, cols: width)
                list.dense(inner + "value.", rows: h, cols: width)
                list.dense(p + block + ".output.dense.", rows: h, cols: h)
                list.norm(p + block + ".output.LayerNorm.", h)
            }
            let feedForwards = [("intermediate_query", "output_query")] + (names.textEmbeddings == nil ? [] : [("intermediate", "output")])
            for (inner, outer) in feedForwards {
                list.dense(p + inner + ".dense.", rows: f, cols: h)
                list.dense(p + outer + ".dense.", rows: h, cols: f)
                list.norm(p + outer + ".LayerNorm.", h)
            }
        }
        return list
    }

    /// `query_tokens` `[1, queries, qformer width]`.
    public var queryTokens: SyntheticTensorList {
        var list = SyntheticTensorList(dtype: dtype)
        list.add("query_tokens", [1, numQueryTokens, qformer.hiddenSize])
        return list
    }

    /// The transformers layout's Q-Former names (InstructBLIP's with the text embeddings, BLIP-2's without).
    var qformerNames: QFormerNames { instruct ? .instructBlip : .blip2 }

    public func write(to folder: URL, progress: (Double) -> Void = { _ in }) throws {
        try createFolder(folder)
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
            try Self.writeBertTokenizer(to: folder.appendingPathComponent("qformer_tokenizer"), vocabularySize: q.vocabSize)
        }
        var tensors = text.tensorList(prefix: "language_model.")
        var projection = SyntheticTensorList(dtype: dtype)
        projection.dense("language_projection.", rows: t.hiddenSize, cols: q.hiddenSize)
        tensors += projection
        tensors += queryTokens
        tensors += qformerTensors(names: qformerNames)
        tensors += visionTensors(layout: .transformers(prefix: "vision_model."))
        try writeRandomTensors(tensors.entries, path: folder.appendingPathComponent("model.safetensors").path,
                               seed: seed, progress: progress)
    }

    /// Only the image encoder (`vision_model.*`, `query_tokens`, `qformer.*`: no decoder), for measuring the tower
    /// and the Q-Former alone without writing a 7B decoder.
    public func writeImageEncoder(to folder: URL, progress: (Double) -> Void = { _ in }) throws {
        try createFolder(folder)
        var tensors = queryTokens
        tensors += qformerTensors(names: qformerNames)
        tensors += visionTensors(layout: .transformers(prefix: "vision_model."))
        try writeRandomTensors(tensors.entries, path: folder.appendingPathComponent("model.safetensors").path, seed: seed,
                               progress: progress)
    }
}
