import Foundation
import MirageMetrics
import MirageRunner
import MirageStore

/// `mirage check`'s verdicts: did a decoder change alter outputs (`exact`), or make a metric significantly worse
/// (`metric`)? Both compare a run with a baseline, each side a stored run or a golden file (`GoldenRun`).
public enum RegressionGate {
    /// The outcome of a check, ordered by severity (a report's status is the worst of its parts).
    public enum Status: String, Codable, Sendable, Comparable {
        case pass, regression
        case notComparable = "not_comparable"

        /// The process exit code `mirage check` documents (docs/check.md): 0, 1, 2.
        public var exitCode: Int32 {
            switch self {
            case .pass: return 0
            case .regression: return 1
            case .notComparable: return 2
            }
        }
        public static func < (a: Status, b: Status) -> Bool { a.exitCode < b.exitCode }
    }

    // MARK: Exact

    /// One item whose output differs from the baseline's.
    public struct ItemDifference: Codable, Hashable, Sendable {
        public var item: String
        public var imageID: Int?
        public var questionID: Int?
        /// The first token index where the two outputs differ (the shorter length when one is a prefix of the
        /// other); nil when either side has no tokens (imported text, a failed item) and the texts were compared.
        public var firstDifferentToken: Int?
        public var baselineTokenCount: Int?
        public var runTokenCount: Int?
        /// Both texts, clipped around their first differing character.
        public var baselineText: String
        public var runText: String
        /// Set when one side failed instead of producing an output.
        public var failure: String?
    }

    public struct ExactReport: Codable, Hashable, Sendable {
        public var baseline: String
        public var run: String
        public var status: Status
        /// Items compared (present on both sides) and how many were identical.
        public var compared: Int
        public var identical: Int
        public var differences: [ItemDifference]
        /// Why the runs are not comparable (empty unless `status == .notComparable`).
        public var reasons: [String]
        /// Things the reader should know that did not decide the status (parameters allowed to differ, text-only
        /// comparison of imported outputs).
        public var notes: [String]
    }

    /// Compares every item's tokens (text where either side has none). Not comparable when the model weights
    /// or precision, the protocol's generation identity (images, prompt, template, lengths, questions — not the
    /// scoring resources), the decoder, its parameters (unless `allowParameterChange`) or the seed differ, or
    /// when either side has items the other lacks.
    public static func exact(run: GoldenRun, baseline: GoldenRun, allowParameterChange: Bool = false) -> ExactReport {
        var report = ExactReport(baseline: baseline.source, run: run.source, status: .pass, compared: 0, identical: 0,
                                 differences: [], reasons: [], notes: [])
        let a = baseline.identity, b = run.identity
        if a.model.fingerprint != b.model.fingerprint {
            if let routeA = FastRoute.split(fingerprint: a.model.fingerprint),
               let routeB = FastRoute.split(fingerprint: b.model.fingerprint), routeA.model == routeB.model {
                report.reasons.append("model: the same weights (\(a.model.name)) and precision (fast) but another fast route, the dot products `--precision fast` took on the computing CPU: baseline \(Self.describe(routeA.route)), run \(Self.describe(routeB.route)); fast outputs agree only on the same route: check on a CPU that takes the baseline's route, or regenerate the golden run on this one (`mirage check --write-golden`)")
            } else if a.model.fingerprint.split(separator: "+").first == b.model.fingerprint.split(separator: "+").first {
                report.reasons.append("model: the same weights (\(a.model.name)) but another precision or quantization: baseline \(Self.suffix(a.model.fingerprint)), run \(Self.suffix(b.model.fingerprint)); run with the baseline's --precision/--quantize")
            } else {
                report.reasons.append("model: other weights: baseline \(a.model.name) (\(Self.short(a.model.fingerprint))), run \(b.model.name) (\(Self.short(b.model.fingerprint))); if the model change is intended, regenerate the golden runs from the new model")
            }
        }
        if a.model.fingerprint.isEmpty && b.model.fingerprint.isEmpty && a.model.name != b.model.name {
            report.reasons.append("model: baseline \(a.model.name), run \(b.model.name) (imported outputs carry no weight fingerprint, so the name is the model's identity); import both under the same --model name if they are one model")
        }
        let protocolDifferences = b.evalProtocol.generationIdentity.differences(from: a.evalProtocol.generationIdentity)
        if !protocolDifferences.isEmpty {
            report.reasons.append("protocol: run vs baseline: " + protocolDifferences.joined(separator: "; "))
        }
        if a.decoder.name != b.decoder.name {
            report.reasons.append("decoder: baseline \(a.decoder.display), run \(b.decoder.display); check each decoder's run against its own golden run")
        } else {
            let changed = parameterChanges(baseline: a.decoder.parametersJSON, run: b.decoder.parametersJSON)
            if !changed.isEmpty {
                if allowParameterChange {
                    report.notes.append("decoder parameters differ (allowed by --allow-parameter-change): " + changed.joined(separator: ", "))
                } else {
                    report.reasons.append("decoder parameters differ: " + changed.joined(separator: ", ")
                                          + "; to see which items a parameter change alters, add --allow-parameter-change")
                }
            }
        }
        if a.seed != b.seed {
            report.reasons.append("seed: baseline \(a.seed.map(String.init) ?? "none"), run \(b.seed.map(String.init) ?? "none")")
        }
        let baseItems = Dictionary(baseline.items.map { ($0.key, $0) }, uniquingKeysWith: { x, _ in x })
        let runKeys = Set(run.items.map(\.key))
        let missing = baseline.items.map(\.key).filter { !runKeys.contains($0) }
        let extra = run.items.map(\.key).filter { baseItems[$0] == nil }
        if !missing.isEmpty {
            report.reasons.append("the run lacks \(missing.count) of the baseline's \(baseline.items.count) items (\(Self.list(missing))); finish the run (run the same command again to resume) or check a complete one")
        }
        if !extra.isEmpty {
            report.reasons.append("the run has \(extra.count) items the baseline lacks (\(Self.list(extra))); the baseline covers other items: regenerate it or run the baseline's protocol")
        }
        var textOnly = 0
        for item in run.items {
            guard let base = baseItems[item.key] else { continue }
            report.compared += 1
            if (base.tokens == nil || item.tokens == nil) && base.failure == nil && item.failure == nil { textOnly += 1 }
            if let difference = difference(baseline: base, run: item) { report.differences.append(difference) }
            else { report.identical += 1 }
        }
        if textOnly > 0 {
            report.notes.append("\(textOnly) items were compared by text: the \(textOnly == report.compared ? "outputs carry" : "items carry") no token ids (imported outputs)")
        }
        report.status = !report.reasons.isEmpty ? .notComparable : report.differences.isEmpty ? .pass : .regression
        return report
    }

