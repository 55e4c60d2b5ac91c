import Foundation
import MirageEngine

/// A model folder as a family sees it before loading: its URL, its parsed `config.json` and its file names.
public struct ModelFolder: @unchecked Sendable {
    public let url: URL
    /// `config.json`, parsed (empty when the folder has none).
    public let config: [String: Any]
    /// File names in the folder (not recursive), sorted.
    public let files: [String]

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
            guard let object = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any] else {
                throw ModelError.badConfig(path: configURL.path, field: "", detail: "the file is not a JSON object")
            }
            config = object
        } else {
            config = [:]
        }
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

    public init(name: String, summary: String, recognizes: @escaping @Sendable (ModelFolder) -> Bool,
                shape: @escaping @Sendable (ModelFolder) throws -> ModelShape,
                load: @escaping @Sendable (ModelFolder, LoadOptions) throws -> any VisionLanguageModel) {
        self.name = name
        self.summary = summary
        self.recognizes = recognizes
        self.shape = shape
        self.load = load
    }
}

/// The registry of model families. The first family that recognises a folder loads it.
public enum ModelFamilies {
    /// Every family Mirage loads, most specific first.
    public static let all: [ModelFamily] = [
        .llava,
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
        let (family, folder) = try family(of: url)
        return try family.load(folder, options)
    }

    /// The folder's shape without loading weights.
    public static func shape(of url: URL) throws -> ModelShape {
        let (family, folder) = try family(of: url)
        return try family.shape(folder)
    }
}
