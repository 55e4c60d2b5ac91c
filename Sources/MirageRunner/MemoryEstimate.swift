import Foundation
import MirageData
import MirageEngine
import MirageKernels
import MirageModels

/// What a run of one model needs in memory, estimated before loading it (docs/runner.md, "Memory").
public struct MemoryEstimate: Sendable, Equatable {
    /// Weights as held after loading: safetensors bytes, with q8 quantized matrices at 1 + 4/32 bytes per value.
    public var weightBytes: Int64
    /// KV cache of the widest search: the prompt once per prompt copy (beams fork it copy-on-write; a contrast
    /// branch prefills its own), plus max new tokens × the sequences (beams × branches); f32 keys and values.
    public var kvCacheBytes: Int64
    /// Prefill activations, logits and vision-tower activations, plus a fixed 256 MiB for the process.
    public var activationBytes: Int64
    public var totalBytes: Int64 { weightBytes + kvCacheBytes + activationBytes }

    /// Estimates a model folder of a registered family (`ModelFamilies`): its weights (and those of folders it
    /// loads besides, such as a separate vision tower), KV cache and activations.
    /// - Parameters:
    ///   - promptTokens: the longest prompt in tokens, image tokens included.
    ///   - sequences: the most sequences a decoder keeps at once (beams × (1 + branches)).
    ///   - promptCopies: prompts prefilled separately (2 with a contrast branch such as VCD's noised image).
    public static func estimate(folder: URL, visionTower: URL? = nil, quantize: WeightFormat?, promptTokens: Int,
                                maxNewTokens: Int, sequences: Int, promptCopies: Int = 1) throws -> MemoryEstimate {
        let shape = try ModelFamilies.shape(of: folder, visionTower: visionTower)
        var weights: Int64 = 0
        for store in try ([folder] + shape.otherWeightFolders).map({ try TensorStore(folder: $0) }) {
            for name in store.tensorNames {
                guard let e = store.entry(name) else { continue }
                if quantize == .q8, isQuantized(name: name, shape: e.shape) {
                    let groups = (e.shape[1] + WeightMatrix.q8GroupSize - 1) / WeightMatrix.q8GroupSize
                    weights += Int64(e.shape[0]) * Int64(e.shape[1] + 4 * groups)
                } else {
                    weights += Int64(e.byteCount)
                }
            }
        }
        let t = shape.text
        // The runner stops generating at the model's context (`generationLimit`), so a protocol's
        // `max_new_tokens` (which may be up to Int.max) counts only up to it; no overflow either way.
        let newTokens = generationLimit(maxNewTokens: maxNewTokens, promptTokens: promptTokens,
                                        context: t.maxPositionEmbeddings)
        // Beams share the prompt's cache blocks (forks are copy-on-write), so only their new tokens multiply:
        // a LLaMA-7B LLaVA with 5-beam OPERA peaked 0.4 GB above greedy, not the 3 GB of five prompt copies.
        let rows = Int64(promptTokens) * Int64(max(1, promptCopies)) + Int64(newTokens) * Int64(max(1, sequences))
        let kv = Int64(t.numLayers) * 2 * Int64(t.numKVHeads * t.headDim) * 4 * rows
        let prefill = Int64(promptTokens) * Int64(6 * t.hiddenSize + 3 * t.intermediateSize) * 4
        let logits = Int64(t.vocabSize) * 4 * Int64(max(1, sequences)) * 8
        let vision = shape.imageEncoderActivationBytes
        let fixed: Int64 = 256 << 20
        return MemoryEstimate(weightBytes: weights, kvCacheBytes: kv, activationBytes: prefill + logits + vision + fixed)
    }

    /// The tokens a prompt of `promptTokens` may generate: `maxNewTokens`, but not past the model's context
    /// (`max_position_embeddings`) — at least 1, so a prompt that fills the context still gets an answer.
    public static func generationLimit(maxNewTokens: Int, promptTokens: Int, context: Int) -> Int {
        max(1, min(maxNewTokens, context - promptTokens))
    }

    /// The decoder's projections and LM head, which `--quantize q8` converts (2-D `*proj.weight`, `lm_head.weight`
    /// of the language model).
    static func isQuantized(name: String, shape: [Int]) -> Bool { Q8Checkpoint.isQuantized(name: name, shape: shape) }

    /// `MemAvailable` of `/proc/meminfo` in bytes, nil where the file does not exist.
    public static func availableBytes(meminfo: String? = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) -> Int64? {
        guard let meminfo else { return nil }
        for line in meminfo.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let fields = line.split(separator: " ")
            guard fields.count >= 2, let kib = Int64(fields[1]) else { return nil }
            return kib * 1024
        }
        return nil
    }

    /// Throws `insufficientMemory` when the estimate exceeds what is available.
    public func check(available: Int64?, quantized: Bool) throws {
        guard let available, totalBytes > available else { return }
        let advice = (quantized ? "" : "use --quantize q8 (int8 weights: about half of f16, a quarter of f32), or ")
            + "free memory (other programs) or raise --memory-limit; pass --ignore-memory-check to try anyway"
        throw RunnerError.insufficientMemory(needed: totalBytes, available: available, advice: advice)
    }
}

/// A model's identity for the store, without hashing gigabytes: SHA-256 over config.json, and each
/// safetensors file's name, size and header (tensor names, dtypes, shapes, offsets); for a folder of PyTorch
/// checkpoints (no safetensors), each weight file's name, size, pickle and serialization id
/// (`TorchCheckpointFile.identity`).
public enum ModelFingerprint {
    /// The fingerprint of `folder`; `others` (folders the model loads besides, e.g. its vision tower) are
    /// hashed after it, so a folder without them keeps the fingerprint it always had.
    public static func compute(folder: URL, others: [URL]) throws -> String {
        guard !others.isEmpty else { return try compute(folder: folder) }
        var hash = MirageData.SHA256()
        hash.update(try compute(folder: folder))
        for other in others { hash.update("\n" + (try compute(folder: other))) }
        return hash.hexDigest()
    }

    public static func compute(folder: URL) throws -> String {
        var hash = MirageData.SHA256()
        let fm = FileManager.default
        if let config = fm.contents(atPath: folder.appendingPathComponent("config.json").path) {
            hash.update(config)
        }
        let files = ((try? fm.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted()
        for name in files {
            let path = folder.appendingPathComponent(name).path
            guard let handle = FileHandle(forReadingAtPath: path) else { continue }
            defer { try? handle.close() }
            let size = (try? fm.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0
            hash.update("\(name)\n\(size)\n")
            let lengthBytes = handle.readData(ofLength: 8)
            guard lengthBytes.count == 8 else { continue }
            let length = lengthBytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self).littleEndian }
            hash.update(lengthBytes)
            hash.update(handle.readData(ofLength: Int(min(length, 100_000_000))))
        }
        if files.isEmpty, let weights = try? TensorStore.weightFiles(in: folder), weights.format == .pytorch {
            for url in weights.files {
                let size = (try? fm.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.int64Value ?? 0
                hash.update("\(url.lastPathComponent)\n\(size)\n")
                hash.update(try TorchCheckpointFile.identity(path: url.path))
            }
        }
        return hash.hexDigest()
    }
}
