import Foundation

/// What a run is evaluated on. Two runs are comparable exactly when their protocols are equal; the store
/// identifies a protocol by the SHA-256 of its canonical JSON (keys sorted, absent fields omitted).
public struct EvalProtocol: Codable, Hashable, Sendable {
    public enum Task: String, Codable, Sendable, CaseIterable { case chair, pope }

    public var task: Task
    /// The image ids the protocol covers, sorted and without duplicates (order does not define a protocol).
    public var imageIDs: [Int]
    public var promptTemplate: String?
    public var maxNewTokens: Int?
    /// POPE: the question file's name, its SHA-256, its split (random/popular/adversarial) and the answer parser.
    public var questionFile: String?
    public var questionChecksum: String?
    public var split: String?
    public var answerParser: String?
    /// CHAIR: SHA-256 of the vocabulary (synonyms) file and of the ground-truth objects file.
    public var vocabularyChecksum: String?
    public var groundTruthChecksum: String?
    /// How images are prepared before the model's own preprocessor, when that differs from the plain
    /// preprocessor: `"pad-to-square"` (LLaVA's expand2square, used by the LLaVA evaluation). `nil` for
    /// imports and unpadded runs, so their hashes are unchanged.
    public var imagePreprocessing: String?

    public init(task: Task, imageIDs: [Int], promptTemplate: String? = nil, maxNewTokens: Int? = nil,
                questionFile: String? = nil, questionChecksum: String? = nil, split: String? = nil,
                answerParser: String? = nil, vocabularyChecksum: String? = nil, groundTruthChecksum: String? = nil,
                imagePreprocessing: String? = nil) {
        self.task = task
        self.imageIDs = Array(Set(imageIDs)).sorted()
        self.promptTemplate = promptTemplate
        self.maxNewTokens = maxNewTokens
        self.questionFile = questionFile
        self.questionChecksum = questionChecksum
        self.split = split
        self.answerParser = answerParser
        self.vocabularyChecksum = vocabularyChecksum
        self.groundTruthChecksum = groundTruthChecksum
        self.imagePreprocessing = imagePreprocessing
    }

    /// Keys sorted, slashes unescaped, `nil` fields left out: the bytes that are hashed.
    public var canonicalJSON: String { CanonicalJSON.string(self) }
    public var hash: String { ContentHash.sha256Hex(Data(canonicalJSON.utf8)) }

    /// Human-readable differences to another protocol (used to explain why runs are not comparable).
    public func differences(from other: EvalProtocol) -> [String] {
        var out: [String] = []
        if task != other.task { out.append("task \(task.rawValue) vs \(other.task.rawValue)") }
        if imageIDs != other.imageIDs {
            let shared = Set(imageIDs).intersection(other.imageIDs).count
            out.append("image lists differ (\(imageIDs.count) vs \(other.imageIDs.count) images, \(shared) shared)")
        }
        func field<T: Equatable>(_ name: String, _ a: T?, _ b: T?) {
            if a != b { out.append("\(name) \(a.map { "\($0)" } ?? "unset") vs \(b.map { "\($0)" } ?? "unset")") }
        }
        field("prompt", promptTemplate.map { "\"\($0)\"" }, other.promptTemplate.map { "\"\($0)\"" })
        field("max new tokens", maxNewTokens, other.maxNewTokens)
        field("question file", questionFile, other.questionFile)
        if questionFile == other.questionFile { field("question checksum", questionChecksum, other.questionChecksum) }
        field("split", split, other.split)
        field("answer parser", answerParser, other.answerParser)
        field("CHAIR vocabulary checksum", vocabularyChecksum, other.vocabularyChecksum)
        field("CHAIR ground-truth checksum", groundTruthChecksum, other.groundTruthChecksum)
        field("image preprocessing", imagePreprocessing, other.imagePreprocessing)
        return out
    }
}

/// A model as the store knows it: a name, its architecture, and a fingerprint of its weights
/// (empty for imported outputs whose weights Mirage never saw).
public struct ModelSpec: Hashable, Sendable {
    public var name: String
    public var architecture: String
    public var fingerprint: String
    public init(name: String, architecture: String = "", fingerprint: String = "") {
        self.name = name; self.architecture = architecture; self.fingerprint = fingerprint
    }
}

/// A decoder and its parameters; parameters are stored as canonical JSON so equal settings share a row.
public struct DecoderSpec: Hashable, Sendable {
    public var name: String
    public var parametersJSON: String
    public init(name: String, parameters: [String: String] = [:]) {
        self.name = name
        self.parametersJSON = CanonicalJSON.string(parameters)
    }
    public init(name: String, parametersJSON: String) {
        self.name = name; self.parametersJSON = parametersJSON
    }
    /// `beam5`, or `opera(num_beams=5, scale_factor=50)` when parameters are set.
    public var display: String {
        guard let data = parametersJSON.data(using: .utf8),
              let dict = try? JSONSerialization.jsonObject(with: data) as? [String: Any], !dict.isEmpty else { return name }
        let pairs = dict.keys.sorted().map { "\($0)=\(dict[$0]!)" }
        return "\(name)(\(pairs.joined(separator: ", ")))"
    }
}

/// Canonical JSON: sorted keys, no escaped slashes, nil fields omitted.
public enum CanonicalJSON {
    public static func string<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding plain Codable values cannot fail.
        return String(decoding: try! encoder.encode(value), as: UTF8.self)
    }
}
