import Foundation

/// Writes tensors as the safetensors files of a model folder, the way transformers' `save_pretrained` lays
/// them out: `model.safetensors` when everything fits in one shard, otherwise
/// `model-0000i-of-0000n.safetensors` plus `model.safetensors.index.json` (`metadata.total_size`,
/// `weight_map`). Tensors are streamed one at a time through `SafeTensorsWriter`, so memory stays near the
/// largest tensor, whatever the model's size.
public struct SafeTensorsFolderWriter {
    public typealias Declaration = SafeTensorsWriter.Declaration

    public let folder: URL
    /// The tensors of each shard, in order.
    public let shards: [[Declaration]]
    public var totalBytes: Int { shards.joined().reduce(0) { $0 + $1.byteCount } }

    /// Plans the shards: tensors in the given order, a new shard started when the next tensor would take the
    /// current one past `maxShardBytes`, so a tensor larger than that ends up alone in its shard. (huggingface_hub's
    /// `split_torch_state_dict_into_shards` differs in one point: it sets such a tensor aside in a shard of
    /// its own and keeps filling the current one.)
    public init(folder: URL, tensors: [Declaration], maxShardBytes: Int) {
        self.folder = folder
        var shards: [[Declaration]] = []
        var current: [Declaration] = []
        var size = 0
        for t in tensors {
            if !current.isEmpty && size + t.byteCount > maxShardBytes {
                shards.append(current)
                current = []
                size = 0
            }
            current.append(t)
            size += t.byteCount
        }
        if !current.isEmpty || shards.isEmpty { shards.append(current) }
        self.shards = shards
    }

    public var fileNames: [String] {
        shards.count == 1 ? ["model.safetensors"]
            : (1...shards.count).map { String(format: "model-%05d-of-%05d.safetensors", $0, shards.count) }
    }

    /// Writes every shard; `body` must write exactly the declared tensor's bytes to the writer it is given.
    /// `progress` gets the bytes written so far and the total after each tensor. Returns the files written
    /// (the index last, when there is one).
    @discardableResult
    public func write(metadata: [String: String] = ["format": "pt"],
                      body: (Declaration, SafeTensorsWriter) throws -> Void,
                      progress: (Int, Int) -> Void = { _, _ in }) throws -> [URL] {
        let total = totalBytes
        var done = 0
        var written: [URL] = []
        var weightMap: [String: String] = [:]
        for (shard, name) in zip(shards, fileNames) {
            let url = folder.appendingPathComponent(name)
            let writer = try SafeTensorsWriter(path: url.path, tensors: shard, metadata: metadata)
            for t in shard {
                try body(t, writer)
                done += t.byteCount
                weightMap[t.name] = name
                progress(done, total)
            }
            try writer.finish()
            written.append(url)
        }
        if shards.count > 1 {
            let index = folder.appendingPathComponent("model.safetensors.index.json")
            let object: [String: Any] = ["metadata": ["total_size": total], "weight_map": weightMap]
            do {
                let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
                try data.write(to: index)
            } catch {
                throw ModelError.writeFailed(path: index.path, reason: error.localizedDescription)
            }
            written.append(index)
        }
        return written
    }
}
