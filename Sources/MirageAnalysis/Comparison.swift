import Foundation
import MirageMetrics
import MirageRunner
import MirageStore

/// A column group of the comparison: CHAIR, or POPE on one question file/split, or the POPE average.
public struct ComparisonColumn: Codable, Hashable, Sendable {
    public enum Kind: String, Codable, Sendable { case chair, pope, popeAverage = "pope_average" }
    public var key: String
    public var kind: Kind
    public var title: String
    /// The protocol every run in this column shares (nil for the average, or with mixed protocols allowed).
    public var protocolHash: String?
}

/// One method (model + decoder) and its runs, one per column.
public struct ComparisonRow: Codable, Hashable, Sendable {
    public var title: String
    public var model: String
    public var decoder: String
    public var isBaseline: Bool
    /// Column key → run id.
    public var runs: [String: Int64]
    /// Column key → metric → value (fractions; NaN where undefined).
    public var metrics: [String: [String: Double]]
    /// Column key → metric → this row minus the baseline row (only with a baseline).
    public var deltas: [String: [String: Double]]
    /// CHAIR column: 95% bootstrap intervals of the CHAIR_S/CHAIR_I deltas over shared images.
    public var intervals: [String: [String: BootstrapInterval]]
    public var sharedImages: [String: Int]
    /// POPE columns: McNemar's test against the baseline.
    public var mcnemar: [String: McNemarResult]
}

public struct Comparison: Codable, Hashable, Sendable {
    public var columns: [ComparisonColumn]
    public var rows: [ComparisonRow]
    public var baselineRun: Int64?
    public var bootstrapSamples: Int
    public var bootstrapSeed: UInt64
    public var notes: [String]

    public static let chairMetrics = ["chair_s", "chair_i", "recall", "len", "object_f1"]
    public static let popeMetrics = ["accuracy", "precision", "recall", "f1", "yes_ratio"]
    public static let popeAverageMetrics = ["accuracy", "f1"]
}

public struct ComparisonOptions: Sendable {
    public var baseline: Int64?
    public var allowMixedProtocols = false
    /// Put runs that lack some of their expected items beside complete runs (with a note) instead of refusing.
    public var allowPartial = false
    public var bootstrapSamples = 2000
    public var seed: UInt64 = 0
    public init(baseline: Int64? = nil, allowMixedProtocols: Bool = false, allowPartial: Bool = false,
                bootstrapSamples: Int = 2000, seed: UInt64 = 0) {
        self.baseline = baseline; self.allowMixedProtocols = allowMixedProtocols; self.allowPartial = allowPartial
        self.bootstrapSamples = bootstrapSamples; self.seed = seed
    }
}

public enum CompareError: Error, CustomStringConvertible, Equatable {
    case noRuns
    case mixedProtocols(column: String, first: Int64, other: Int64, differences: [String])
    case baselineNotSelected(Int64)
    case unscored(Int64)
    /// Runs that lack expected items (`partial`) selected together with complete ones (`complete`).
    case partialRuns(partial: [PartialRun], complete: [Int64])

    public var description: String {
        switch self {
        case .noRuns:
            return "no runs selected. Name runs by id or label, or select them with --protocol/--model; "
                + "`mirage runs list` shows what is stored."
        case let .mixedProtocols(column, first, other, differences):
            return "runs \(first) and \(other) were evaluated under different protocols, so their \(column) numbers "
                + "are not comparable (\(differences.joined(separator: "; "))). Select runs of one protocol "
                + "(--protocol), or pass --allow-mixed-protocols to show them side by side anyway."
        case let .baselineNotSelected(id):
            return "the baseline run \(id) is not among the compared runs; add it to the selection."
        case let .partialRuns(partial, complete):
            return "\(partial.map(\.description).joined(separator: "; ")) \(partial.count == 1 ? "is" : "are") partial, "
                + "while run\(complete.count == 1 ? "" : "s") \(complete.map(String.init).joined(separator: ", ")) "
                + "\(complete.count == 1 ? "is" : "are") complete: their numbers cover different items and are not comparable. "
                + "Finish the partial runs (rerun `mirage run` to resume; import the complete answer file), leave them out, "
                + "or pass --allow-partial to show them side by side anyway."
        case let .unscored(id):
            return "run \(id) has no scored items yet. Finish or resume it (`mirage import` resumes an import) "
                + "before comparing."
        }
    }
}

/// A run with fewer stored items than it expects (an interrupted run, an answer file covering part of its
/// question file).
public struct PartialRun: Hashable, Sendable, CustomStringConvertible {
    public var run: Int64
    public var label: String?
    public var stored: Int
    public var expected: Int
    public var missing: Int { expected - stored }
    public var description: String {
        "run \(run)\(label.map { " (\($0))" } ?? "") has \(stored) of \(expected) items (\(missing) missing)"
    }
}

