import Foundation
import MirageEngine

/// A random-weight Shikra folder (`mirage models synth --arch shikra`): config.json as the merged
/// shikra-7b has it (`ShikraLlamaForCausalLM`, LLaMA fields at the top level, `mm_vision_tower`,
/// `mm_hidden_size`, `mm_vision_select_layer: -2`, `mm_use_im_start_end: true`), `model.*`,
/// `model.mm_projector.*` (one linear layer), `lm_head.weight`, a tokenizer whose last ids are `<im_patch>`,
/// `<im_start>`, `<im_end>`, and the CLIP tower folder beside it (ViT-L/14 at 224 px for `7b`).
/// Weights are safetensors and the tokenizer tokenizer.json (the published folders: .bin shards and a
/// SentencePiece tokenizer.model).
public struct SyntheticShikraSpec: Sendable {
    public var text: SyntheticModelSpec
    public var vision: SyntheticVisionSpec

    public init(request: SynthesisRequest) throws {
        (text, vision) = try SyntheticLlavaOriginalSpec.llamaWithCLIP(request, family: "shikra", tower: .l14_224)
    }

    /// `mm_vision_tower`: a name of its own, so a random tower is never taken for OpenAI's CLIP.
    public var towerName: String {
        "mirage-synthetic/clip-vit-\(vision.size == .tiny ? "tiny-patch8-32" : "large-patch14")-seed\(vision.seed)"
    }

    /// Writes the model into `folder` and the tower beside it; returns the tower folder.
    @discardableResult
    public func write(to folder: URL, progress: (Double) -> Void = { _ in }) throws -> URL {
        try createFolder(folder)
        var t = text.config
        let v = vision.config
        let specials = SyntheticModelSpec.specialTokens + [ShikraForCausalLM.patchToken, ShikraForCausalLM.startToken,
                                                           ShikraForCausalLM.endToken]
        t.eosTokenIDs = [t.vocabSize - specials.count]
        var json = t.transformers5JSON()
        json["architectures"] = ["ShikraLlamaForCausalLM"]
        json["model_type"] = "shikra"
        json["mm_vision_tower"] = towerName
        json["mm_hidden_size"] = v.hiddenSize
        json["mm_vision_select_layer"] = -2
        json["mm_use_im_start_end"] = true
        json["use_mm_proj"] = true
        json["transformers_version"] = "4.28.0.dev0"
        try writeJSONFile(json, to: folder.appendingPathComponent("config.json"))
        try writeJSONFile(["eos_token_id": t.eosTokenIDs[0]], to: folder.appendingPathComponent("generation_config.json"))
        let tokenizer = SyntheticTokenizerFiles(vocabularySize: t.vocabSize, specialTokens: specials)
        try writeJSONFile(tokenizer.tokenizerJSON(), to: folder.appendingPathComponent("tokenizer.json"))
        try writeJSONFile(tokenizer.tokenizerConfigJSON(), to: folder.appendingPathComponent("tokenizer_config.json"))
        var tensors = text.tensors
        for (name, shape) in [("weight", [t.hiddenSize, v.hiddenSize]), ("bias", [t.hiddenSize])] {
            tensors.append((.init(name: "model.mm_projector." + name, dtype: text.dtype, shape: shape), 0.02))
        }
        try writeRandomTensors(tensors, path: folder.appendingPathComponent("model.safetensors").path, seed: text.seed,
                               progress: progress)
        let tower = folder.standardizedFileURL.deletingLastPathComponent()
            .appendingPathComponent((towerName as NSString).lastPathComponent)
        try vision.write(to: tower)
        try writeJSONFile(vision.preprocessorJSON, to: tower.appendingPathComponent("preprocessor_config.json"))
        return tower
    }
}
