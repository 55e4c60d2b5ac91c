import Foundation
import MirageMetrics
import MirageStore

/// A run's identity and per-item outputs, read from the store or from a golden JSONL file: what
/// `mirage check` compares.
///
/// The golden JSONL format (`mirage check --write-golden`, docs/check.md) is one JSON object per line, keys
/// sorted. The first line is the header:
///
///     {"decoder":{"name":"opera","parameters":{...}},"format":"mirage-golden","items":3,
///      "model":{"architecture":"llava-llama","fingerprint":"<sha256>+exact","name":"..."},"precision":"exact",
///      "protocol":{...the protocol's canonical fields...},"protocol_hash":"...","generation_hash":"...",
///      "seed":0,"version":1, "mirage_version":"...","git_revision":"...","source":"run 4 (label)"}
///
/// then one line per item, in the run's order:
///
///     {"decoder":"opera(num_beams=3, ...)","image_id":42,"item":"42","ordinal":0,"score":{"chair":{...}},
///      "text":"a dog on a couch","tokens":[306,11,...]}
///
/// with `question_id` for POPE items, `failure` for an item that failed (no tokens, empty text), and `score`
/// (CHAIR mentions / POPE label and parsed answer) when the item was scored, so `--metric` can use a golden file
/// as its baseline.
public struct GoldenRun: Sendable {
    public static let format = "mirage-golden"
    public static let version = 1

    /// What makes two runs' outputs comparable token for token.
    public struct Identity: Hashable, Sendable {
        public var model: ModelSpec
        public var evalProtocol: EvalProtocol
        public var decoder: DecoderSpec
        public var seed: Int64?
        public init(model: ModelSpec, evalProtocol: EvalProtocol, decoder: DecoderSpec, seed: Int64?) {
            self.model = model; self.evalProtocol = evalProtocol; self.decoder = decoder; self.seed = seed
        }

        /// The arithmetic the run's weights were multiplied in (`exact`/`fast`), the last `+` field of the
        /// runner's fingerprint; nil for imports, whose weights Mirage never saw.
        public var precision: String? {
            guard let last = model.fingerprint.split(separator: "+").last, model.fingerprint.contains("+") else { return nil }
            return String(last)
        }
    }

    public struct Item: Hashable, Sendable {
        public var key: String
        public var ordinal: Int
        public var imageID: Int?
        public var questionID: Int?
        /// nil for imported outputs (caption and answer files carry text only).
        public var tokens: [Int]?
        public var text: String
        public var failure: String?
        public var score: ItemScore?
        public init(key: String, ordinal: Int, imageID: Int? = nil, questionID: Int? = nil, tokens: [Int]?, text: String,
                    failure: String? = nil, score: ItemScore? = nil) {
            self.key = key; self.ordinal = ordinal; self.imageID = imageID; self.questionID = questionID
            self.tokens = tokens; self.text = text; self.failure = failure; self.score = score
        }
    }

    public var identity: Identity
    public var items: [Item]
    /// How a report names this side: `run 4 (label)` or the golden file's name.
    public var source: String
    public var mirageVersion: String?
    public var gitRevision: String?

    public init(identity: Identity, items: [Item], source: String, mirageVersion: String? = nil, gitRevision: String? = nil) {
        self.identity = identity; self.items = items; self.source = source
        self.mirageVersion = mirageVersion; self.gitRevision = gitRevision
    }

    /// A stored run with its items.
    public init(store: any RunRepository, run: RunRecord) throws {
        let items = try store.items(run: run.id).map { stored in
            Item(key: stored.item.key, ordinal: stored.item.ordinal, imageID: stored.item.imageID,
                 questionID: stored.item.questionID, tokens: stored.item.outputTokens, text: stored.item.outputText,
                 failure: stored.item.failureReason, score: stored.score)
        }
        self.init(identity: Identity(model: run.model, evalProtocol: run.protocolRecord.evalProtocol, decoder: run.decoder,
                                     seed: run.seed),
                  items: items, source: "run \(run.id)" + (run.label.map { " (\($0))" } ?? ""),
                  mirageVersion: run.mirageVersion, gitRevision: run.gitRevision)
    }
}