    /// nil when the outputs are equal.
    static func difference(baseline: GoldenRun.Item, run: GoldenRun.Item) -> ItemDifference? {
        var d = ItemDifference(item: run.key, imageID: run.imageID ?? baseline.imageID, questionID: run.questionID ?? baseline.questionID,
                               firstDifferentToken: nil, baselineTokenCount: baseline.tokens?.count, runTokenCount: run.tokens?.count,
                               baselineText: "", runText: "", failure: nil)
        if baseline.failure != nil || run.failure != nil {
            guard baseline.failure != run.failure else { return nil }
            d.failure = run.failure.map { "the run's item failed: \($0)" } ?? "the baseline's item failed: \(baseline.failure!)"
        } else if let x = baseline.tokens, let y = run.tokens {
            guard x != y else { return nil }
            d.firstDifferentToken = firstDifference(x, y)
        } else {
            guard baseline.text.unicodeScalars.elementsEqual(run.text.unicodeScalars) else {
                (d.baselineText, d.runText) = clipped(baseline.text, run.text)
                return d
            }
            return nil
        }
        (d.baselineText, d.runText) = clipped(baseline.text, run.text)
        return d
    }

    /// Both texts from a little before their first differing character, at most `width` characters each,
    /// "…" marking a cut.
    public static func clipped(_ a: String, _ b: String, width: Int = 72, before: Int = 16) -> (String, String) {
        let x = Array(a), y = Array(b)
        let first = firstDifference(x, y)
        let start = max(0, first - before)
        func clip(_ c: [Character]) -> String {
            let end = min(c.count, start + width)
            let body = start < end ? String(c[start..<end]) : ""
            return (start > 0 ? "…" : "") + body + (end < c.count ? "…" : "")
        }
        return (clip(x), clip(y))
    }

    /// The first index where the two lists differ; the shorter length when one is a prefix of the other.
    static func firstDifference<T: Equatable>(_ x: [T], _ y: [T]) -> Int {
        (0..<min(x.count, y.count)).first { x[$0] != y[$0] } ?? min(x.count, y.count)
    }

