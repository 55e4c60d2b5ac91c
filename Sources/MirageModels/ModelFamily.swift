import Foundation
import MirageEngine

/// A model folder as a family sees it before loading: its URL, its parsed `config.json` and its file names.
public struct ModelFolder: @unchecked Sendable {
    public let url: URL
    /// `config.json`, parsed (empty when the folder has none).
    public let config: [String: Any]
    /// File names in the folder (not recursive), sorted.
    public let files: [String]
    /// The vision tower folder given for a model that keeps its tower elsewhere (`LoadOptions.visionTower`,
    /// `--vision-tower`); nil: the family looks for it.
    public var visionTower: URL?

    public init(url: URL) throws {
        self.url = url
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ModelError.invalidInput("\(url.path) is not a folder: a model is a folder with config.json and its weights "
                                          + "(e.g. from `mirage models synth`)")
        }
        files = ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []).sorted()
        let configURL = url.appendingPathComponent("config.json")
        if files.contains("config.json") {
            config = try JSONSerialization.configObject(
                at: configURL, hint: "A model folder needs the config.json written with its weights.")
        } else {
            config = [:]
        }
    }

    /// A folder as already read (`config` parsed, `files` listed), e.g. for checking a config.json on its own.
    public init(url: URL, config: [String: Any], files: [String]) {
        self.url = url
        self.config = config
        self.files = files.sorted()
    }

    /// `model_type` of config.json, if any.
    public var modelType: String? { config["model_type"] as? String }
    /// `architectures` of config.json (empty when absent).
    public var architectures: [String] { config["architectures"] as? [String] ?? [] }
}

/// What the runner needs to know of a model before loading it (memory estimate, context checks).
public struct ModelShape: Sendable {
    /// The decoder's configuration.
    public var text: ModelConfig
    /// Rows one image contributes to a prompt.
    public var imageTokenCount: Int
    /// Bytes of activations the image encoder needs for one image (f32), for the memory estimate.
    public var imageEncoderActivationBytes: Int64
    /// Other folders whose weights the model loads besides its own (e.g. a vision tower kept in its own
    /// folder), for the memory estimate.
    public var otherWeightFolders: [URL] = []
    /// Floating-point operations (2 per multiply-add) of encoding one image into its rows, for
    /// `mirage run --estimate`; 0 when the family does not say.
    public var imageEncoderFLOPs: Double = 0

    public init(text: ModelConfig, imageTokenCount: Int, imageEncoderActivationBytes: Int64) {
        self.text = text
        self.imageTokenCount = imageTokenCount
        self.imageEncoderActivationBytes = imageEncoderActivationBytes
    }
}

/// One architecture of vision-language model: how to recognise its folders, what it costs, how to load it.
/// Register a new family with one line in `ModelFamilies.all`.
public struct ModelFamily: Sendable {
    /// Short name used in architecture names and messages (`llava`, `instructblip`, ...).
    public let name: String
    /// One line for `mirage models families`: the model and the checkpoint layouts it loads.
    public let summary: String
    /// True when `folder` holds a checkpoint of this family (from `model_type`, `architectures` or the
    /// original repositories' markers).
    public let recognizes: @Sendable (ModelFolder) -> Bool
    /// The shape, read from the folder's configuration without loading weights.
    public let shape: @Sendable (ModelFolder) throws -> ModelShape
    /// Loads the model.
    public let load: @Sendable (ModelFolder, LoadOptions) throws -> any VisionLanguageModel
    /// The templates its models know (`VisionLanguageModel.templates`), so protocol files can be checked and
    /// rendered before a model loads. Empty: names are checked when the model loads.
    public var templates: [PromptTemplate]
    /// How `mirage models synth` writes random-weight folders of this family (nil: it writes none).
    public var synthesizer: ModelSynthesizer?
    /// The folder whose preprocessor_config.json preprocesses the family's images (`mirage inspect pixels`):
    /// the model folder, or a tower folder kept elsewhere (llava-original, shikra).
    public var imageProcessorFolder: @Sendable (ModelFolder) throws -> URL
    /// The generation settings and output handling of the paper's evaluation code for this family (OPERA's
    /// wrappers), applied by protocols with `paper_settings: true`; nil: the family has none.
    public var paperSettings: PaperSettings?

    public init(name: String, summary: String, recognizes: @escaping @Sendable (ModelFolder) -> Bool,
                shape: @escaping @Sendable (ModelFolder) throws -> ModelShape,
                load: @escaping @Sendable (ModelFolder, LoadOptions) throws -> any VisionLanguageModel,
                templates: [PromptTemplate] = [], synthesizer: ModelSynthesizer? = nil,
                imageProcessorFolder: @escaping @Sendable (ModelFolder) throws -> URL = { $0.url },
                paperSettings: PaperSettings? = nil) {
        self.name = name
        self.summary = summary
        self.recognizes = recognizes
        self.shape = shape
        self.load = load
        self.templates = templates
        self.synthesizer = synthesizer
        self.imageProcessorFolder = imageProcessorFolder
        self.paperSettings = paperSettings
    }
}

/// The registry of model families. The first family that recognises a folder loads it.
public enum ModelFamilies {
    /// Every family Mirage loads, most specific first.
    public static let all: [ModelFamily] = [
        .llava,
        .llavaOriginal,
        .shikra,
        .instructBlip,
        .blip2Llama,
        .lavisInstructBlip,
        .miniGPT4,
    ]

