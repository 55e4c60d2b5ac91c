import Foundation
import MirageEngine

/// Assembles the separately released pieces of a LAVIS-layout model into one folder the `instructblip-lavis` /
/// `minigpt4` families load (docs/models.md, "Assembled folder"): the weight files are copied in and listed in a
/// `model.safetensors.index.json` (their tensor names do not collide: EVA's bare names, `Qformer.*`,
/// `query_tokens`, `ln_vision.*`, `llm_proj.*` / `llama_proj.*`, the Vicuna `model.*` and `lm_head.weight`), with a
/// config.json, the Vicuna tokenizer and generation config, and for InstructBLIP `qformer_tokenizer/`.
///
/// Weight files must be safetensors for now (Mirage does not read PyTorch `.pth` / `.bin` files yet): convert a
/// LAVIS `{'model': …}` checkpoint with `safetensors.torch.save_file(torch.load(f)["model"], out)`.
public struct LavisAssembly: Sendable {
    public var architecture: LavisConfig.Architecture
    /// The Vicuna folder: config.json, optional generation_config.json, model.safetensors (or its sharded index),
    /// tokenizer.json and tokenizer_config.json.
    public var vicuna: URL
    /// EVA ViT-g's weights (`eva_vit_g`, bare EVA names).
    public var visionEncoder: URL
    /// The Q-Former checkpoint: InstructBLIP's (`Qformer.*`, `query_tokens`, `ln_vision.*`, `llm_proj.*`) or for
    /// MiniGPT-4 BLIP-2's (`blip2_pretrained_flant5xxl`).
    public var qformer: URL
    /// MiniGPT-4's projector (`llama_proj.*`); nil for InstructBLIP.
    public var projector: URL?
    /// The Q-Former's BERT folder (`bert-base-uncased`: config.json, vocab.txt, tokenizer_config.json).
    public var bert: URL
    /// EVA's head count (16 for ViT-g: LAVIS' width / 88).
    public var visionHeads: Int

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
        var weightMap: [String: String] = [:]
        func add(_ file: URL, as name: String) throws {
            guard file.pathExtension == "safetensors" else {
                throw ModelError.invalidInput("\(file.path) is not a safetensors file: Mirage does not read PyTorch .pth/.bin files "
                                              + "yet; convert it (a LAVIS checkpoint: save_file(torch.load(f)[\"model\"], out))")
            }
            let tensors = try SafeTensorsFile(path: file.path).tensors
            for tensor in tensors.keys {
                if let other = weightMap[tensor] {
                    throw ModelError.invalidInput("tensor \(tensor) is in both \(other) and \(file.lastPathComponent): these are not "
                                                  + "the LAVIS pieces the assembly expects")
                }
                weightMap[tensor] = name
            }
            try copy(file, as: name)
        }
        try add(visionEncoder, as: "eva_vit_g.safetensors")
        try add(qformer, as: "qformer.safetensors")
        if let projector { try add(projector, as: "projector.safetensors") }
        let single = vicuna.appendingPathComponent("model.safetensors")
        let index = vicuna.appendingPathComponent("model.safetensors.index.json")
        if fm.fileExists(atPath: index.path) {
            let shards = Set(((try json(index))["weight_map"] as? [String: String] ?? [:]).values)
            for shard in shards.sorted() { try add(vicuna.appendingPathComponent(shard), as: "vicuna-" + shard) }
        } else if fm.fileExists(atPath: single.path) {
            try add(single, as: "vicuna.safetensors")
        } else {
            throw ModelError.fileNotFound(path: single.path, hint: "The Vicuna folder needs its weights as safetensors (PyTorch .bin "
                                          + "shards are not read yet: re-save with save_pretrained(safe_serialization=True)).")
        }
        let indexData = try JSONSerialization.data(withJSONObject: ["metadata": [String: String](), "weight_map": weightMap],
                                                   options: [.prettyPrinted, .sortedKeys])
        try indexData.write(to: out.appendingPathComponent("model.safetensors.index.json"))
        let config: [String: Any] = [
            "model_type": "lavis-blip2", "lavis_arch": architecture.rawValue,
            "vision_config": ["num_attention_heads": visionHeads, "tensor_prefix": ""],
            "qformer_config": try json(bert.appendingPathComponent("config.json")),
            "text_config": try json(vicuna.appendingPathComponent("config.json")),
        ]
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
            .write(to: out.appendingPathComponent("config.json"))
        guard fm.fileExists(atPath: vicuna.appendingPathComponent("tokenizer.json").path) else {
            throw ModelError.fileNotFound(path: vicuna.appendingPathComponent("tokenizer.json").path,
                                          hint: "Mirage reads the Vicuna tokenizer as tokenizer.json: convert tokenizer.model with "
                                          + "LlamaTokenizerFast.from_pretrained(dir, legacy=True, from_slow=True).save_pretrained(dir)")
        }
        for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"]
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
