import Foundation
import GRDB
import MirageData
import MirageMetrics

/// Reading a result row by column name, whichever backend produced it, so both stores turn rows into
/// records the same way (`StoredRows`).
protocol ColumnReader {
    func string(_ name: String) throws -> String?
    func int64(_ name: String) throws -> Int64?
    func double(_ name: String) throws -> Double?
    /// A free-text column read exactly (see `ExactText`).
    func exact(_ name: String) throws -> String?
}

extension ColumnReader {
    func int(_ name: String) throws -> Int? { try int64(name).map { Int($0) } }
    func required<T>(_ value: T?, _ name: String) throws -> T {
        guard let value else { throw StoreError.invalid("the store has no value in the column '\(name)', which Mirage always fills; was it written by something else?") }
        return value
    }
}

extension SQLRow: ColumnReader {}

/// A GRDB row as a `ColumnReader`.
struct GRDBColumns: ColumnReader {
    let row: Row
    init(_ row: Row) { self.row = row }
    func string(_ name: String) throws -> String? { row[name] }
    func int64(_ name: String) throws -> Int64? { row[name] }
    func double(_ name: String) throws -> Double? { row[name] }
    func exact(_ name: String) throws -> String? { ExactText.string(row[name]) }
}

/// The store's clock for `created_at`/`updated_at`/`finished_at`: ISO 8601 UTC with milliseconds,
/// `2026-12-07T23:31:32.125Z` (what `ISO8601DateFormatter` writes with `.withInternetDateTime` and
/// `.withFractionalSeconds`). Formatted by hand: a new `ISO8601DateFormatter` per call cost more than the rest of
/// recording an item (a profile of `mirage run` on a tiny model: 18 % of the process's CPU, inside the write
/// transaction, so two workers on one SQLite file queued behind it).
enum StoreClock {
    static func now() -> String { string(Date()) }

    static func string(_ date: Date) -> String {
        let t = date.timeIntervalSince1970
        let whole = t.rounded(.down)
        var seconds = time_t(whole)
        let millis = min(999, Int(((t - whole) * 1000).rounded(.down)))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func digits(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
        }
        return digits(Int(parts.tm_year) + 1900, 4) + "-" + digits(Int(parts.tm_mon) + 1, 2) + "-" + digits(Int(parts.tm_mday), 2)
            + "T" + digits(Int(parts.tm_hour), 2) + ":" + digits(Int(parts.tm_min), 2) + ":" + digits(Int(parts.tm_sec), 2)
            + "." + digits(millis, 3) + "Z"
    }
}

/// Records from rows, and the column values of a score, shared by the SQLite and PostgreSQL stores.
enum StoredRows {
    /// Runs joined with their protocol (`p_*`), model (`m_*`) and decoder (`d_*`): the rows `runRecord` reads.
    static let runSelect = """
        SELECT r.*, p.hash AS p_hash, p.name AS p_name, p.canonical_json AS p_json,
               m.name AS m_name, m.architecture AS m_arch, m.fingerprint AS m_fp,
               d.name AS d_name, d.parameters AS d_params
        FROM runs r JOIN protocols p ON p.id = r.protocol_id JOIN models m ON m.id = r.model_id
             JOIN decoders d ON d.id = r.decoder_id
        """

    /// A run from a row of `runSelect` (runs joined with protocols `p_*`, models `m_*` and decoders `d_*`).
    static func runRecord(_ row: some ColumnReader) throws -> RunRecord {
        let json = try row.required(row.string("p_json"), "canonical_json")
        let evalProtocol = try JSONDecoder().decode(EvalProtocol.self, from: Data(json.utf8))
        return RunRecord(
            id: try row.required(row.int64("id"), "id"),
            protocolRecord: ProtocolRecord(id: try row.required(row.int64("protocol_id"), "protocol_id"),
                                           hash: try row.required(row.string("p_hash"), "hash"), name: try row.string("p_name"),
                                           evalProtocol: evalProtocol),
            model: ModelSpec(name: try row.required(row.string("m_name"), "name"), architecture: try row.string("m_arch") ?? "",
                             fingerprint: try row.string("m_fp") ?? ""),
            decoder: DecoderSpec(name: try row.required(row.string("d_name"), "name"), parametersJSON: try row.string("d_params") ?? "{}"),
            details: RunDetails(seed: try row.int64("seed"), label: try row.string("label"), sourceHash: try row.string("source_hash"),
                                sourcePath: try row.string("source_path"), expectedItems: try row.int("expected_items"),
                                mirageVersion: try row.string("mirage_version") ?? "", gitRevision: try row.string("git_revision"),
                                host: try row.string("host") ?? ""),
            createdAt: try row.string("created_at") ?? "",
            updatedAt: try row.string("updated_at") ?? "", finishedAt: try row.string("finished_at"),
            status: RunStatus(rawValue: try row.string("status") ?? "") ?? .failed)
    }