    /// The family of the folder at `url`, or an error listing what Mirage loads.
    public static func family(of url: URL) throws -> (ModelFamily, ModelFolder) {
        let folder = try ModelFolder(url: url)
        if let family = all.first(where: { $0.recognizes(folder) }) { return (family, folder) }
        let described = folder.files.contains("config.json")
            ? "its config.json (model_type \(folder.modelType.map { "\"\($0)\"" } ?? "absent"), architectures "
              + "\(folder.architectures.isEmpty ? "absent" : folder.architectures.joined(separator: ", "))) matches no family Mirage loads"
            : "it has no config.json"
        throw ModelError.invalidInput("\(url.path) is not a vision-language model folder Mirage loads: \(described). "
            + "Mirage loads: " + all.map { "\($0.name) (\($0.summary))" }.joined(separator: "; ")
            + ". A text-only model runs with `mirage generate` without --image.")
    }

    /// Whether the folder at `url` holds a vision-language model of a registered family.
    public static func recognizes(_ url: URL) -> Bool {
        guard let folder = try? ModelFolder(url: url) else { return false }
        return all.contains { $0.recognizes(folder) }
    }

    /// Loads the folder at `url` with the family that recognises it.
    public static func load(_ url: URL, options: LoadOptions = LoadOptions()) throws -> any VisionLanguageModel {
        let (family, found) = try family(of: url)
        var folder = found
        folder.visionTower = options.visionTower
        return try family.load(folder, options)
    }

    /// The folder holding the image processor config of the model at `url` (`ModelFamily.imageProcessorFolder`):
    /// `url` itself for folders no family recognises.
    public static func imageProcessorFolder(of url: URL, visionTower: URL? = nil) throws -> URL {
        guard let (family, found) = try? family(of: url) else { return url }
        var folder = found
        folder.visionTower = visionTower
        return try family.imageProcessorFolder(folder)
    }

    /// The folder's shape without loading weights (`visionTower`: as `LoadOptions.visionTower`).
    public static func shape(of url: URL, visionTower: URL? = nil) throws -> ModelShape {
        let (family, found) = try family(of: url)
        var folder = found
        folder.visionTower = visionTower
        return try family.shape(folder)
    }
}

extension ModelFamilies {
    /// Every `--arch` name `mirage models synth` offers for vision-language models, in registry order.
    public static var synthArchitectures: [String] { all.flatMap { $0.synthesizer?.architectures ?? [] } }

    /// The family and synthesizer that write `architecture`, or nil.
    public static func synthesizer(for architecture: String) -> (ModelFamily, ModelSynthesizer)? {
        for family in all {
            if let s = family.synthesizer, s.architectures.contains(architecture) { return (family, s) }
        }
        return nil
    }

    /// Every template name some family's models know (for checking protocol files before a model loads),
    /// `processor` included.
    public static var templateNames: [String] {
        var names: [String] = []
        let candidates = all.flatMap { $0.templates.map(\.name) } + [PromptTemplate.processor.name]
        for name in candidates where !names.contains(name) {
            names.append(name)
        }
        return names
    }

    /// The first registered family template called `name` (`processor` included), for rendering protocol
    /// templates before a model loads; nil when no family knows it.
    public static func template(named name: String) -> PromptTemplate? {
        if name == PromptTemplate.processor.name { return .processor }
        return all.lazy.compactMap { $0.templates.first { $0.name == name } }.first
    }

    /// Names a protocol's `templates:` map may use as keys: decoder `model_type`s (`llama`, `qwen2`), family
    /// names (`llava`) and architecture names (`llava-llama`).
    public static var templateKeys: [String] {
        let decoders = Architecture.allCases.map(\.modelType)
        return decoders + all.map(\.name) + all.flatMap { f in decoders.map { "\(f.name)-\($0)" } }
    }
}

/// What `mirage models synth` asks a family to write.
public struct SynthesisRequest: Sendable {
    /// One of the synthesizer's `architectures`.
    public var architecture: String
    /// One of the synthesizer's `sizes`.
    public var size: String
    /// One of the synthesizer's `visions` (nil: its first).
    public var vision: String?
    public var seed: UInt64
    public var dtype: TensorDType
    /// Whole words given their own tokens, with their LM-head rows scaled by `wordLogitScale` (for demos whose
    /// random model should write words); families that cannot ignore them.
    public var words: [String] = []
    public var wordLogitScale: Float = 1

    public init(architecture: String, size: String, vision: String? = nil, seed: UInt64, dtype: TensorDType = .f16) {
        self.architecture = architecture
        self.size = size
        self.vision = vision
        self.seed = seed
        self.dtype = dtype
    }
}

/// How a family writes deterministic random-weight folders of its layout (`mirage models synth --arch NAME`).
public struct ModelSynthesizer: Sendable {
    /// The `--arch` names it writes, e.g. `llava-llama`, `llava-qwen2`.
    public let architectures: [String]
    /// The `--size` names it takes; the first is the smallest.
    public let sizes: [String]
    /// The `--vision` tower choices (empty: the family has one tower).
    public let visions: [String]
    /// Writes the folder for `request` into `folder` (and any folder it needs beside it, named in the result),
    /// reporting progress in 0...1. Returns one line describing what it wrote.
    public let write: @Sendable (SynthesisRequest, URL, (Double) -> Void) throws -> String

    public init(architectures: [String], sizes: [String], visions: [String] = [],
                write: @escaping @Sendable (SynthesisRequest, URL, (Double) -> Void) throws -> String) {
        self.architectures = architectures
        self.sizes = sizes
        self.visions = visions
        self.write = write
    }
}
