import Foundation
import MirageEngine

/// A random-weight folder in the LAVIS layout `mirage models assemble` writes (docs/models.md, "Assembled folder"), for
/// the `instructblip-lavis` and `minigpt4` families: config.json `{"model_type": "lavis-blip2", "lavis_arch",
/// "vision_config": {"num_attention_heads", "tensor_prefix": ""}, "qformer_config": <a BERT config>, "text_config":
/// <a Vicuna (Llama) config>}`, EVA under its bare eva_vit_g.pth names with `ln_vision.*`, `Qformer.bert.*`,
/// `query_tokens`, `llm_proj.*` (InstructBLIP) or `llama_proj.*` (MiniGPT-4), the Vicuna `model.*` and
/// `lm_head.weight` in one model.safetensors, a byte-level BPE tokenizer with `<s>` and `</s>` (the released folders
/// have a SentencePiece tokenizer.model, which this writer does not produce), generation_config.json, and for
/// InstructBLIP `qformer_tokenizer/`.
///
/// The shapes are `SyntheticBlip2Spec`'s (tiny, or 7b):
/// * EVA ViT-g/14 at 224 px: 1408 wide, 39 blocks, 16 heads, MLP 6144 (salesforce/LAVIS lavis/models/eva_vit.py
///   `create_eva_vit_g`: embed_dim 1408, depth 39, num_heads 1408 // 88, mlp_ratio 4.3637, qkv_bias True);
/// * the Q-Former: bert-base-uncased (768 wide, 12 layers, 3072) with cross-attention every 2nd layer and 32 queries
///   (lavis/models/blip2_models/blip2.py `init_Qformer`, cross_attention_freq=2; num_query_token=32 in
///   blip2_vicuna_instruct.py and in Vision-CAIR/MiniGPT-4 minigpt4/models/mini_gpt4.py); InstructBLIP's word
///   embeddings have one row more than BERT's vocabulary, for the `[DEC]` token blip2.py `init_tokenizer` adds
///   (blip2_vicuna_instruct.py: `self.Qformer.resize_token_embeddings(len(self.tokenizer))`);
/// * the projection 768 → 4096: `llm_proj` (blip2_vicuna_instruct.py) or `llama_proj` (mini_gpt4.py:
///   `nn.Linear(self.Qformer.config.hidden_size, self.llama_model.config.hidden_size)`);
/// * Vicuna-7B: LLaMA-7B's shapes (4096 wide, 32 layers, 32 heads, MLP 11008, vocabulary 32000).
public struct SyntheticLavisSpec: Sendable {
    public var architecture: LavisConfig.Architecture
    /// The shapes (tower, Q-Former, queries, decoder), seed and dtype.
    public var base: SyntheticBlip2Spec

    public init(architecture: LavisConfig.Architecture, size: SyntheticBlip2Spec.Size, seed: UInt64, dtype: TensorDType = .f16) {
        self.architecture = architecture
        base = SyntheticBlip2Spec(instruct: architecture == .instructBlip, size: size, seed: seed, dtype: dtype)
    }

    /// The Vicuna tokenizer's special tokens, appended at the end of the vocabulary: EOS, BOS, unknown.
    public static let specialTokens = ["</s>", "<s>", "<unk>"]

    /// The Vicuna config: EOS `</s>` and BOS `<s>` are the tokenizer's ids of those tokens.
    public var text: ModelConfig {
        var t = base.text.config
        t.eosTokenIDs = [t.vocabSize - Self.specialTokens.count]
        t.bosTokenID = t.vocabSize - Self.specialTokens.count + 1
        return t
    }

    var readsInstruction: Bool { architecture == .instructBlip }
    var projectionPrefix: String { readsInstruction ? "llm_proj." : "llama_proj." }

    /// Every tensor in file order (EVA and ln_vision, query_tokens, the Q-Former, the projection, Vicuna).
    public var tensors: SyntheticTensorList {
        let q = base.qformer
        var list = base.visionTensors(layout: .lavis(prefix: "", lnVision: "ln_vision."))
        list += base.queryTokens
        list += base.qformerTensors(names: .lavis(text: readsInstruction), wordRows: readsInstruction ? q.vocabSize + 1 : nil)
        var rest = base.text.tensorList()
        rest.dense(projectionPrefix, rows: text.hiddenSize, cols: q.hiddenSize)
        list += rest
        return list
    }

    /// Weight bytes of the folder (what `mirage run`'s memory estimate counts for it).
    public var weightBytes: Int { tensors.entries.reduce(0) { $0 + $1.0.byteCount } }