    /// `name: baseline → run` for every parameter whose value differs (canonical JSON of both sides).
    static func parameterChanges(baseline: String, run: String) -> [String] {
        func dict(_ json: String) -> [String: String] {
            guard let value = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return [:] }
            return value.mapValues { CanonicalJSON.reserialized($0) }
        }
        let x = dict(baseline), y = dict(run)
        return Set(x.keys).union(y.keys).sorted().compactMap { key in
            x[key] == y[key] ? nil : "\(key) \(x[key] ?? "unset") → \(y[key] ?? "unset")"
        }
    }

    static func short(_ fingerprint: String) -> String {
        let parts = fingerprint.split(separator: "+", maxSplits: 1)
        guard let digest = parts.first, !digest.isEmpty else { return "no fingerprint" }
        return String(digest.prefix(12)) + "…" + (parts.count > 1 ? "+" + parts[1] : "")
    }

    /// A fast run's route as the gate names it (nil: the standard route).
    static func describe(_ route: FastRoute?) -> String {
        route.map { "\($0.description) (\($0.keyComponent))" } ?? "the standard route (\(FastRoute.standardDescription))"
    }

    static func suffix(_ fingerprint: String) -> String {
        let parts = fingerprint.split(separator: "+").dropFirst()
        return parts.isEmpty ? "unset" : parts.joined(separator: "+")
    }

    static func list(_ keys: [String], limit: Int = 5) -> String {
        keys.prefix(limit).joined(separator: ", ") + (keys.count > limit ? ", …" : "")
    }
}

// MARK: - Metric

extension RegressionGate {
    /// A metric `--metric` can gate on: which task it belongs to, which way is better, and how it is computed
    /// from additive totals.
    public enum Metric: String, Codable, Sendable, CaseIterable {
        case chairS = "chair_s", chairI = "chair_i", recall, objectPrecision = "object_precision", objectF1 = "object_f1"
        case popeAccuracy = "pope_accuracy", popePrecision = "pope_precision", popeRecall = "pope_recall", popeF1 = "pope_f1"

        public var task: EvalProtocol.Task {
            switch self {
            case .chairS, .chairI, .recall, .objectPrecision, .objectF1: return .chair
            case .popeAccuracy, .popePrecision, .popeRecall, .popeF1: return .pope
            }
        }
        public var lowerIsBetter: Bool { self == .chairS || self == .chairI }

        func value(_ t: ChairTotals) -> Double {
            switch self {
            case .chairS: return t.chairS
            case .chairI: return t.chairI
            case .recall: return t.recall
            case .objectPrecision: return t.objectPrecision
            case .objectF1: return t.objectF1
            default: return .nan
            }
        }
        func value(_ c: POPEConfusion, parser: POPEAnswerParser) -> Double {
            let m = POPEMetrics(parser: parser, confusion: c)
            switch self {
            case .popeAccuracy: return m.accuracy
            case .popePrecision: return m.precision
            case .popeRecall: return m.recall
            case .popeF1: return m.f1
            default: return .nan
            }
        }
    }

    public struct MetricReport: Codable, Hashable, Sendable {
        public var metric: Metric
        public var baseline: String
        public var run: String
        public var status: Status
        /// Fractions (docs/store.md); the text report prints them ×100 as percentage points.
        public var baselineValue: Double?
        public var runValue: Double?
        /// run − baseline, and its paired bootstrap interval.
        public var difference: Double?
        public var interval: BootstrapInterval?
        public var level: Double
        /// The allowed margin in the worse direction, as a fraction (`--worse-by` / 100).
        public var worseBy: Double
        public var lowerIsBetter: Bool
        /// Resampling units (CHAIR: images, POPE: questions) both sides scored.
        public var units: Int
        public var unitName: String
        public var samples: Int
        public var seed: UInt64
        public var reasons: [String]
    }