// MARK: - JSONL

extension GoldenRun {
    /// The golden file's text: the header line, then one line per item.
    public func jsonl() -> String {
        var header: [String: Any] = [
            "format": Self.format, "version": Self.version, "items": items.count, "source": source,
            "model": ["name": identity.model.name, "architecture": identity.model.architecture,
                      "fingerprint": identity.model.fingerprint],
            "decoder": ["name": identity.decoder.name, "parameters": Self.object(identity.decoder.parametersJSON)],
            "protocol": Self.object(identity.evalProtocol.canonicalJSON),
            "protocol_hash": identity.evalProtocol.hash,
            "generation_hash": identity.evalProtocol.generationIdentity.hash,
        ]
        header["seed"] = identity.seed
        header["precision"] = identity.precision
        header["mirage_version"] = mirageVersion
        header["git_revision"] = gitRevision
        var lines = [Self.line(header)]
        let decoder = identity.decoder.display
        for item in items {
            var f: [String: Any] = ["item": item.key, "ordinal": item.ordinal, "decoder": decoder, "text": item.text]
            f["image_id"] = item.imageID; f["question_id"] = item.questionID; f["tokens"] = item.tokens
            f["failure"] = item.failure
            switch item.score {
            case .chair(let s)?: f["score"] = ["chair": Self.object(CanonicalJSON.string(s))]
            case .pope(let s)?: f["score"] = ["pope": Self.object(CanonicalJSON.string(s))]
            case nil: break
            }
            lines.append(Self.line(f))
        }
        return lines.map { $0 + "\n" }.joined()
    }

