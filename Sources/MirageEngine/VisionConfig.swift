import Foundation
import MirageKernels

/// A ViT image encoder's `vision_config` (CLIP's `clip_vision_model` or SigLIP's `siglip_vision_model`).
/// Missing fields take transformers' `CLIPVisionConfig` / `SiglipVisionConfig` defaults, as published
/// LLaVA configs rely on them (llava-1.5's vision_config omits `hidden_act` and `layer_norm_eps`).
public struct VisionConfig: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case clip = "clip_vision_model"
        case siglip = "siglip_vision_model"
    }

    public var kind: Kind
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var imageSize: Int
    public var patchSize: Int
    public var numChannels: Int
    public var layerNormEps: Float
    public var activation: GeluKind

    public init(kind: Kind, hiddenSize: Int, intermediateSize: Int, numLayers: Int, numHeads: Int,
                imageSize: Int, patchSize: Int, numChannels: Int = 3, layerNormEps: Float? = nil,
                activation: GeluKind? = nil) {
        self.kind = kind
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.numChannels = numChannels
        // Defaults of transformers 5.24 CLIPVisionConfig (1e-5, quick_gelu) and SiglipVisionConfig (1e-6, gelu_pytorch_tanh).
        self.layerNormEps = layerNormEps ?? (kind == .clip ? 1e-5 : 1e-6)
        self.activation = activation ?? (kind == .clip ? .quick : .tanh)
    }

    /// Parses and validates a `vision_config` object; `path` names the file and `prefix` the object in errors.
    public init(json: [String: Any], path: String = "config.json", prefix: String = "vision_config.") throws {
        let fields = JSONFields(object: json, path: path, prefix: prefix)
        let type = (json["model_type"] as? String) ?? "clip_vision_model"
        guard let kind = Kind(rawValue: type) else {
            throw ModelError.badConfig(path: path, field: prefix + "model_type",
                                       detail: "is '\(type)'; Mirage runs clip_vision_model and siglip_vision_model towers")
        }
        // transformers' defaults: CLIP ViT-B/32 (768, 3072, 12, 12, 224, 32); SigLIP base/16 (768, 3072, 12, 12, 224, 16).
        let activation = try GeluKind.configured(json, path: path, prefix: prefix)
        self.init(kind: kind,
                  hiddenSize: try fields.optionalInt("hidden_size") ?? 768,
                  intermediateSize: try fields.optionalInt("intermediate_size") ?? 3072,
                  numLayers: try fields.optionalInt("num_hidden_layers") ?? 12,
                  numHeads: try fields.optionalInt("num_attention_heads") ?? 12,
                  imageSize: try fields.optionalInt("image_size") ?? 224,
                  patchSize: try fields.optionalInt("patch_size") ?? (kind == .clip ? 32 : 16),
                  numChannels: try fields.optionalInt("num_channels") ?? 3,
                  layerNormEps: try fields.optionalDouble("layer_norm_eps").map(Float.init),
                  activation: activation)
        try validate(path: path, prefix: prefix)
    }

    // Derived sizes: meaningful once `validate` has passed (guarded so an unvalidated config cannot trap).
    public var headDim: Int { numHeads > 0 ? hiddenSize / numHeads : 0 }
    /// Patches per image side (image_size / patch_size).
    public var patchesPerSide: Int { patchSize > 0 ? imageSize / patchSize : 0 }
    public var numPatches: Int { patchesPerSide * patchesPerSide }
    /// CLIP prepends a class token; SigLIP does not.
    public var hasClassToken: Bool { kind == .clip }
    /// Tokens in every hidden state: patches (+ 1 for CLIP's class token).
    public var sequenceLength: Int { numPatches + (hasClassToken ? 1 : 0) }

    /// The config.json object transformers writes for this tower.
    public func transformersJSON() -> [String: Any] {
        ["model_type": kind.rawValue, "hidden_size": hiddenSize, "intermediate_size": intermediateSize,
         "num_hidden_layers": numLayers, "num_attention_heads": numHeads, "image_size": imageSize,
         "patch_size": patchSize, "num_channels": numChannels, "layer_norm_eps": Double(layerNormEps),
         "hidden_act": activation.huggingFaceName, "attention_dropout": 0.0]
    }
}

extension GeluKind {
    /// transformers' `ACT2FN` names: quick_gelu, gelu (erf), gelu_new / gelu_pytorch_tanh (tanh approximation).
    public init?(huggingFaceName name: String) {
        switch name {
        case "quick_gelu": self = .quick
        case "gelu": self = .erf
        case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": self = .tanh
        default: return nil
        }
    }

    public var huggingFaceName: String {
        switch self {
        case .quick: return "quick_gelu"
        case .erf: return "gelu"
        case .tanh: return "gelu_pytorch_tanh"
        }
    }
}

extension GeluKind {
    /// The `hidden_act` of a config object, nil when absent; a name Mirage does not implement is an error naming
    /// the file and field.
    public static func configured(_ json: [String: Any], path: String, prefix: String) throws -> GeluKind? {
        guard let name = json["hidden_act"] as? String else { return nil }
        guard let parsed = GeluKind(huggingFaceName: name) else {
            throw ModelError.badConfig(path: path, field: prefix + "hidden_act",
                                       detail: "is '\(name)'; Mirage implements quick_gelu, gelu, gelu_new and gelu_pytorch_tanh")
        }
        return parsed
    }
}
