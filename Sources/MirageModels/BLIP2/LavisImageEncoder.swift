import Foundation
import MirageEngine
import MirageKernels
import MirageImaging

/// The image half of LAVIS' BLIP-2 models as OPERA's wrappers run them (salesforce/LAVIS
/// lavis/models/blip2_models/blip2.py, blip2_vicuna_instruct.py; shikiw/OPERA minigpt4/models/mini_gpt4.py,
/// blip2_vicuna_instruct.py): EVA ViT-g (`visual_encoder.*`: `cls_token`, `pos_embed`, `patch_embed.proj`,
/// `blocks.N.*` with `attn.q_bias`/`attn.v_bias`), `ln_vision` (eps 1e-5), the Q-Former `Qformer.bert.*` with
/// `query_tokens` (InstructBLIP: reading the instruction), and the projection into the LLM (`llm_proj` for
/// InstructBLIP, `llama_proj` for MiniGPT-4). Tensors come from one `TensorStore` holding all of them.
public final class LavisImageEncoder: @unchecked Sendable {
    public let vision: BlipVisionModel
    public let qformer: QFormer
    public let numQueryTokens: Int
    let queryTokens: [Float]
    let projection: WeightMatrix
    let projectionBias: [Float]
    let pool: WorkerPool

    /// The EVA tower's sizes read from the tensor shapes (width, patch, depth, MLP, image size); the head count is
    /// not in the shapes (LAVIS' `create_eva_vit_g` uses width / 88 = 16 for ViT-g). Numerics as LAVIS eva_vit.py:
    /// LayerNorm eps 1e-6 in the blocks, erf GELU; `ln_vision` eps 1e-5 (a default nn.LayerNorm).
    public static func visionConfig(store: TensorStore, prefix: String = "visual_encoder.", heads: Int? = nil) throws -> BlipVisionConfig {
        func shape(_ name: String) throws -> [Int] {
            guard let entry = store.entry(prefix + name) else {
                throw ModelError.missingTensor(tensor: prefix + name, folder: store.folder)
            }
            return entry.shape
        }
        let patch = try shape("patch_embed.proj.weight"), positions = try shape("pos_embed"), fc1 = try shape("blocks.0.mlp.fc1.weight")
        guard patch.count == 4, positions.count == 3, fc1.count == 2 else {
            throw ModelError.invalidInput("\(store.folder): the EVA tensors do not have the shapes of LAVIS' eva_vit.py "
                                          + "(patch_embed.proj.weight [width, 3, p, p], pos_embed [1, n, width])")
        }
        var depth = 0
        while store.entry(prefix + "blocks.\(depth).norm1.weight") != nil { depth += 1 }
        let side = Int(Double(positions[1] - 1).squareRoot().rounded())
        guard side * side == positions[1] - 1 else {
            throw ModelError.invalidInput("\(store.folder): pos_embed has \(positions[1]) rows, not a class row plus a square grid")
        }
        let width = patch[0]
        return BlipVisionConfig(hiddenSize: width, intermediateSize: fc1[0], numLayers: depth,
                                numHeads: heads ?? max(1, width / 88), imageSize: side * patch[2], patchSize: patch[2],
                                layerNormEps: 1e-6, activation: .erf, qkvBias: true, finalLayerNormEps: 1e-5)
    }

    /// `qformer` from the Q-Former's BERT config (bert-base-uncased/config.json; cross-attention every
    /// `crossAttentionFrequency`-th layer, LAVIS' default 2); `readsInstruction` for InstructBLIP;
    /// `projection` is "llm_proj." or "llama_proj.".
    /// `visionPrefix`: "visual_encoder." in LAVIS' model state dicts, "" in `eva_vit_g.pth` itself.
    public init(store: TensorStore, vision: BlipVisionConfig, qformer config: QFormerConfig, readsInstruction: Bool,
                projection projectionPrefix: String, visionPrefix: String = "visual_encoder.", pool: WorkerPool) throws {
        self.pool = pool
        self.vision = try BlipVisionModel(config: vision, store: store,
                                          layout: .lavis(prefix: visionPrefix, lnVision: "ln_vision."), pool: pool)
        var q = config
        q.encoderHiddenSize = vision.hiddenSize
        // InstructBLIP resizes the word embeddings to its tokenizer ([DEC] added): take the rows the checkpoint has.
        if readsInstruction, let words = store.entry("Qformer.bert.embeddings.word_embeddings.weight"), words.shape.count == 2 {
            q.vocabSize = words.shape[0]
        }
        qformer = try QFormer(config: q, store: store, names: .lavis(text: readsInstruction), pool: pool)
        guard let tokens = store.entry("query_tokens"), tokens.shape.count == 3, tokens.shape[2] == q.hiddenSize else {
            throw ModelError.missingTensor(tensor: "query_tokens [1, queries, \(q.hiddenSize)]", folder: store.folder)
        }
        numQueryTokens = tokens.shape[1]
        let (entry, pointer, _) = try store.require("query_tokens", shape: tokens.shape)
        queryTokens = Blip2Model.floats(pointer, count: numQueryTokens * q.hiddenSize, dtype: entry.dtype)
        guard let projectionEntry = store.entry(projectionPrefix + "weight"), projectionEntry.shape.count == 2 else {
            throw ModelError.missingTensor(tensor: projectionPrefix + "weight", folder: store.folder)
        }
        projection = try store.matrix(projectionPrefix + "weight", rows: projectionEntry.shape[0], cols: q.hiddenSize)
        projectionBias = try store.vector(projectionPrefix + "bias", count: projectionEntry.shape[0])
    }

    /// `ln_vision(EVA(pixels))`: 257 rows for a 224-pixel image.
    public func visionRows(_ pixels: PixelTensor) throws -> [Float] { try vision.imageRows(pixels) }

    /// The Q-Former's last hidden state (queries, then the instruction rows for InstructBLIP).
    public func qformerOutput(_ pixels: PixelTensor, instructionIDs: [Int]) throws -> [Float] {
        try qformer.run(queries: queryTokens, queryCount: numQueryTokens, textIDs: instructionIDs,
                        image: try vision.imageRows(pixels), imageRows: vision.config.sequenceLength)
    }

    /// The rows the LLM receives: the projection of the query rows.
    public func embed(_ pixels: PixelTensor, instructionIDs: [Int] = []) throws -> ImageEmbedding {
        let output = try qformerOutput(pixels, instructionIDs: instructionIDs)
        let width = projection.rows
        var rows = [Float](repeating: 0, count: numQueryTokens * width)
        output.withUnsafeBufferPointer { x in rows.withUnsafeMutableBufferPointer { y in
            projectionBias.withUnsafeBufferPointer { b in
                Kernels.linear(x.baseAddress!, n: numQueryTokens, weight: projection, bias: b.baseAddress, into: y.baseAddress!,
                               pool: pool)
            }
        }}
        return ImageEmbedding(tokenCount: numQueryTokens, width: width, values: rows)
    }
}