    /// Reads a golden file; errors name the file, the line and what is wrong.
    public init(jsonl text: String, source: String) throws {
        func fail(_ line: Int, _ message: String) -> GoldenFileError { .malformed(file: source, line: line, message) }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        while lines.last?.trimmingCharacters(in: .whitespaces).isEmpty == true { lines.removeLast() }
        guard let first = lines.first else { throw fail(1, "the file is empty; write one with `mirage check --write-golden FILE RUN`") }
        func object(_ text: String, _ line: Int) throws -> [String: Any] {
            guard let data = text.data(using: .utf8), let value = try? JSONSerialization.jsonObject(with: data),
                  let dict = value as? [String: Any] else { throw fail(line, "not a JSON object") }
            return dict
        }
        let header = try object(first, 1)
        guard header["format"] as? String == Self.format else {
            throw fail(1, "the first line is not a golden header (\"format\": \"\(Self.format)\"); golden files are written by `mirage check --write-golden`")
        }
        guard let version = header["version"] as? Int, version <= Self.version else {
            throw fail(1, "golden format version \(header["version"].map { "\($0)" } ?? "missing") is newer than this Mirage reads (\(Self.version)); update Mirage")
        }
        guard let model = header["model"] as? [String: Any], let modelName = model["name"] as? String,
              let fingerprint = model["fingerprint"] as? String else { throw fail(1, "\"model\" needs \"name\" and \"fingerprint\"") }
        guard let decoder = header["decoder"] as? [String: Any], let decoderName = decoder["name"] as? String else {
            throw fail(1, "\"decoder\" needs \"name\" and \"parameters\"")
        }
        let parameters = CanonicalJSON.reserialized(decoder["parameters"] ?? [String: Any]())
        guard let protocolObject = header["protocol"],
              let protocolData = try? JSONSerialization.data(withJSONObject: protocolObject),
              let evalProtocol = try? JSONDecoder().decode(EvalProtocol.self, from: protocolData) else {
            throw fail(1, "\"protocol\" is missing or not a protocol (task, imageIDs, ...)")
        }
        if let hash = header["protocol_hash"] as? String, hash != evalProtocol.hash {
            throw fail(1, "\"protocol_hash\" \(hash.prefix(12))… does not match the protocol written beside it (\(evalProtocol.hash.prefix(12))…): the header was edited; regenerate the file")
        }
        identity = Identity(model: ModelSpec(name: modelName, architecture: model["architecture"] as? String ?? "", fingerprint: fingerprint),
                            evalProtocol: evalProtocol, decoder: DecoderSpec(name: decoderName, parametersJSON: parameters),
                            seed: (header["seed"] as? NSNumber)?.int64Value)
        self.source = source
        mirageVersion = header["mirage_version"] as? String
        gitRevision = header["git_revision"] as? String
        var items: [Item] = []
        var seen = Set<String>()
        for (index, text) in lines.dropFirst().enumerated() {
            let n = index + 2
            let f = try object(text, n)
            guard let key = f["item"] as? String else { throw fail(n, "\"item\" (the item key) is missing") }
            guard seen.insert(key).inserted else { throw fail(n, "item \"\(key)\" appears twice") }
            guard let itemText = f["text"] as? String else { throw fail(n, "\"text\" is missing") }
            var tokens: [Int]?
            if let raw = f["tokens"] {
                guard let list = raw as? [Int] else { throw fail(n, "\"tokens\" must be a list of token ids") }
                tokens = list
            }
            var score: ItemScore?
            if let raw = f["score"] as? [String: Any] {
                func decode<T: Decodable>(_ type: T.Type, _ value: Any) throws -> T {
                    guard let data = try? JSONSerialization.data(withJSONObject: value),
                          let decoded = try? JSONDecoder().decode(type, from: data) else { throw fail(n, "\"score\" is not a CHAIR or POPE item score") }
                    return decoded
                }
                if let chair = raw["chair"] { score = .chair(try decode(ChairItemScore.self, chair)) }
                else if let pope = raw["pope"] { score = .pope(try decode(PopeItemScore.self, pope)) }
                else { throw fail(n, "\"score\" must hold \"chair\" or \"pope\"") }
            }
            items.append(Item(key: key, ordinal: f["ordinal"] as? Int ?? index, imageID: f["image_id"] as? Int,
                              questionID: f["question_id"] as? Int, tokens: tokens, text: itemText,
                              failure: f["failure"] as? String, score: score))
        }
        if let count = header["items"] as? Int, count != items.count {
            throw fail(1, "the header says \(count) items but the file has \(items.count) item lines: the file was cut or edited; regenerate it")
        }
        self.items = items
    }

    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw GoldenFileError.unreadable(file: url.path, reason: error.localizedDescription)
        }
        try self.init(jsonl: String(decoding: data, as: UTF8.self), source: url.lastPathComponent)
    }

    private static func object(_ json: String) -> Any {
        (try? JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed])) ?? [String: Any]()
    }

    private static func line(_ value: [String: Any]) -> String {
        let data = try! JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes])
        return ItemExport.escapeLineSeparators(String(decoding: data, as: UTF8.self))
    }
}

extension CanonicalJSON {
    /// A parsed JSON value written back with sorted keys and unescaped slashes (`{}` when it is not JSON).
    static func reserialized(_ value: Any) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed])
        else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}

extension EvalProtocol {
    /// The protocol without the fields that only change how outputs are scored (CHAIR vocabulary and ground
    /// truth, POPE answer parser): two runs with equal generation identities were asked the same thing of the
    /// same images, so their tokens can be compared one for one even when one was scored with CHAIR's
    /// reference resources and the other in demo mode.
    public var generationIdentity: EvalProtocol {
        var p = self
        p.vocabularyChecksum = nil; p.groundTruthChecksum = nil; p.answerParser = nil
        return p
    }
}

/// A golden file that cannot be read, with what to do about it.
public enum GoldenFileError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case malformed(file: String, line: Int, String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason):
            return "cannot read the golden file \(file): \(reason); give the path of a file written by `mirage check --write-golden FILE RUN`"
        case let .malformed(file, line, message):
            return "\(file):\(line): \(message)"
        }
    }
}
