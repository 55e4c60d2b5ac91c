import Foundation
import MirageMetrics

public enum RunStatus: String, Codable, Sendable { case running, complete, failed }

/// The descriptive fields a run carries from its creation on (readable directly on `NewRun` and
/// `RunRecord`, e.g. `run.label`).
public struct RunDetails: Hashable, Sendable {
    public var seed: Int64?
    public var label: String?
    /// For imports: SHA-256 over the source file and the import options; a second run with the same hash is
    /// refused by the store (`SQLiteRunStore.run(sourceHash:)` finds the first).
    public var sourceHash: String?
    public var sourcePath: String?
    public var expectedItems: Int?
    public var mirageVersion: String
    public var gitRevision: String?
    public var host: String
}

/// Everything needed to start a run; `SQLiteRunStore.createRun` registers protocol, model and decoder as needed.
@dynamicMemberLookup
public struct NewRun: Sendable {
    public var evalProtocol: EvalProtocol
    public var protocolName: String?
    public var model: ModelSpec
    public var decoder: DecoderSpec
    public var details: RunDetails

    public init(evalProtocol: EvalProtocol, protocolName: String? = nil, model: ModelSpec, decoder: DecoderSpec,
                seed: Int64? = nil, label: String? = nil, sourceHash: String? = nil, sourcePath: String? = nil,
                expectedItems: Int? = nil, mirageVersion: String, gitRevision: String? = nil,
                host: String = ProcessInfo.processInfo.hostName) {
        self.evalProtocol = evalProtocol; self.protocolName = protocolName; self.model = model; self.decoder = decoder
        details = RunDetails(seed: seed, label: label, sourceHash: sourceHash, sourcePath: sourcePath,
                             expectedItems: expectedItems, mirageVersion: mirageVersion, gitRevision: gitRevision, host: host)
    }

    public subscript<T>(dynamicMember path: WritableKeyPath<RunDetails, T>) -> T {
        get { details[keyPath: path] }
        set { details[keyPath: path] = newValue }
    }
}

public struct ProtocolRecord: Hashable, Sendable {
    public var id: Int64
    public var hash: String
    public var name: String?
    public var evalProtocol: EvalProtocol
    /// `name` when set, else the first 12 hex digits of the hash.
    public var display: String { name ?? String(hash.prefix(12)) }
}

@dynamicMemberLookup
public struct RunRecord: Hashable, Sendable {
    public var id: Int64
    public var protocolRecord: ProtocolRecord
    public var model: ModelSpec
    public var decoder: DecoderSpec
    public var details: RunDetails
    /// ISO 8601 UTC.
    public var createdAt: String
    public var updatedAt: String
    public var finishedAt: String?
    public var status: RunStatus
    public var task: EvalProtocol.Task { protocolRecord.evalProtocol.task }

    public subscript<T>(dynamicMember path: KeyPath<RunDetails, T>) -> T { details[keyPath: path] }
}

/// One item of a run (a caption, an answer) as the runner or an import records it.
public struct NewItem: Hashable, Sendable {
    /// Unique within the run (imports use the line/element index).
    public var key: String
    public var ordinal: Int
    public var imageID: Int?
    public var questionID: Int?
    public var prompt: String?
    public var outputText: String
    public var outputTokens: [Int]?
    public var prefillSeconds: Double?
    public var decodeSeconds: Double?
    public var forwardPasses: Int?
    public var seed: Int64?
    /// Set when the item failed (the output is then empty and the item is not scored).
    public var failureReason: String?

    public init(key: String, ordinal: Int, imageID: Int? = nil, questionID: Int? = nil, prompt: String? = nil,
                outputText: String, outputTokens: [Int]? = nil, prefillSeconds: Double? = nil,
                decodeSeconds: Double? = nil, forwardPasses: Int? = nil, seed: Int64? = nil,
                failureReason: String? = nil) {
        self.key = key; self.ordinal = ordinal; self.imageID = imageID; self.questionID = questionID
        self.prompt = prompt; self.outputText = outputText; self.outputTokens = outputTokens
        self.prefillSeconds = prefillSeconds; self.decodeSeconds = decodeSeconds
        self.forwardPasses = forwardPasses; self.seed = seed; self.failureReason = failureReason
    }
}

public struct StoredItem: Hashable, Sendable {
    public var id: Int64
    public var item: NewItem
    public var score: ItemScore?
    public var createdAt: String
}

/// Which runs a query selects; empty fields match everything.
public struct RunFilter: Sendable {
    public var protocolRef: String?
    public var model: String?
    public var decoder: String?
    public var task: EvalProtocol.Task?
    public init(protocolRef: String? = nil, model: String? = nil, decoder: String? = nil, task: EvalProtocol.Task? = nil) {
        self.protocolRef = protocolRef; self.model = model; self.decoder = decoder; self.task = task
    }
}

/// A summary row for listings.
public struct RunSummary: Hashable, Sendable {
    public var run: RunRecord
    public var itemCount: Int
    public var scoredCount: Int
    public var metrics: [String: Double]
    /// Expected items not stored (0 when the run expects nothing in particular or has them all).
    public var missingItems: Int { max(0, (run.expectedItems ?? 0) - itemCount) }
}
