import Foundation
import MirageImaging

/// Deterministic random-weight vision towers and LLaVA folders (`mirage models synth --arch llava-*`),
/// written as transformers 5.24 saves them, so transformers loads them too.
public struct SyntheticVisionSpec: Sendable {
    public enum Size: String, Sendable, CaseIterable {
        /// hidden 32, 2 layers, 2 heads, 32×32 images, patch 8 (16 patches).
        case tiny
        /// CLIP ViT-L/14-336 shapes (LLaVA-1.5's tower): hidden 1024, 24 layers, 16 heads, 336×336, patch 14.
        case l14_336 = "l14-336"
        /// CLIP ViT-L/14 shapes at 224 px (Shikra's tower, openai/clip-vit-large-patch14): 256 patches.
        case l14_224 = "l14-224"
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
        case .l14_224:
            return VisionConfig(kind: kind, hiddenSize: 1024, intermediateSize: 4096, numLayers: 24, numHeads: 16,
                                imageSize: 224, patchSize: 14)
        }
    }

    /// The tower's tensors under `prefix` ("vision_tower." in a transformers 5 LLaVA, "vision_model." alone).
    /// LayerNorm weights are ones (std nil), biases and everything else uniform with std 0.02.
    public func tensors(prefix: String) -> [(SafeTensorsWriter.Declaration, Float?)] {
        let c = config, h = c.hiddenSize
        var list = SyntheticTensorList(dtype: dtype, prefix: prefix)
        if kind == .clip { list.add("embeddings.class_embedding", [h]) }
        list.add("embeddings.patch_embedding.weight", [h, c.numChannels, c.patchSize, c.patchSize])
        if kind == .siglip { list.add("embeddings.patch_embedding.bias", [h]) }
        list.add("embeddings.position_embedding.weight", [c.sequenceLength, h])
        if kind == .clip { list.norm("pre_layrnorm.", h) }
        for l in 0..<c.numLayers {
            let p = "encoder.layers.\(l)."
            list.norm(p + "layer_norm1.", h)
            list.norm(p + "layer_norm2.", h)
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                list.dense(p + "self_attn.\(proj).", rows: h, cols: h)
            }
            list.mlp(p + "mlp.", hidden: h, intermediate: c.intermediateSize)
        }
        list.norm("post_layernorm.", h)
        return list.entries
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

public func createFolder(_ folder: URL) throws {
    do { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
        throw ModelError.writeFailed(path: folder.path, reason: error.localizedDescription)
    }
}
