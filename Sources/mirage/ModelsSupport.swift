import ArgumentParser
import Foundation
import MirageEngine
import MirageTokenizers
import MirageKernels
import MirageModels

/// `--precision exact|fast` (see `LoadOptions.precision`).
extension Precision: ExpressibleByArgument {}

/// Options every command that runs a language model shares.
struct ModelRunOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Model folder as Hugging Face writes it: config.json, model.safetensors (or shards with model.safetensors.index.json), tokenizer.json.",
        valueName: "dir"))
    var model: String

    @Option(name: .long, help: ArgumentHelp(
        "Quantize the projections and LM head at load. q8: group-wise int8 (one scale per 32 inputs), about half the bytes of f16.",
        valueName: "q8"))
    var quantize: String?

    @Option(name: .long, help: ArgumentHelp(
        "exact (default): every weight widened to f32, f32 accumulation (matches transformers' float32 for f32, f16 and bf16 checkpoints). fast: for f16 checkpoints on prompts over 128 rows, f16 FMAs (AVX512-FP16, activations scaled per row, f16 sums of 64 products flushed into f32) where they beat f32 FMAs; bf16 dot products (vdpbf16ps) for bf16 checkpoints and for f16 checkpoints converted to bf16 at load, activations rounded to bf16 in prompts, on CPUs where they beat f32 FMAs (elsewhere f16 and bf16 compute as exact); with --quantize q8 (or a pre-quantized folder) int8 dot products (vpdpbusd), activations quantized to int8 per 32 inputs (docs/engine.md, \"Precision\").",
        valueName: "exact|fast"))
    var precision: Precision = .exact

    @Option(name: .long, help: "Worker threads (default and maximum: the machine's CPUs).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(name: .long, help: ArgumentHelp(
        "The vision tower folder of a model that keeps it outside its folder (original LLaVA layout: the folder mm_vision_tower names, e.g. openai/clip-vit-large-patch14-336). Default: found beside the model, in MIRAGE_VISION_TOWERS or in the Hugging Face cache (docs/vision.md).",
        valueName: "dir"))
    var visionTower: String?

    func validate() throws {
        if let quantize, quantize != "q8" {
            throw ValidationError("--quantize takes q8 (got '\(quantize)'); omit it to run the checkpoint's own dtype")
        }
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory) || !isDirectory.boolValue {
            throw ValidationError("model folder \(folder.path) does not exist; --model takes a folder with config.json and *.safetensors")
        }
    }

    var folder: URL { URL(fileURLWithPath: (model as NSString).expandingTildeInPath) }

    /// Load options: the quantization, `--precision`, and `--threads` capped at the machine's CPUs (with a note
    /// when lowered).
    func loadOptions() -> LoadOptions {
        var options = LoadOptions(quantize: quantize == "q8" ? .q8 : nil, threads: ThreadCount.capped(threads), precision: precision)
        options.visionTower = visionTower.map { URL(fileURLWithPath: ($0 as NSString).expandingTildeInPath) }
        return options
    }

    func loadModel() throws -> LanguageModel {
        let options = loadOptions()
        if try isVisionLanguageFolder() { return try ModelFamilies.load(folder, options: options).languageModel }
        return try LanguageModel(folder: folder, options: options)
    }

    /// True when the folder holds a model of a registered vision-language family (its decoder runs text-only
    /// prompts; --image adds an image). Throws, saying why, when config.json is missing or unreadable.
    func isVisionLanguageFolder() throws -> Bool {
        _ = try JSONSerialization.configObject(at: folder.appendingPathComponent("config.json"),
                                               hint: "A model folder needs the config.json written with its weights.")
        return ModelFamilies.recognizes(folder)
    }

    /// The vision-language model of the folder, with these options.
    func loadVisionLanguageModel() throws -> any VisionLanguageModel {
        try ModelFamilies.load(folder, options: loadOptions())
    }

    func loadTokenizer() throws -> Tokenizer { try Tokenizer(folder: folder) }
}

/// Parses "1,2,3" or "1 2 3" into token ids.
func parseTokenIDs(_ text: String) throws -> [Int] {
    let parts = text.split(whereSeparator: { $0 == "," || $0 == " " })
    let ids = parts.compactMap { Int($0) }
    guard ids.count == parts.count, !ids.isEmpty else {
        throw ValidationError("--ids expects integer token ids separated by commas, e.g. --ids 1,450,1967")
    }
    return ids
}
