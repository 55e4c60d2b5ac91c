import Foundation
import MirageEngine

/// Assembles the separately released pieces of a LAVIS-layout model into one folder the `instructblip-lavis` /
/// `minigpt4` families load (docs/models.md, "Assembled folder"): the tensors of every piece, read by `TensorStore`
/// whatever their format (the released PyTorch `.pth` files, the Vicuna folder's `.bin` shards, or safetensors), are
/// written as the folder's safetensors files (their names do not collide: EVA's bare names, `Qformer.*`,
/// `query_tokens`, `ln_vision.*`, `llm_proj.*` / `llama_proj.*`, the Vicuna `model.*` and `lm_head.weight`), with a
/// config.json, the Vicuna tokenizer (`tokenizer.model` or `tokenizer.json`) and generation config, and for
/// InstructBLIP `qformer_tokenizer/`.
public struct LavisAssembly: Sendable {
    public var architecture: LavisConfig.Architecture
    /// The Vicuna folder: config.json, optional generation_config.json, its weights (safetensors or PyTorch `.bin`
    /// shards), and its tokenizer (SentencePiece tokenizer.model or tokenizer.json, with tokenizer_config.json).
    public var vicuna: URL
    /// EVA ViT-g's weights (`eva_vit_g.pth`, bare EVA names).
    public var visionEncoder: URL
    /// The Q-Former checkpoint: InstructBLIP's (`Qformer.*`, `query_tokens`, `ln_vision.*`, `llm_proj.*`) or for
    /// MiniGPT-4 BLIP-2's (`blip2_pretrained_flant5xxl`); a LAVIS `{'model': …}` checkpoint is read as its state dict.
    public var qformer: URL
    /// MiniGPT-4's projector (`llama_proj.*`); nil for InstructBLIP.
    public var projector: URL?
    /// The Q-Former's BERT folder (`bert-base-uncased`: config.json, vocab.txt, tokenizer_config.json).
    public var bert: URL
    /// EVA's head count (16 for ViT-g: LAVIS' width / 88).
    public var visionHeads: Int
    /// The largest safetensors file written (the tensors are split into shards of at most this size).
    public var maxShardBytes = 5_000_000_000

    public init(architecture: LavisConfig.Architecture, vicuna: URL, visionEncoder: URL, qformer: URL, projector: URL?,
                bert: URL, visionHeads: Int = 16) {
        self.architecture = architecture
        self.vicuna = vicuna
        self.visionEncoder = visionEncoder
        self.qformer = qformer
        self.projector = projector
        self.bert = bert
        self.visionHeads = visionHeads
    }

    public func write(to out: URL) throws {
        let fm = FileManager.default
        if architecture == .miniGPT4 && projector == nil {
            throw ModelError.invalidInput("MiniGPT-4 needs its projector checkpoint (llama_proj, e.g. prerained_minigpt4_7b): pass --projector FILE")
        }
        func json(_ url: URL) throws -> [String: Any] {
            guard let object = (try? JSONSerialization.jsonObject(with: Data(contentsOf: url))) as? [String: Any] else {
                throw ModelError.invalidInput("\(url.path) is missing or not a JSON object: the assembly needs it")
            }
            return object
        }
        func copy(_ source: URL, as name: String) throws {
            let target = out.appendingPathComponent(name)
            do {
                if fm.fileExists(atPath: target.path) { try fm.removeItem(at: target) }
                try fm.copyItem(at: source, to: target)
            } catch {
                throw ModelError.writeFailed(path: target.path, reason: error.localizedDescription)
            }
        }
        do { try fm.createDirectory(at: out, withIntermediateDirectories: true) } catch {
            throw ModelError.writeFailed(path: out.path, reason: error.localizedDescription)
        }
        // Every piece's tensors, in the order: EVA, Q-Former, projector, Vicuna.
        var pieces: [(URL, TensorStore)] = []
        func open(_ url: URL, folder: Bool) throws {
            do {
                pieces.append((url, folder ? try TensorStore(folder: url) : try TensorStore(file: url)))
            } catch {
                throw ModelError.invalidInput("\(url.path) cannot be read as the assembly's weights: \(error)")
            }
        }
        try open(visionEncoder, folder: false)
        try open(qformer, folder: false)
        if let projector { try open(projector, folder: false) }
        try open(vicuna, folder: true)
        var owner: [String: (URL, TensorStore)] = [:]
        var declarations: [SafeTensorsWriter.Declaration] = []
        for (url, store) in pieces {
            for name in store.orderedNames {
                if let other = owner[name]?.0 {
                    throw ModelError.invalidInput("tensor \(name) is in both \(other.lastPathComponent) and \(url.lastPathComponent): "
                                                  + "these are not the LAVIS pieces the assembly expects")
                }
                guard let entry = store.entry(name) else { throw ModelError.missingTensor(tensor: name, folder: store.folder) }
                owner[name] = (url, store)
                declarations.append(SafeTensorsWriter.Declaration(name: name, dtype: entry.dtype, shape: entry.shape))
            }
        }
        for stale in ((try? fm.contentsOfDirectory(atPath: out.path)) ?? []) where stale.hasSuffix(".safetensors")
            || stale == "model.safetensors.index.json" {
            try? fm.removeItem(at: out.appendingPathComponent(stale))
        }
        try SafeTensorsFolderWriter(folder: out, tensors: declarations, maxShardBytes: maxShardBytes).write(body: { declaration, writer in
            let store = owner[declaration.name]!.1
            try store.withBytes(declaration.name) { _, bytes in try writer.write(bytes) }
            store.releasePages(declaration.name)
        })
        let config: [String: Any] = [
            "model_type": "lavis-blip2", "lavis_arch": architecture.rawValue,
            "vision_config": ["num_attention_heads": visionHeads, "tensor_prefix": ""],
            "qformer_config": try json(bert.appendingPathComponent("config.json")),
            "text_config": try json(vicuna.appendingPathComponent("config.json")),
        ]
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
            .write(to: out.appendingPathComponent("config.json"))
        guard ["tokenizer.model", "tokenizer.json"].contains(where: { fm.fileExists(atPath: vicuna.appendingPathComponent($0).path) }) else {
            throw ModelError.fileNotFound(path: vicuna.appendingPathComponent("tokenizer.model").path,
                                          hint: "The Vicuna folder needs its tokenizer: the SentencePiece tokenizer.model it was released "
                                          + "with (or a tokenizer.json), with tokenizer_config.json.")
        }
        for name in ["tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                     "generation_config.json"]
        where fm.fileExists(atPath: vicuna.appendingPathComponent(name).path) {
            try copy(vicuna.appendingPathComponent(name), as: name)
        }
        if architecture == .instructBlip {
            let folder = out.appendingPathComponent("qformer_tokenizer")
            do { try fm.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
                throw ModelError.writeFailed(path: folder.path, reason: error.localizedDescription)
            }
            for name in ["vocab.txt", "tokenizer_config.json", "tokenizer.json"] where fm.fileExists(atPath: bert.appendingPathComponent(name).path) {
                try copy(bert.appendingPathComponent(name), as: "qformer_tokenizer/" + name)
            }
        }
    }
}