    /// An item with its score from a row of the items query (free text as `prompt_exact`, `output_exact`,
    /// `failure_exact`; score columns from a left join with `item_scores`).
    static func storedItem(_ row: some ColumnReader) throws -> StoredItem {
        let decoder = JSONDecoder()
        let tokens = try row.string("output_tokens")
        let item = NewItem(key: try row.required(row.string("item_key"), "item_key"), ordinal: try row.int("ordinal") ?? 0,
                           imageID: try row.int("image_id"), questionID: try row.int("question_id"),
                           prompt: try row.exact("prompt_exact"), outputText: try row.exact("output_exact") ?? "",
                           outputTokens: try tokens.map { try decoder.decode([Int].self, from: Data($0.utf8)) },
                           prefillSeconds: try row.double("prefill_seconds"), decodeSeconds: try row.double("decode_seconds"),
                           forwardPasses: try row.int("forward_passes"), seed: try row.int64("seed"),
                           failureReason: try row.exact("failure_exact"))
        var score: ItemScore?
        switch try row.string("kind") {
        case "chair":
            let mentions = try row.string("mentions") ?? "[]", gt = try row.string("ground_truth") ?? "[]"
            score = .chair(ChairItemScore(mentions: try decoder.decode([ObjectMention].self, from: Data(mentions.utf8)),
                                          groundTruth: try decoder.decode([String].self, from: Data(gt.utf8)),
                                          wordCount: try row.int("word_count") ?? 0))
        case "pope":
            score = .pope(PopeItemScore(label: POPELabel(rawValue: try row.string("label") ?? "") ?? .no,
                                        parsed: POPEPrediction(rawValue: try row.string("parsed_answer") ?? "") ?? .unknown))
        default:
            score = nil
        }
        return StoredItem(id: try row.required(row.int64("id"), "id"), item: item, score: score,
                          createdAt: try row.string("created_at") ?? "")
    }

    /// The `item_scores` columns of a score (besides item_id and run_id), in the order
    /// kind, mentions, ground_truth, mention_count, hallucinated_count, word_count, label, parsed_answer.
    static func scoreColumns(_ score: ItemScore) -> (kind: String, mentions: String?, groundTruth: String?, mentionCount: Int?,
                                                    hallucinatedCount: Int?, wordCount: Int?, label: String?, parsed: String?) {
        switch score {
        case .chair(let s):
            return ("chair", CanonicalJSON.string(s.mentions), CanonicalJSON.string(s.groundTruth), s.mentions.count,
                    s.hallucinatedCount, s.wordCount, nil, nil)
        case .pope(let s):
            return ("pope", nil, nil, nil, nil, nil, s.label.rawValue, s.parsed.rawValue)
        }
    }

    /// The WHERE conditions of a `RunFilter` over `runSelect`'s aliases, with their text values for the `?`s.
    static func conditions(_ filter: RunFilter) -> (clauses: [String], values: [String]) {
        var clauses: [String] = [], values: [String] = []
        if let ref = filter.protocolRef {
            clauses.append("(CAST(p.id AS TEXT) = ? OR p.name = ? OR p.hash LIKE ?)")
            values += [ref, ref, ref + "%"]
        }
        if let model = filter.model { clauses.append("m.name = ?"); values.append(model) }
        if let decoder = filter.decoder { clauses.append("d.name = ?"); values.append(decoder) }
        if let task = filter.task { clauses.append("p.task = ?"); values.append(task.rawValue) }
        return (clauses, values)
    }

    /// The attention check both stores make before writing.
    static func checkAttention(_ attention: StoredAttention, itemKey: String) throws {
        guard attention.tokens.count == attention.n, attention.labels.count == attention.n else {
            throw StoreError.invalid("attention for item '\(itemKey)' has \(attention.tokens.count) tokens and "
                + "\(attention.labels.count) labels for \(attention.n) rows; they must all agree")
        }
    }

    /// The error for an item recorded again with another output.
    static func differentOutput(run: Int64, key: String) -> StoreError {
        StoreError.invalid("run \(run) already has a different output for item '\(key)'; "
            + "delete the run (`mirage runs delete \(run)`) to record it again")
    }
}
