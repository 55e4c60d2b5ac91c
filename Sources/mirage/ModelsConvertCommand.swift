import ArgumentParser
import Foundation
import MirageEngine

/// `mirage models convert`: a PyTorch checkpoint (or any folder Mirage reads) → a safetensors model folder.
struct ModelsConvert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a PyTorch checkpoint or model folder to a safetensors model folder.",
        discussion: """
        IN is a model folder (pytorch_model.bin, pytorch_model-*.bin with pytorch_model.bin.index.json, *.pth \
        files, or safetensors) or a single checkpoint file (a .pth/.bin written by torch.save, or a .safetensors \
        file). OUT receives model.safetensors, or model-0000i-of-0000n.safetensors shards with \
        model.safetensors.index.json when the weights exceed --max-shard-size, plus (when IN is a folder) its \
        config, tokenizer, processor and template files (.json, .txt, .model, .jinja, .tiktoken) copied \
        unchanged: a folder that Mirage and transformers both load.

        PyTorch files are read by Mirage's restricted unpickler, which accepts only tensors, dicts, lists and \
        plain values and never runs code from the file (docs/checkpoints.md); a checkpoint saved as \
        {'model': state_dict} or {'state_dict': ...} contributes that dict. Names, dtypes, shapes and values are \
        kept exactly; tensors that were strided views (e.g. transposed) are written in row-major order; tensors \
        that shared a storage (tied weights) are written once each.

        The conversion streams tensor by tensor, so memory stays near the largest tensor. Each written file is \
        listed with its size and SHA-256, and the result is reopened as a model folder to check it.

        Examples:
          mirage models convert ~/llava-v1.5-7b ~/llava-v1.5-7b-safetensors
          mirage models convert pretrained_minigpt4.pth ./minigpt4-projector
          mirage models convert ./lavis-ckpt ./out --max-shard-size 2GB --force
        """)

    @Argument(help: ArgumentHelp("Model folder or checkpoint file to read.", valueName: "in"))
    var input: String

    @Argument(help: ArgumentHelp("Output folder (created; must be empty unless --force).", valueName: "out"))
    var output: String

    @Option(name: .long, help: ArgumentHelp("Largest safetensors shard: 5GB, 500MB, 2GiB or bytes (5GB was transformers 4's default; transformers 5 uses 50GB).", valueName: "size"))
    var maxShardSize = "5GB"

    @Flag(name: .long, help: "Write into a non-empty OUT, replacing its weight files and the copied files.")
    var force = false

    func validate() throws {
        guard ModelFolderOutput.parseSize(maxShardSize) != nil else {
            throw ValidationError("--max-shard-size takes a size such as 5GB, 500MB, 2GiB or a byte count (got '\(maxShardSize)')")
        }
    }

    func run() throws {
        let inURL = URL(fileURLWithPath: (input as NSString).expandingTildeInPath).standardizedFileURL
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: inURL.path, isDirectory: &isDirectory) else {
            throw ValidationError("\(inURL.path) does not exist; pass a model folder or a checkpoint file")
        }
        let outURL = URL(fileURLWithPath: (output as NSString).expandingTildeInPath).standardizedFileURL
        let inFolder = isDirectory.boolValue ? inURL : inURL.deletingLastPathComponent()
        guard outURL.path != inFolder.path else {
            throw ValidationError("OUT must not be the folder IN is read from; choose a new folder for the converted model")
        }
        let store = isDirectory.boolValue ? try TensorStore(folder: inURL) : try TensorStore(file: inURL)
        let folder = try ModelFolderOutput.prepare(output, force: force)
        let declarations = try store.orderedNames.map { name -> SafeTensorsWriter.Declaration in
            guard let e = store.entry(name) else { throw ModelError.missingTensor(tensor: name, folder: store.folder) }
            return SafeTensorsWriter.Declaration(name: name, dtype: e.dtype, shape: e.shape)
        }
        let writer = SafeTensorsFolderWriter(folder: folder, tensors: declarations,
                                             maxShardBytes: ModelFolderOutput.parseSize(maxShardSize)!)
        print("converting \(inURL.path) (\(store.format.rawValue), \(store.paths.count) file\(store.paths.count == 1 ? "" : "s")): "
              + "\(declarations.count) tensors, \(ModelFolderOutput.formatBytes(writer.totalBytes))")
        let progress = ModelFolderOutput.Progress("converting")
        let files = try writer.write(body: { declaration, out in
            try store.withBytes(declaration.name) { _, bytes in try out.write(bytes) }
            store.releasePages(declaration.name)
        }, progress: progress.update)
        progress.finish()
        // A single checkpoint file's neighbours are not its model's files: only a folder's are copied.
        let copied = isDirectory.boolValue ? try ModelFolderOutput.copySideFiles(from: inURL, to: folder) : []
        print("wrote \(folder.path):")
        try ModelFolderOutput.printSummary(files, copied: copied, folder: folder)
    }
}