/// Builds comparison tables from stored runs.
public struct ComparisonBuilder {
    public let store: any RunRepository
    public init(store: any RunRepository) { self.store = store }

    private struct Loaded {
        var run: RunRecord
        var items: [StoredItem]
        var metrics: [String: Double]
        var column: String
    }

    public func compare(runs: [RunRecord], options: ComparisonOptions = ComparisonOptions()) throws -> Comparison {
        guard !runs.isEmpty else { throw CompareError.noRuns }
        var seen = Set<Int64>()
        let unique = runs.filter { seen.insert($0.id).inserted }
        if let b = options.baseline, !seen.contains(b) { throw CompareError.baselineNotSelected(b) }

        // Columns, in order of first appearance; CHAIR first.
        var loaded: [Loaded] = []
        var columns: [ComparisonColumn] = []
        for run in unique {
            let items = try store.items(run: run.id)
            guard items.contains(where: { $0.score != nil }) else { throw CompareError.unscored(run.id) }
            let p = run.protocolRecord.evalProtocol
            let key: String, title: String
            switch p.task {
            case .chair:
                key = "chair"; title = "CHAIR"
            case .pope:
                let name = p.split ?? p.questionFile ?? run.protocolRecord.display
                key = "pope/" + name; title = "POPE " + name
            }
            var metrics = try store.metrics(run: run.id)
            if metrics.isEmpty { metrics = RunEvaluation.metrics(run: run, items: items) }
            loaded.append(Loaded(run: run, items: items, metrics: metrics, column: key))
            if let existing = columns.first(where: { $0.key == key }) {
                if existing.protocolHash != nil && existing.protocolHash != run.protocolRecord.hash {
                    let first = loaded.first { $0.column == key }!.run
                    if !options.allowMixedProtocols {
                        throw CompareError.mixedProtocols(
                            column: title, first: first.id, other: run.id,
                            differences: run.protocolRecord.evalProtocol.differences(from: first.protocolRecord.evalProtocol))
                    }
                    columns[columns.firstIndex(of: existing)!].protocolHash = nil
                }
            } else {
                columns.append(ComparisonColumn(key: key, kind: p.task == .chair ? .chair : .pope, title: title,
                                                protocolHash: run.protocolRecord.hash))
            }
        }
        let partial = loaded.compactMap { l -> PartialRun? in
            guard let expected = l.run.expectedItems, l.items.count < expected else { return nil }
            return PartialRun(run: l.run.id, label: l.run.label, stored: l.items.count, expected: expected)
        }
        let complete = loaded.map(\.run.id).filter { id in !partial.contains { $0.run == id } }
        if !partial.isEmpty && !complete.isEmpty && !options.allowPartial {
            throw CompareError.partialRuns(partial: partial, complete: complete)
        }

        // CHAIR first, then POPE splits in the paper's order (random, popular, adversarial), then the rest.
        let splitOrder = ["pope/random", "pope/popular", "pope/adversarial"]
        func rank(_ c: ComparisonColumn) -> Int {
            c.kind == .chair ? 0 : splitOrder.firstIndex(of: c.key).map { $0 + 1 } ?? splitOrder.count + 1
        }
        columns = columns.enumerated().sorted { (rank($0.element), $0.offset) < (rank($1.element), $1.offset) }.map(\.element)
        let popeColumns = columns.filter { $0.kind == .pope }
        if popeColumns.count > 1 {
            columns.append(ComparisonColumn(key: "pope/average", kind: .popeAverage, title: "POPE average", protocolHash: nil))
        }

        // Rows: one per (model, decoder, seed); a second run for the same column opens a new row.
        var rowRuns: [[Loaded]] = []
        for l in loaded {
            if let i = rowRuns.firstIndex(where: { row in
                let r = row[0].run
                return r.model.name == l.run.model.name && r.decoder == l.run.decoder && r.seed == l.run.seed
                    && !row.contains { $0.column == l.column }
            }) {
                rowRuns[i].append(l)
            } else {
                rowRuns.append([l])
            }
        }
        var titles = rowRuns.map { row -> String in
            let r = row[0].run
            if row.count == 1, let label = r.label { return label }
            return "\(r.model.name) \(r.decoder.display)"
        }
        for (i, t) in titles.enumerated() where titles.filter({ $0 == t }).count > 1 {
            titles[i] = t + " (run \(rowRuns[i].map { String($0.run.id) }.joined(separator: ",")))"
        }

        var rows: [ComparisonRow] = rowRuns.enumerated().map { i, row in
            var metrics: [String: [String: Double]] = [:]
            for l in row { metrics[l.column] = l.metrics }
            let splits = popeColumns.compactMap { metrics[$0.key] }
            if popeColumns.count > 1, !splits.isEmpty {
                var avg: [String: Double] = [:]
                for m in Comparison.popeMetrics { avg[m] = splits.map { $0[m] ?? .nan }.reduce(0, +) / Double(splits.count) }
                avg["splits"] = Double(splits.count)
                metrics["pope/average"] = avg
            }
            return ComparisonRow(title: titles[i], model: row[0].run.model.name, decoder: row[0].run.decoder.display,
                                 isBaseline: row.contains { $0.run.id == options.baseline },
                                 runs: Dictionary(uniqueKeysWithValues: row.map { ($0.column, $0.run.id) }),
                                 metrics: metrics, deltas: [:], intervals: [:], sharedImages: [:], mcnemar: [:])
        }

        var notes: [String] = partial.map { "partial: \($0)" }
        if let baselineIndex = rows.firstIndex(where: \.isBaseline) {
            let base = rows[baselineIndex], baseItems = rowRuns[baselineIndex]
            for (r, row) in rows.enumerated() where r != baselineIndex {
                for column in columns {
                    guard let mine = row.metrics[column.key], let theirs = base.metrics[column.key] else { continue }
                    var d: [String: Double] = [:]
                    for (name, value) in mine where name != "items" && name != "splits" && name != "unknown" && name != "failed_items" {
                        if let b = theirs[name] { d[name] = value - b }
                    }
                    rows[r].deltas[column.key] = d
                    guard let myRun = rowRuns[r].first(where: { $0.column == column.key }),
                          let baseRun = baseItems.first(where: { $0.column == column.key }) else { continue }
                    switch column.kind {
                    case .chair:
                        let result = PairedBootstrap.chairDelta(method: Self.chairByImage(myRun.items),
                                                                baseline: Self.chairByImage(baseRun.items),
                                                                samples: options.bootstrapSamples, seed: options.seed)
                        rows[r].sharedImages[column.key] = result.sharedImages
                        var iv: [String: BootstrapInterval] = [:]
                        iv["chair_s"] = result.chairS
                        iv["chair_i"] = result.chairI
                        rows[r].intervals[column.key] = iv
                        let counts = (Int(myRun.metrics["items"] ?? 0), Int(baseRun.metrics["items"] ?? 0))
                        if result.sharedImages < max(counts.0, counts.1) {
                            notes.append("\(row.title): the CHAIR interval uses the \(result.sharedImages) images shared with the baseline.")
                        }
                    case .pope:
                        rows[r].mcnemar[column.key] = Self.mcnemar(method: myRun.items, baseline: baseRun.items)
                    case .popeAverage:
                        break
                    }
                }
            }
            var note = "Δ = row − baseline (\(base.title))."
            if columns.contains(where: { $0.kind == .chair }) {
                note += " CHAIR 95% CI: paired bootstrap over shared images, \(options.bootstrapSamples) resamples, "
                    + "seed \(options.seed), percentile interval."
            }
            if columns.contains(where: { $0.kind == .pope }) {
                note += " POPE p: McNemar's test on the questions both runs answered."
            }
            notes.append(note)
        }
        return Comparison(columns: columns, rows: rows, baselineRun: options.baseline,
                          bootstrapSamples: options.bootstrapSamples, bootstrapSeed: options.seed, notes: notes)
    }

    /// CHAIR totals per image id (repeated captions of one image are summed).
    static func chairByImage(_ items: [StoredItem]) -> [Int: ChairTotals] {
        ChairTotals.byImage(items.map { ($0.item.imageID, $0.score) })
    }

    /// Pairs POPE answers by question id (item key when there is none).
    static func mcnemar(method: [StoredItem], baseline: [StoredItem]) -> McNemarResult {
        func correctness(_ items: [StoredItem]) -> [String: Bool] {
            var out: [String: Bool] = [:]
            for item in items {
                guard case .pope(let s)? = item.score else { continue }
                out[item.item.questionID.map(String.init) ?? item.item.key] = s.isCorrect
            }
            return out
        }
        let m = correctness(method), b = correctness(baseline)
        var pairs = 0, baseOnly = 0, methodOnly = 0
        for (key, mc) in m {
            guard let bc = b[key] else { continue }
            pairs += 1
            if bc && !mc { baseOnly += 1 }
            if mc && !bc { methodOnly += 1 }
        }
        return McNemarResult(pairs: pairs, test: McNemarTest(onlyFirstCorrect: baseOnly, onlySecondCorrect: methodOnly))
    }
}
