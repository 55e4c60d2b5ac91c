import ArgumentParser
import Foundation
import MirageEngine

/// `mirage models apply-delta`: base + delta → target, Shikra's published recipe.
struct ModelsApplyDelta: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply-delta",
        abstract: "Rebuild a model published as a delta to LLaMA (e.g. Shikra) from the base and the delta.",
        discussion: """
        The arithmetic of Shikra's apply_delta.py (shikras/shikra, mllm/models/shikra/apply_delta.py), tensor by \
        tensor over the delta's tensors:
          - both are taken in float16 (the script loads both models with torch_dtype=float16), and the target \
        is delta + base, added the way torch adds float16 tensors (through float32, rounded once to float16);
          - model.embed_tokens.weight and lm_head.weight may have more rows in the delta (tokens added to the \
        vocabulary): the base is added to the leading rows and columns, the extra rows are the delta's;
          - model.mm_projector.weight and .bias exist only in the delta and are copied (in float16);
          - tensors only the base has are ignored (the output is the delta's set of tensors).
        Any other difference is an error naming the tensor: a delta tensor missing from the base, a shape that \
        differs elsewhere or is smaller in the delta, or a dtype that is not floating. This checks that --base is \
        the model the delta was made from only as far as shapes go: a wrong LLaMA of the same shape gives a wrong \
        model silently, as the script does.

        Inputs are model folders in any format Mirage reads (safetensors, pytorch_model.bin, sharded .bin with \
        pytorch_model.bin.index.json, *.pth). The output is a safetensors model folder (float16) with the delta \
        folder's config, tokenizer and processor files, as the script saves the delta model and its tokenizer. \
        It is computed tensor by tensor (memory near the largest tensor); every written file is listed with its \
        size and SHA-256.

        Example (Shikra-7B from LLaMA-7B in transformers layout and shikras/shikra-7b-delta-v1):
          mirage models apply-delta --base ~/llama-7b --delta ~/shikra-7b-delta-v1 --out ~/shikra-7b
        """)

    @Option(name: .long, help: ArgumentHelp("The base model folder (LLaMA-7B in transformers layout for Shikra).", valueName: "dir"))
    var base: String

    @Option(name: .long, help: ArgumentHelp("The delta model folder.", valueName: "dir"))
    var delta: String

    @Option(name: .long, help: ArgumentHelp("Output folder (created; must be empty unless --force).", valueName: "dir"))
    var out: String

    @Option(name: .long, help: ArgumentHelp("Largest safetensors shard: 5GB, 500MB, 2GiB or bytes.", valueName: "size"))
    var maxShardSize = "5GB"

    @Flag(name: .long, help: "Write into a non-empty --out, replacing its weight files and the copied files.")
    var force = false

    func validate() throws {
        guard ModelFolderOutput.parseSize(maxShardSize) != nil else {
            throw ValidationError("--max-shard-size takes a size such as 5GB, 500MB, 2GiB or a byte count (got '\(maxShardSize)')")
        }
    }

    /// The tensors the recipe copies from the delta because the base has no such tensor.
    static let deltaOnly: Set<String> = ["model.mm_projector.weight", "model.mm_projector.bias"]
    /// The tensors whose delta may have more rows (and columns) than the base.
    static let resizable: Set<String> = ["model.embed_tokens.weight", "lm_head.weight"]

    enum Plan { case sum, deltaOnly, leadingBlock }

    func run() throws {
        func folder(_ path: String, _ flag: String) throws -> URL {
            let url = URL(fileURLWithPath: (path as NSString).expandingTildeInPath).standardizedFileURL
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("\(flag) \(url.path) is not a folder; pass the model folder")
            }
            return url
        }
        let baseURL = try folder(base, "--base"), deltaURL = try folder(delta, "--delta")
        let outURL = URL(fileURLWithPath: (out as NSString).expandingTildeInPath).standardizedFileURL
        guard outURL.path != baseURL.path, outURL.path != deltaURL.path else {
            throw ValidationError("--out must be a new folder, not --base or --delta")
        }
        let baseStore = try TensorStore(folder: baseURL), deltaStore = try TensorStore(folder: deltaURL)
        var plans: [(SafeTensorsWriter.Declaration, Plan)] = []
        for name in deltaStore.orderedNames {
            let d = deltaStore.entry(name)!
            guard Self.isFloating(d.dtype) else { throw Self.error(name, "has dtype \(d.dtype.rawValue) in the delta; the recipe adds floating-point tensors only") }
            let declaration = SafeTensorsWriter.Declaration(name: name, dtype: .f16, shape: d.shape)
            guard let b = baseStore.entry(name) else {
                guard Self.deltaOnly.contains(name) else {
                    throw Self.error(name, "is in the delta but not in the base (only model.mm_projector.weight and .bias may be); "
                                     + "check that --base is the LLaMA the delta was made from, in transformers' naming")
                }
                plans.append((declaration, .deltaOnly))
                continue
            }
            guard Self.isFloating(b.dtype) else { throw Self.error(name, "has dtype \(b.dtype.rawValue) in the base; the recipe adds floating-point tensors only") }
            if b.shape == d.shape {
                plans.append((declaration, .sum))
            } else if Self.resizable.contains(name), b.shape.count == 2, d.shape.count == 2,
                      d.shape[0] >= b.shape[0], d.shape[1] >= b.shape[1] {
                plans.append((declaration, .leadingBlock))
            } else {
                throw Self.error(name, "has shape \(d.shape) in the delta but \(b.shape) in the base; only "
                                 + "model.embed_tokens.weight and lm_head.weight may grow (more rows in the delta). "
                                 + "Check that --base is the model the delta was made from")
            }
        }
        let outFolder = try ModelFolderOutput.prepare(out, force: force)
        let writer = SafeTensorsFolderWriter(folder: outFolder, tensors: plans.map(\.0),
                                             maxShardBytes: ModelFolderOutput.parseSize(maxShardSize)!)
        let planByName = Dictionary(uniqueKeysWithValues: plans.map { ($0.0.name, $0.1) })
        print("applying \(deltaURL.path) to \(baseURL.path): \(plans.count) tensors "
              + "(\(plans.filter { $0.1 == .sum }.count) summed, \(plans.filter { $0.1 == .leadingBlock }.count) with rows "
              + "beyond the base's vocabulary kept from the delta, \(plans.filter { $0.1 == .deltaOnly }.count) only in the delta), "
              + "\(ModelFolderOutput.formatBytes(writer.totalBytes)) in float16")
        let progress = ModelFolderOutput.Progress("applying delta")
        let files = try writer.write(body: { declaration, output in
            var target = try deltaStore.withBytes(declaration.name) { entry, bytes in Self.float16(bytes, entry.dtype) }
            switch planByName[declaration.name]! {
            case .deltaOnly:
                break
            case .sum:
                try baseStore.withBytes(declaration.name) { entry, bytes in
                    Self.add(bytes, entry.dtype, into: &target, rows: 1, columns: target.count, targetColumns: target.count)
                }
            case .leadingBlock:
                try baseStore.withBytes(declaration.name) { entry, bytes in
                    Self.add(bytes, entry.dtype, into: &target, rows: entry.shape[0], columns: entry.shape[1],
                             targetColumns: declaration.shape[1])
                }
            }
            try target.withUnsafeBytes { try output.write($0) }
            deltaStore.releasePages(declaration.name)
            baseStore.releasePages(declaration.name)
        }, progress: progress.update)
        progress.finish()
        let copied = try ModelFolderOutput.copySideFiles(from: deltaURL, to: outFolder)
        print("wrote \(outFolder.path):")
        try ModelFolderOutput.printSummary(files, copied: copied, folder: outFolder)
    }

    static func error(_ tensor: String, _ detail: String) -> ModelError {
        .invalidInput("tensor '\(tensor)' \(detail).")
    }

    static func isFloating(_ dtype: TensorDType) -> Bool { [.f32, .f16, .bf16, .f64].contains(dtype) }

    /// Element `i` as float32, as torch reads it before converting to float16 (float64 goes through float32
    /// too: c10::Half is built from a float).
    @inline(__always)
    static func float(_ bytes: UnsafeRawBufferPointer, _ i: Int, _ dtype: TensorDType) -> Float {
        switch dtype {
        case .f32: return bytes.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
        case .f16: return Float(Float16(bitPattern: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        case .bf16: return Float(bitPattern: UInt32(bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
        case .f64: return Float(bytes.loadUnaligned(fromByteOffset: 8 * i, as: Double.self))
        default: preconditionFailure("checked by isFloating")
        }
    }

    /// The tensor in float16 (round to nearest even, as torch's `.to(torch.float16)`).
    static func float16(_ bytes: UnsafeRawBufferPointer, _ dtype: TensorDType) -> [Float16] {
        let count = bytes.count / dtype.byteSize
        return (0..<count).map { Float16(float(bytes, $0, dtype)) }
    }

    /// target[r, c] = f16(f32(target[r, c]) + f32(f16(base[r, c]))) for the base's rows × columns, the block
    /// `param.data[:rows, :cols] += base` touches (row-major, target rows `targetColumns` wide).
    static func add(_ base: UnsafeRawBufferPointer, _ dtype: TensorDType, into target: inout [Float16],
                    rows: Int, columns: Int, targetColumns: Int) {
        for r in 0..<rows {
            for c in 0..<columns {
                let b = Float(Float16(float(base, r * columns + c, dtype)))
                let t = r * targetColumns + c
                target[t] = Float16(Float(target[t]) + b)
            }
        }
    }
}
