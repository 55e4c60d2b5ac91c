import Foundation
import MirageMetrics

/// Computes a run's metrics from its stored items. Evaluation lives outside the store (MirageRunner's
/// `RunEvaluation.metrics`); the store calls the function inside the transaction that stores the result.
public typealias RunMetricsFunction = (RunRecord, [StoredItem]) throws -> [String: Double]

/// One item of one run, as workers claim it.
public struct ItemRef: Hashable, Sendable {
    public var run: Int64
    public var key: String
    public init(run: Int64, key: String) { self.run = run; self.key = key }
}

/// How far the runs of an experiment are, over every worker writing to the store.
public struct WorkProgress: Hashable, Sendable {
    /// Run id → items stored (by any worker).
    public var recorded: [Int64: Int]
    /// Items claimed under a lease that has not expired, by any worker.
    public var claimed: Int
    /// Distinct workers holding a live claim on these runs, this one included when it holds any.
    public var workers: Int
    public init(recorded: [Int64: Int], claimed: Int, workers: Int) {
        self.recorded = recorded; self.claimed = claimed; self.workers = workers
    }
}

/// What the runner, imports, merge, compare, export, report, attention and analysis need of a run store.
/// `SQLiteRunStore` (a file, the default) and `PostgresRunStore` (a `postgres://` URL) conform; open one through `RunStores`, never by its type, so every
/// command works with whichever backend `--db` names.
///
/// Item claiming lets several workers (processes, machines) share the runs of one experiment: a worker claims
/// a few unrecorded items under a lease, renews its lease while it decodes them, and records them (which
/// drops their claims). Items of a worker that died return to the pool when its lease expires.
public protocol RunRepository: AnyObject, Sendable {
    /// Where the store is, as the user named it (a path; never a password).
    var location: String { get }
    /// True when the store was opened for reading only.
    var isReadOnly: Bool { get }

    // MARK: Runs
    /// Creates a run, or returns the run with the same `sourceHash` (the resume key).
    func createRun(_ new: NewRun) throws -> (run: RunRecord, created: Bool)
    func run(sourceHash: String) throws -> RunRecord?
    func run(id: Int64) throws -> RunRecord
    /// A run by id or label.
    func resolveRun(_ reference: String) throws -> RunRecord
    func runs(_ filter: RunFilter) throws -> [RunRecord]
    func summaries(_ filter: RunFilter) throws -> [RunSummary]
    func setLabel(run id: Int64, to label: String?) throws
    func deleteRun(id: Int64) throws

    // MARK: Items
    func recordedItemKeys(run: Int64) throws -> Set<String>
    func scoredItemKeys(run: Int64) throws -> Set<String>
    @discardableResult func deleteFailedItems(run: Int64) throws -> Int
    /// Records an item (and its score) in one transaction, dropping its claim; recording the same content
    /// again is a no-op, different content an error.
    @discardableResult func recordItem(run: Int64, _ item: NewItem, score: ItemScore?) throws -> Int64
    func recordScore(run: Int64, itemKey: String, _ score: ItemScore) throws
    func items(run: Int64) throws -> [StoredItem]

    // MARK: Metrics
    @discardableResult func finishRun(_ id: Int64, status: RunStatus, metrics: RunMetricsFunction) throws -> [String: Double]
    func metrics(run: Int64) throws -> [String: Double]

    // MARK: Attention
    func recordAttention(run: Int64, itemKey: String, _ attention: StoredAttention) throws
    func attention(run: Int64, itemKey: String) throws -> StoredAttention?
    func itemsLackingAttention(run: Int64) throws -> Set<String>
    func itemsWithAttention(run: Int64) throws -> [String]

    // MARK: Claims
    /// Claims, in one transaction, every candidate that is neither recorded nor claimed by another worker
    /// under a live lease (an expired claim is taken over), until `lease` seconds from now. Returns the
    /// claimed items in candidate order.
    func claimItems(_ candidates: [ItemRef], worker: String, lease: TimeInterval) throws -> [ItemRef]
    /// Extends every claim `worker` holds to `lease` seconds from now; returns how many it holds.
    @discardableResult func renewClaims(worker: String, lease: TimeInterval) throws -> Int
    /// Gives back every claim `worker` still holds (a worker that stops early).
    func releaseClaims(worker: String) throws
    /// Items stored per run and live claims on them, over all workers.
    func workProgress(runs: [Int64]) throws -> WorkProgress

