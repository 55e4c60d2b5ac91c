import Foundation
import MirageEngine

/// A random-weight LLaVA-1.5 in the original layout (`mirage models synth --arch llava-original`): the model
/// folder (config.json with the LLaMA fields at the top level and the `mm_*` fields, `model.*`,
/// `model.mm_projector.{0,2}.*`, `lm_head.weight`) and, beside it, the CLIP tower folder its
/// `mm_vision_tower` names (config.json, `vision_model.*`, preprocessor_config.json).
///
/// Weights are written as safetensors and the tokenizer as tokenizer.json (a byte-level BPE): the published
/// folders ship `pytorch_model-*.bin` shards and a SentencePiece `tokenizer.model`, which this writer does
/// not produce.
public struct SyntheticLlavaOriginalSpec: Sendable {
    public var text: SyntheticModelSpec
    public var vision: SyntheticVisionSpec

    public init(request: SynthesisRequest) throws {
        (text, vision) = try Self.llamaWithCLIP(request, family: "llava-original", tower: .l14_336)
    }

    /// A Llama decoder and a CLIP tower for `request` (tiny or 7b; `tower` is the 7b tower's size), as the
    /// original-layout families (llava-original, shikra) synthesize them.
    static func llamaWithCLIP(_ request: SynthesisRequest, family: String,
                              tower: SyntheticVisionSpec.Size) throws -> (SyntheticModelSpec, SyntheticVisionSpec) {
        guard let size = SyntheticModelSpec.Size(rawValue: request.size), size != .halfB else {
            throw ModelError.invalidInput("\(family) synth takes --size tiny or 7b (got '\(request.size)')")
        }
        if let vision = request.vision, vision != "clip" {
            throw ModelError.invalidInput("\(family) has a CLIP tower only (got --vision \(vision))")
        }
        return (SyntheticModelSpec(architecture: .llama, size: size, seed: request.seed, dtype: request.dtype),
                SyntheticVisionSpec(kind: .clip, size: size == .tiny ? .tiny : tower, seed: request.seed, dtype: request.dtype))
    }

    /// `mm_vision_tower`: a name of its own, so a random tower is never taken for OpenAI's CLIP.
    public var towerName: String {
        "mirage-synthetic/clip-vit-\(vision.size == .tiny ? "tiny-patch8-32" : "large-patch14-336")-seed\(vision.seed)"
    }

    /// CLS dropped (`mm_vision_select_feature: patch`).
    public var imageTokenCount: Int { vision.config.numPatches }

    /// Writes the model into `folder` and the tower beside it (named by the last component of `towerName`);
    /// returns the tower folder.
    @discardableResult
    public func write(to folder: URL, progress: (Double) -> Void = { _ in }) throws -> URL {
        try createFolder(folder)
        let t = text.config, v = vision.config
        var json = t.transformers5JSON()
        json["architectures"] = ["LlavaLlamaForCausalLM"]
        json["model_type"] = "llava"
        // The multimodal fields of liuhaotian/llava-v1.5-7b's config.json.
        json["mm_vision_tower"] = towerName
        json["mm_projector_type"] = "mlp2x_gelu"
        json["mm_hidden_size"] = v.hiddenSize
        json["mm_vision_select_layer"] = -2
        json["mm_vision_select_feature"] = "patch"
        json["mm_use_im_start_end"] = false
        json["mm_use_im_patch_token"] = false
        json["image_aspect_ratio"] = "pad"
        json["transformers_version"] = "4.31.0"
        try writeJSONFile(json, to: folder.appendingPathComponent("config.json"))
        try writeJSONFile(["eos_token_id": t.eosTokenIDs[0]], to: folder.appendingPathComponent("generation_config.json"))
        let tokenizer = SyntheticTokenizerFiles(vocabularySize: t.vocabSize, specialTokens: SyntheticModelSpec.specialTokens)
        try writeJSONFile(tokenizer.tokenizerJSON(), to: folder.appendingPathComponent("tokenizer.json"))
        try writeJSONFile(tokenizer.tokenizerConfigJSON(), to: folder.appendingPathComponent("tokenizer_config.json"))
        var tensors = text.tensors
        let h = t.hiddenSize
        for (name, shape) in [("0.weight", [h, v.hiddenSize]), ("0.bias", [h]), ("2.weight", [h, h]), ("2.bias", [h])] {
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
