import Foundation
import MirageKernels

/// Pre-quantized model folders (`mirage models quantize --q8 IN OUT`): the decoder's projections and LM head
/// stored as group-wise int8 in the engine's own block layout, so loading maps them (no conversion, no f16 pages
/// resident) and gives exactly the matrices `--quantize q8` computes at load.
///
/// Layout: a matrix `NAME` of [rows × cols] becomes the safetensors tensor `NAME.q8`, dtype U8, shape
/// [rows, q8BlockRowBytes(cols)]: per row and group of 32 inputs, the f32 scale (little-endian) then 32 int8
/// values, the last group zero-padded (`WeightMatrix.quantizedQ8`). Every other tensor is copied unchanged.
/// config.json gains `"mirage_quantization": {"method": "q8", "group_size": 32, "layout": "f32 scale + 32 int8 per group"}`.
public enum Q8Checkpoint {
    /// The suffix of a pre-quantized matrix's tensor name.
    public static let suffix = ".q8"
    /// The config.json key that marks a pre-quantized folder.
    public static let configKey = "mirage_quantization"

    /// Whether `--quantize q8` converts the tensor `name` of `shape`: the decoder's 2-D projections
    /// (`*_proj.weight` of attention and MLP) and its LM head; nothing of a vision tower, Q-Former or projector.
    public static func isQuantized(name: String, shape: [Int]) -> Bool {
        guard shape.count == 2 else { return false }
        let excluded = ["vision", "multi_modal_projector", "mm_projector", "qformer", "Qformer", "visual_encoder",
                        "llm_proj", "llama_proj", "language_projection"]
        guard !excluded.contains(where: { name.contains($0) }) else { return false }
        let projections = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        return projections.contains { name.hasSuffix(".\($0).weight") } || name.hasSuffix("lm_head.weight")
    }
}

extension TensorStore {
    /// Whether the store holds the matrix `name`, as is or pre-quantized.
    public func hasMatrix(_ name: String) -> Bool {
        entry(name) != nil || entry(name + Q8Checkpoint.suffix) != nil
    }

    /// Whether any matrix of the store is pre-quantized.
    public var isPreQuantized: Bool { tensorNames.contains { $0.hasSuffix(Q8Checkpoint.suffix) } }

    /// The pre-quantized matrix `name` ([rows × cols]) when the store has `name.q8`, checked for dtype, shape and
    /// alignment; nil when it has none.
    func q8Matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix? {
        guard let (entry, pointer, file) = located(name + Q8Checkpoint.suffix) else { return nil }
        let expected = [rows, WeightMatrix.q8BlockRowBytes(cols: cols)]
        guard entry.dtype == .u8 else {
            throw ModelError.unsupportedDType(tensor: entry.name, dtype: entry.dtype.rawValue, path: file.path)
        }
        guard entry.shape == expected else {
            throw ModelError.wrongShape(tensor: entry.name, expected: expected, actual: entry.shape)
        }
        guard Int(bitPattern: pointer) % MemoryLayout<Float>.alignment == 0 else {
            throw ModelError.invalidInput("\(file.path): tensor \(entry.name) does not start on a 4-byte boundary, so its "
                                          + "scales cannot be read in place; write the folder again with `mirage models quantize`")
        }
        return WeightMatrix.q8Blocks(rows: rows, cols: cols, data: pointer, owner: file, precision: precision)
    }
}

extension Q8Checkpoint {
    /// What `write` did.
    public struct Summary: Sendable {
        public var quantizedMatrices = 0
        public var copiedTensors = 0
        public var inputBytes: Int64 = 0
        public var outputBytes: Int64 = 0
        public var copiedFiles: [String] = []
    }