    public func write(to folder: URL, progress: (Double) -> Void = { _ in }) throws {
        try createFolder(folder)
        let t = text, v = base.vision, q = base.qformer
        var textJSON = t.transformers5JSON()
        textJSON["pad_token_id"] = 0
        // bert-base-uncased/config.json's fields, the sizes the spec's (LAVIS adds the cross-attention settings at load).
        let bertJSON: [String: Any] = [
            "architectures": ["BertForMaskedLM"], "model_type": "bert", "hidden_size": q.hiddenSize,
            "intermediate_size": q.intermediateSize, "num_hidden_layers": q.numLayers, "num_attention_heads": q.numHeads,
            "hidden_act": "gelu", "layer_norm_eps": Double(q.layerNormEps), "vocab_size": q.vocabSize,
            "max_position_embeddings": q.maxPositionEmbeddings, "type_vocab_size": 2, "pad_token_id": 0,
            "initializer_range": 0.02, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        ]
        try writeJSONFile([
            "model_type": "lavis-blip2", "lavis_arch": architecture.rawValue,
            "vision_config": ["num_attention_heads": v.numHeads, "tensor_prefix": ""] as [String: Any],
            "qformer_config": bertJSON, "text_config": textJSON,
        ], to: folder.appendingPathComponent("config.json"))
        try writeJSONFile(["bos_token_id": t.bosTokenID!, "eos_token_id": t.eosTokenIDs[0], "pad_token_id": 0],
                          to: folder.appendingPathComponent("generation_config.json"))
        let tokenizer = SyntheticTokenizerFiles(vocabularySize: t.vocabSize, specialTokens: Self.specialTokens)
        var tokenizerConfig = tokenizer.tokenizerConfigJSON()
        tokenizerConfig["bos_token"] = Self.specialTokens[1]
        tokenizerConfig["unk_token"] = Self.specialTokens[2]
        try writeJSONFile(tokenizer.tokenizerJSON(), to: folder.appendingPathComponent("tokenizer.json"))
        try writeJSONFile(tokenizerConfig, to: folder.appendingPathComponent("tokenizer_config.json"))
        if readsInstruction {
            try SyntheticBlip2Spec.writeBertTokenizer(to: folder.appendingPathComponent("qformer_tokenizer"),
                                                      vocabularySize: q.vocabSize)
        }
        try writeRandomTensors(tensors.entries, path: folder.appendingPathComponent("model.safetensors").path,
                               seed: base.seed, progress: progress)
    }
}

extension ModelSynthesizer {
    /// `mirage models synth --arch ARCH --size tiny|7b` for the BLIP-2 shapes (`SyntheticBlip2Spec.Size`): `write`
    /// writes the folder of that size and returns the spec whose shapes it used, described in one line.
    static func blip2Shapes(architecture: String,
                            write: @escaping @Sendable (SyntheticBlip2Spec.Size, SynthesisRequest, URL, (Double) -> Void) throws -> SyntheticBlip2Spec)
        -> ModelSynthesizer {
        ModelSynthesizer(architectures: [architecture], sizes: SyntheticBlip2Spec.Size.allCases.map(\.rawValue)) { request, folder, progress in
            guard let size = SyntheticBlip2Spec.Size(rawValue: request.size) else {
                throw ModelError.invalidInput("--size takes tiny or 7b for \(request.architecture) (got '\(request.size)')")
            }
            let spec = try write(size, request, folder, progress)
            let t = spec.text.config, v = spec.vision
            return "\(request.architecture), EVA tower \(v.hiddenSize) wide × \(v.numLayers) blocks at \(v.imageSize)px, "
                + "Q-Former \(spec.qformer.hiddenSize) wide × \(spec.qformer.numLayers) layers, \(spec.numQueryTokens) image rows, "
                + "llama decoder \(t.numLayers) layers hidden \(t.hiddenSize), \(request.dtype.rawValue.lowercased())"
        }
    }

    /// `mirage models synth --arch instructblip-lavis|minigpt4 --size tiny|7b` (`SyntheticLavisSpec`).
    static func lavis(_ architecture: LavisConfig.Architecture, name: String) -> ModelSynthesizer {
        blip2Shapes(architecture: name) { size, request, folder, progress in
            let spec = SyntheticLavisSpec(architecture: architecture, size: size, seed: request.seed, dtype: request.dtype)
            try spec.write(to: folder, progress: progress)
            return spec.base
        }
    }
}
