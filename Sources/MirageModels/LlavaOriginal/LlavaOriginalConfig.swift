import Foundation
import MirageEngine

/// The original LLaVA-1.5 checkpoint layout (liuhaotian/llava-v1.5-7b, as haotian-liu/LLaVA and OPERA's
/// `minigpt4/models/llava.py` load it): `LlavaLlamaForCausalLM` with the LLaMA fields at the top level of
/// config.json and the multimodal ones beside them (`mm_vision_tower`, `mm_projector_type`, ...). The CLIP
/// tower is not in the checkpoint: `mm_vision_tower` names its own folder (`VisionTowerLocator`).
public struct LlavaOriginalConfig: Sendable, Equatable {
    /// `mm_projector_type` (haotian-liu/LLaVA, llava/model/multimodal_projector/builder.py): `linear`, or
    /// `mlp{N}x_gelu` = N linear layers with exact GELU between them (LLaVA-1.5: `mlp2x_gelu`).
    public enum Projector: Sendable, Equatable {
        case linear
        case mlpGELU(layers: Int)

        init?(name: String) {
            if name == "linear" { self = .linear; return }
            guard name.hasPrefix("mlp"), name.hasSuffix("x_gelu"),
                  let n = Int(name.dropFirst(3).dropLast(6)), (1...8).contains(n) else { return nil }
            self = .mlpGELU(layers: n)
        }

        /// Tensor names of the linear layers under `model.mm_projector` (nn.Sequential indices: GELUs take
        /// the odd ones).
        var linearNames: [String] {
            switch self {
            case .linear: return ["model.mm_projector."]
            case .mlpGELU(let n): return (0..<n).map { "model.mm_projector.\(2 * $0)." }
            }
        }
    }

    /// `mm_vision_select_feature`: `patch` drops the CLS row, `cls_patch` keeps it (llava_arch.py `feature_select`).
    public enum SelectFeature: String, Sendable, Equatable {
        case patch
        case clsPatch = "cls_patch"
    }

    public var text: ModelConfig
    /// `mm_vision_tower`: the tower's Hugging Face name or path.
    public var visionTower: String
    public var projector: Projector
    /// `mm_hidden_size`: the tower's width the projector reads.
    public var mmHiddenSize: Int
    /// `mm_vision_select_layer`: index into the tower's hidden states (negative from the end; LLaVA-1.5: -2).
    public var selectLayer: Int
    public var selectFeature: SelectFeature
    /// `mm_use_im_start_end`: `<im_start>`/`<im_end>` tokens around the image (false in LLaVA-1.5).
    public var useImageStartEnd: Bool
    /// `image_aspect_ratio: pad`: LLaVA's own evaluation pads images to squares (`expand2square`).
    public var padsToSquare: Bool

    /// The placeholder id LLaVA splices into `input_ids` for the image (llava/constants.py `IMAGE_TOKEN_INDEX`).
    public static let imageTokenIndex = -200

    /// True for an original-layout LLaVA config.json: architecture `LlavaLlamaForCausalLM`, or `model_type`
    /// llava with `mm_vision_tower` and no `text_config` (the transformers layout has one).
    public static func isOriginal(_ json: [String: Any]) -> Bool {
        guard json["text_config"] == nil else { return false }
        return ((json["architectures"] as? [String])?.contains("LlavaLlamaForCausalLM") ?? false)
            || ((json["model_type"] as? String) == "llava" && json["mm_vision_tower"] is String)
    }

    public init(json: [String: Any], path: String = "config.json") throws {
        let fields = JSONFields(object: json, path: path)
        // The decoder is a LlamaForCausalLM whose fields sit at the top level.
        var textJSON = json
        textJSON["architectures"] = ["LlamaForCausalLM"]
        textJSON["model_type"] = "llama"
        text = try ModelConfig(json: textJSON, path: path)
        guard let tower = json["mm_vision_tower"] as? String, !tower.isEmpty else {
            throw ModelError.badConfig(path: path, field: "mm_vision_tower",
                                       detail: "is missing: an original LLaVA config names its CLIP tower there, e.g. openai/clip-vit-large-patch14-336")
        }
        visionTower = tower
        let projectorName = (json["mm_projector_type"] as? String) ?? "linear"   // llava_arch.py default
        guard let projector = Projector(name: projectorName) else {
            throw ModelError.badConfig(path: path, field: "mm_projector_type",
                                       detail: "is '\(projectorName)'; Mirage implements linear and mlpNx_gelu (LLaVA-1.5: mlp2x_gelu)")
        }
        self.projector = projector
        guard let mmHidden = try fields.optionalInt("mm_hidden_size"), mmHidden > 0 else {
            throw ModelError.badConfig(path: path, field: "mm_hidden_size", detail: "is missing or not positive (the tower's width, 1024 for CLIP ViT-L)")
        }
        mmHiddenSize = mmHidden
        selectLayer = try fields.optionalInt("mm_vision_select_layer") ?? -2
        let featureName = (json["mm_vision_select_feature"] as? String) ?? "patch"
        guard let feature = SelectFeature(rawValue: featureName) else {
            throw ModelError.badConfig(path: path, field: "mm_vision_select_feature",
                                       detail: "is '\(featureName)'; LLaVA knows patch and cls_patch")
        }
        selectFeature = feature
        useImageStartEnd = (json["mm_use_im_start_end"] as? Bool) ?? false
        padsToSquare = (json["image_aspect_ratio"] as? String) == "pad"
    }

    /// The tower folder of a model folder: its config's `mm_vision_tower`, found by `VisionTowerLocator`
    /// (`folder.visionTower` first).
    public static func towerFolder(of folder: ModelFolder) throws -> URL {
        let config = try LlavaOriginalConfig(json: folder.config, path: folder.url.appendingPathComponent("config.json").path)
        return try VisionTowerLocator.locate(config.visionTower, model: folder.url, given: folder.visionTower)
    }

    /// The tower's configuration from its folder's config.json: a full `CLIPConfig` (its `vision_config`) or a
    /// `CLIPVisionConfig`.
    public static func towerConfig(folder: URL) throws -> VisionConfig {
        let url = folder.appendingPathComponent("config.json")
        let json = try JSONSerialization.configObject(at: url, hint: "A vision tower folder needs its config.json.")
        if var vision = json["vision_config"] as? [String: Any] {
            if vision["model_type"] == nil { vision["model_type"] = "clip_vision_model" }
            return try VisionConfig(json: vision, path: url.path, prefix: "vision_config.")
        }
        return try VisionConfig(json: json, path: url.path, prefix: "")
    }

    /// The tower hidden-state index `selectLayer` names, checked against a tower of `layers` layers.
    public func resolvedSelectLayer(towerLayers layers: Int, path: String = "config.json") throws -> Int {
        let count = layers + 1
        let index = selectLayer < 0 ? selectLayer + count : selectLayer
        guard index >= 0 && index < count else {
            throw ModelError.badConfig(path: path, field: "mm_vision_select_layer",
                                       detail: "is \(selectLayer), but the tower has \(count) hidden states: it must be in \(-count)...\(count - 1)")
        }
        return index
    }

    /// Image rows per image for a tower: its tokens, minus CLS for `patch`.
    public func imageTokenCount(tower: VisionConfig) -> Int {
        tower.sequenceLength - (selectFeature == .patch && tower.hasClassToken ? 1 : 0)
    }
}