    // MARK: Moving data
    /// Merges the runs of other run databases into this one (see `SQLiteRunStore.merge(from:metrics:)`).
    @discardableResult func merge(from inputs: [String], metrics: RunMetricsFunction) throws -> MergeOutcome
}

extension RunRepository {
    public func runs() throws -> [RunRecord] { try runs(RunFilter()) }
    public func summaries() throws -> [RunSummary] { try summaries(RunFilter()) }
    @discardableResult
    public func recordItem(run: Int64, _ item: NewItem) throws -> Int64 { try recordItem(run: run, item, score: nil) }
    @discardableResult
    public func finishRun(_ id: Int64, metrics: RunMetricsFunction) throws -> [String: Double] {
        try finishRun(id, status: .complete, metrics: metrics)
    }
}

/// Opening run stores by location: what `--db` and `MIRAGE_DB` name.
public enum RunStores {
    /// The default database, relative to the current directory.
    public static let defaultPath = "Results/mirage.sqlite"
    /// The environment variable that names the store when `--db` is not given.
    public static let environmentVariable = "MIRAGE_DB"

    /// `--db` when given, else `MIRAGE_DB`, else the default file.
    public static func location(_ option: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let option, !option.isEmpty { return option }
        if let env = environment[environmentVariable], !env.isEmpty { return env }
        return defaultPath
    }

    /// Opens (creating and migrating when `create`) the store at `location` for reading and writing. `note` receives
    /// what the store reports while it works, one line each (a PostgreSQL store's lost connection being opened
    /// again); the default writes it to standard error, `mirage run` passes its progress's `note`.
    public static func open(_ location: String, create: Bool = true,
                            note: @escaping @Sendable (String) -> Void = RunStores.noteOnStandardError) throws -> any RunRepository {
        if isServerURL(location) { return try PostgresRunStore(url: location, create: create, note: note) }
        return try SQLiteRunStore(path: location, create: create)
    }

    /// Opens an existing store for a command that only reads (no migration, nothing written). `warn` receives the
    /// store's warnings and notes.
    public static func openForReading(_ location: String, warn: @escaping @Sendable (String) -> Void = { _ in }) throws -> any RunRepository {
        if isServerURL(location) { return try PostgresRunStore(readingOnly: location, note: warn) }
        return try SQLiteRunStore(readingOnly: location, warn: warn)
    }

    /// A note as its own line on standard error.
    public static let noteOnStandardError: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }

    /// True when `location` names a database server rather than a file.
    public static func isServerURL(_ location: String) -> Bool {
        let lower = location.lowercased()
        return lower.hasPrefix("postgres://") || lower.hasPrefix("postgresql://")
    }

    /// A location with any password in it replaced by `***` (for messages).
    /// Parsed by hand: a Unix socket folder written as the host (`%2Fvar%2Frun...`) is not a host URLComponents accepts.
    public static func redacted(_ location: String) -> String {
        guard isServerURL(location), let scheme = location.range(of: "://") else { return location }
        var text = location
        let authorityEnd = text[scheme.upperBound...].firstIndex { $0 == "/" || $0 == "?" } ?? text.endIndex
        if let at = text[scheme.upperBound..<authorityEnd].lastIndex(of: "@"),
           let colon = text[scheme.upperBound..<at].firstIndex(of: ":") {
            text.replaceSubrange(text.index(after: colon)..<at, with: "***")
        }
        if let query = text.firstIndex(of: "?") {
            let parameters = text[text.index(after: query)...].split(separator: "&", omittingEmptySubsequences: false).map { pair in
                pair.lowercased().hasPrefix("password=") ? "password=***" : String(pair)
            }
            text = String(text[...query]) + parameters.joined(separator: "&")
        }
        return text
    }
}