    /// Writes a pre-quantized copy of the model folder `input` to `output` (which must not exist, unless
    /// `replace`): one `model.safetensors` with the quantized matrices first (so every block starts 4-byte
    /// aligned) and every other tensor after them, unchanged; the folder's other files (config, tokenizer,
    /// processor, subfolders) copied, config.json marked. Streams tensor by tensor, handing each source tensor's
    /// mapped pages back once written, so memory stays near one matrix. `progress(done, total)` is called after
    /// each tensor.
    public static func write(from input: URL, to output: URL, replace: Bool = false, pool: WorkerPool,
                             progress: (Int, Int) -> Void = { _, _ in }) throws -> Summary {
        let fm = FileManager.default
        let store = try TensorStore(folder: input)
        guard !store.isPreQuantized else {
            throw ModelError.invalidInput("\(input.path) is already pre-quantized (it has \(suffix) tensors); load it as it is")
        }
        let configURL = input.appendingPathComponent("config.json")
        guard var config = (try? JSONSerialization.jsonObject(with: Data(contentsOf: configURL))) as? [String: Any] else {
            throw ModelError.invalidInput("\(configURL.path) is missing or not a JSON object: \(input.path) is not a model folder")
        }
        if input.standardizedFileURL.path == output.standardizedFileURL.path {
            throw ModelError.invalidInput("the output folder must differ from the input folder")
        }
        if fm.fileExists(atPath: output.path) {
            guard replace else {
                throw ModelError.invalidInput("\(output.path) exists; choose another folder or pass --force to replace it")
            }
            try fm.removeItem(at: output)
        }
        // Written into a sibling folder and renamed at the end, so an interrupted run leaves no half folder.
        let partial = output.deletingLastPathComponent().appendingPathComponent(".\(output.lastPathComponent).partial-\(getpid())")
        try? fm.removeItem(at: partial)
        try fm.createDirectory(at: partial, withIntermediateDirectories: true)
        var finished = false
        defer { if !finished { try? fm.removeItem(at: partial) } }

        var quantized: [(String, TensorEntry)] = [], copied: [(String, TensorEntry)] = []
        for name in store.tensorNames {
            guard let entry = store.entry(name) else { continue }
            if isQuantized(name: name, shape: entry.shape), entry.dtype.weightFormat != nil {
                quantized.append((name, entry))
            } else {
                copied.append((name, entry))
            }
        }
        guard !quantized.isEmpty else {
            throw ModelError.invalidInput("\(input.path) has no decoder projections to quantize (no *_proj.weight or lm_head.weight)")
        }
        var declarations = quantized.map { name, e in
            SafeTensorsWriter.Declaration(name: name + suffix, dtype: .u8,
                                          shape: [e.shape[0], WeightMatrix.q8BlockRowBytes(cols: e.shape[1])])
        }
        declarations += copied.map { SafeTensorsWriter.Declaration(name: $0.0, dtype: $0.1.dtype, shape: $0.1.shape) }
        let weightsURL = partial.appendingPathComponent("model.safetensors")
        let writer = try SafeTensorsWriter(path: weightsURL.path, tensors: declarations,
                                           metadata: ["format": "pt", "mirage_quantization": "q8"])
        var summary = Summary()
        let total = quantized.count + copied.count
        for (name, entry) in quantized {
            let source = try store.matrix(name, rows: entry.shape[0], cols: entry.shape[1])
            let q8 = source.quantizedQ8(pool: pool)
            guard let bytes = q8.q8BlockBytes else {
                throw ModelError.invalidInput("internal: \(name) did not quantize to the block layout")
            }
            try writer.write(bytes)
            source.releaseSourcePages()
            summary.quantizedMatrices += 1
            summary.inputBytes += Int64(entry.byteCount)
            progress(summary.quantizedMatrices, total)
        }
        for (name, entry) in copied {
            try store.withBytes(name) { _, bytes in try writer.write(bytes) }
            store.releasePages(name)
            summary.copiedTensors += 1
            summary.inputBytes += Int64(entry.byteCount)
            progress(summary.quantizedMatrices + summary.copiedTensors, total)
        }
        try writer.finish()
        summary.outputBytes = Int64((try? fm.attributesOfItem(atPath: weightsURL.path)[.size] as? NSNumber)?.int64Value ?? 0)

        let weightFile = { (name: String) in
            name.hasSuffix(".safetensors") || name.hasSuffix(".bin") || name.hasSuffix(".pth") || name.hasSuffix(".index.json")
        }
        for name in try fm.contentsOfDirectory(atPath: input.path).sorted() where !weightFile(name) && name != "config.json" {
            try fm.copyItem(at: input.appendingPathComponent(name), to: partial.appendingPathComponent(name))
            summary.copiedFiles.append(name)
        }
        config[configKey] = ["method": "q8", "group_size": WeightMatrix.q8GroupSize,
                             "layout": "per group of 32 inputs: f32 scale, 32 int8 values", "tensor_suffix": suffix]
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
            .write(to: partial.appendingPathComponent("config.json"))
        try fm.moveItem(at: partial, to: output)
        finished = true
        return summary
    }
}