    /// Fails (`.regression`) when the whole `level` paired bootstrap interval of (run − baseline) lies beyond
    /// the allowed margin in the worse direction: above `+worseBy` for a lower-is-better metric (CHAIR_S,
    /// CHAIR_I), below `−worseBy` otherwise. Resampling unit: image for CHAIR (captions of one image summed, as
    /// `mirage compare`), question for POPE. Not comparable when the protocols differ (here the scoring resources
    /// count: a metric depends on them), when the metric is not the task's, or when the two sides did not score
    /// the same units.
    public static func metric(_ metric: Metric, run: GoldenRun, baseline: GoldenRun, worseBy: Double, samples: Int = 2000,
                              seed: UInt64 = 0, level: Double = 0.95) -> MetricReport {
        var report = MetricReport(metric: metric, baseline: baseline.source, run: run.source, status: .notComparable,
                                  baselineValue: nil, runValue: nil, difference: nil, interval: nil, level: level,
                                  worseBy: worseBy, lowerIsBetter: metric.lowerIsBetter, units: 0,
                                  unitName: metric.task == .chair ? "images" : "questions", samples: samples, seed: seed,
                                  reasons: [])
        let task = baseline.identity.evalProtocol.task
        if metric.task != task || run.identity.evalProtocol.task != task {
            let fitting = Metric.allCases.filter { $0.task == task }.map(\.rawValue).joined(separator: ", ")
            report.reasons.append("\(metric.rawValue) is a \(metric.task.rawValue.uppercased()) metric but the baseline is a \(task.rawValue.uppercased()) run; for it use one of \(fitting)")
            return report
        }
        let protocolDifferences = run.identity.evalProtocol.differences(from: baseline.identity.evalProtocol)
        if !protocolDifferences.isEmpty {
            report.reasons.append("protocol: run vs baseline: " + protocolDifferences.joined(separator: "; "))
            return report
        }
        switch task {
        case .chair:
            let (m, b) = (chairUnits(run), chairUnits(baseline))
            guard sameUnits(m, b, &report) else { return report }
            let keys = b.keys.sorted()
            fill(&report, method: keys.map { m[$0]! }, baseline: keys.map { b[$0]! }, zero: ChairTotals(), add: +,
                 value: metric.value)
        case .pope:
            let parser = baseline.identity.evalProtocol.answerParser.flatMap(POPEAnswerParser.init(rawValue:)) ?? .opera
            let (m, b) = (popeUnits(run), popeUnits(baseline))
            guard sameUnits(m, b, &report) else { return report }
            let keys = b.keys.sorted()
            fill(&report, method: keys.map { m[$0]! }, baseline: keys.map { b[$0]! }, zero: POPEConfusion(), add: +,
                 value: { metric.value($0, parser: parser) })
        }
        return report
    }

    private static func fill<T>(_ report: inout MetricReport, method: [T], baseline: [T], zero: T, add: (T, T) -> T,
                                value: (T) -> Double) {
        report.units = method.count
        let mv = value(method.reduce(zero, add)), bv = value(baseline.reduce(zero, add))
        report.runValue = mv.isNaN ? nil : mv
        report.baselineValue = bv.isNaN ? nil : bv
        guard !mv.isNaN, !bv.isNaN else {
            report.reasons.append("\(report.metric.rawValue) is undefined on \(mv.isNaN ? "the run" : "the baseline") (a ratio over zero items: e.g. no object mentioned); gate on another metric")
            return
        }
        report.difference = mv - bv
        let replicates = PairedBootstrap.replicates(method: method, baseline: baseline, zero: zero, add: add,
                                                    samples: report.samples, seed: report.seed) { [value(($0)) - value($1)] }
        guard let interval = PairedBootstrap.interval(replicates.first ?? [], level: report.level) else {
            report.reasons.append("every bootstrap resample left \(report.metric.rawValue) undefined; gate on another metric")
            return
        }
        report.interval = interval
        let significantlyWorse = report.lowerIsBetter ? interval.lower > report.worseBy : interval.upper < -report.worseBy
        report.status = significantlyWorse ? .regression : .pass
    }

    private static func sameUnits<K: Hashable & Comparable, V>(_ run: [K: V], _ baseline: [K: V], _ report: inout MetricReport) -> Bool {
        let missing = Set(baseline.keys).subtracting(run.keys), extra = Set(run.keys).subtracting(baseline.keys)
        if !missing.isEmpty || !extra.isEmpty || baseline.isEmpty {
            var reason = "the two sides scored different \(report.unitName)"
            if baseline.isEmpty { reason = "the baseline has no scored \(report.unitName)" }
            if !missing.isEmpty { reason += "; the run lacks \(missing.count) (\(list(missing.sorted().map { "\($0)" })))" }
            if !extra.isEmpty { reason += "; the run has \(extra.count) the baseline lacks (\(list(extra.sorted().map { "\($0)" })))" }
            report.reasons.append(reason + "; compare complete runs of the same protocol")
            return false
        }
        return true
    }

    /// CHAIR totals per image (failed and unscored items left out).
    static func chairUnits(_ run: GoldenRun) -> [Int: ChairTotals] {
        ChairTotals.byImage(run.items.map { ($0.imageID, $0.score) })
    }

    /// POPE confusion per question (question id, else item key).
    static func popeUnits(_ run: GoldenRun) -> [String: POPEConfusion] {
        var out: [String: POPEConfusion] = [:]
        for item in run.items {
            guard case .pope(let s)? = item.score else { continue }
            out[item.questionID.map { String(format: "%09d", $0) } ?? item.key] = POPEConfusion(s)
        }
        return out
    }
}
