import ArgumentParser
import Foundation
import MirageStore
import MirageAnalysis

extension RegressionGate.Metric: ExpressibleByArgument {}

/// `mirage check`: the regression gate for CI (logic in MirageStore's `RegressionGate` and `GoldenRun`).
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Gate a decoder change: fail when a run's outputs differ from a golden run, or a metric got significantly worse.",
        discussion: """
        RUN and BASELINE are each a run in the store (id or label; --db) or a golden JSONL file (a path; written by \
        --write-golden, format in docs/check.md).

        --exact BASELINE compares every item's token ids (the text where a side has none, as in imported \
        outputs) and lists each differing item: its key, the first token position that differs, and both texts \
        clipped around the first difference. The runs must be comparable: the same model weights and precision, \
        the same protocol as far as generation goes (images, prompt, template, max new tokens, questions; the \
        CHAIR vocabulary, ground truth and POPE parser only change scores and are not compared), the same \
        decoder with the same parameters and seed, and the same items. --allow-parameter-change accepts other \
        decoder parameters, to see which items a parameter change alters.

        --metric M --worse-by X fails when the run is significantly worse than the baseline (--baseline, else \
        the --exact baseline): the paired bootstrap 95% interval of (run − baseline) lies entirely beyond X \
        percentage points in the worse direction (CHAIR_S, CHAIR_I: lower is better; the others: higher is \
        better). Resampling unit: image for CHAIR, question for POPE; --bootstrap-samples, --seed. It prints both \
        values, the difference and the interval. Model and decoder may differ here (that is the comparison); the \
        protocol, scoring resources included, may not. Metrics: \(RegressionGate.Metric.allCases.map(\.rawValue).joined(separator: ", ")).

        --write-golden FILE RUN writes RUN (a complete run) as a golden file to commit beside your code.

        Exit codes: 0 pass; 1 regression (outputs differ, or a metric is significantly worse); 2 not \
        comparable (other model, protocol, decoder, seed, or items; the reasons are printed); 64 usage error; \
        65 a malformed golden file, or --write-golden of an incomplete run; 66 a run, file or database not \
        found or unreadable; 73 the golden file cannot be written; 74 any other error reading the store. \
        --json prints one JSON object (status, exit_code, exact, metrics, error) for CI bots.

        Examples:
          mirage check --write-golden ci/greedy.jsonl ci-greedy
          mirage check ci-greedy --exact ci/greedy.jsonl
          mirage check ci-opera --exact ci/opera.jsonl --allow-parameter-change
          mirage check new-opera --baseline ci/opera.jsonl \\
              --metric chair_i --metric chair_s --worse-by 1
          mirage check 7 --exact ci/greedy.jsonl --json > gate.json
        """)

    @OptionGroup var database: DatabaseOptions

    @Argument(help: ArgumentHelp("The run to check: id, label, or a golden JSONL file.", valueName: "run"))
    var target: String?

    @Option(help: ArgumentHelp("Require every item's tokens to equal this baseline's (run id, label, or golden file).", valueName: "baseline"))
    var exact: String?

    @Option(help: ArgumentHelp("The baseline of --metric (default: the --exact baseline).", valueName: "baseline"))
    var baseline: String?

    @Option(parsing: .singleValue, help: ArgumentHelp("A metric that must not get significantly worse (repeatable).", valueName: "metric"))
    var metric: [RegressionGate.Metric] = []

    @Option(help: ArgumentHelp("The allowed worsening of --metric, in percentage points (≥ 0).", valueName: "points"))
    var worseBy: Double?

    @Option(help: "Bootstrap resamples for --metric.") var bootstrapSamples = 2000
    @Option(help: "Seed of the bootstrap.") var seed: UInt64 = 0

    @Flag(help: "With --exact: compare with a baseline of the same decoder under other parameters (the differences are noted).")
    var allowParameterChange = false

    @Option(help: ArgumentHelp("Differing items listed in the text report (all are in --json).", valueName: "n"))
    var maxListed = 20

    @Option(help: ArgumentHelp("Write RUN as a golden JSONL file and exit.", valueName: "file"))
    var writeGolden: String?

    @Flag(help: "Print one JSON object instead of text.") var json = false

    func validate() throws {
        guard target != nil else { throw ValidationError("name the run to check (id, label or golden file); e.g. `mirage check 3 --exact golden.jsonl`") }
        if writeGolden != nil {
            if exact != nil || !metric.isEmpty || baseline != nil {
                throw ValidationError("--write-golden FILE RUN only writes a golden file; check in a second call")
            }
            return
        }
        if exact == nil && metric.isEmpty {
            throw ValidationError("say what to check: --exact BASELINE and/or --metric M --worse-by X (or --write-golden FILE RUN)")
        }
        if !metric.isEmpty {
            guard let worseBy else { throw ValidationError("--metric needs --worse-by X, the allowed worsening in percentage points (0 for none)") }
            if !(worseBy >= 0) || !worseBy.isFinite { throw ValidationError("--worse-by takes percentage points ≥ 0, got \(worseBy)") }
            if baseline == nil && exact == nil { throw ValidationError("--metric needs a baseline: --baseline RUN (or --exact BASELINE)") }
        } else if worseBy != nil || baseline != nil {
            throw ValidationError("--worse-by and --baseline go with --metric")
        }
        if bootstrapSamples < 1 { throw ValidationError("--bootstrap-samples must be at least 1") }
        if maxListed < 0 { throw ValidationError("--max-listed must be 0 or more") }
    }

    func run() throws {
        do {
            if let writeGolden { return try write(golden: writeGolden) }
            let (status, output) = try check()
            print(output, terminator: "")
            if status != .pass { throw ExitCode(status.exitCode) }
        } catch let error as ExitCode {
            throw error
        } catch {
            let code = Self.exitCode(for: error)
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            if json { print(Self.encode(JSONReport(status: "error", exitCode: code, error: "\(error)"))) }
            throw ExitCode(code)
        }
    }

    // MARK: Checking

    private func check() throws -> (RegressionGate.Status, String) {
        var sides = Sides(database: database)
        let checked = try sides.load(target!)
        var report = JSONReport(status: "pass", exitCode: 0)
        var text = ""
        var status = RegressionGate.Status.pass
        if let exact {
            let result = RegressionGate.exact(run: checked, baseline: try sides.load(exact), allowParameterChange: allowParameterChange)
            report.exact = result
            status = max(status, result.status)
            text += Self.render(result, maxListed: maxListed)
        }
        if let reference = baseline ?? exact, !metric.isEmpty {
            let base = try sides.load(reference)
            for m in metric {
                let result = RegressionGate.metric(m, run: checked, baseline: base, worseBy: worseBy! / 100,
                                                   samples: bootstrapSamples, seed: seed)
                report.metrics.append(result)
                status = max(status, result.status)
                text += Self.render(result)
            }
        }
        report.status = status.rawValue
        report.exitCode = status.exitCode
        return (status, json ? Self.encode(report) + "\n" : text)
    }

    /// Runs and golden files, the store opened (read-only) once and only when a side names a run.
    struct Sides {
        let database: DatabaseOptions
        var store: (any RunRepository)?
        var loaded: [String: GoldenRun] = [:]
        init(database: DatabaseOptions) { self.database = database }

        mutating func load(_ reference: String) throws -> GoldenRun {
            if let side = loaded[reference] { return side }
            let side: GoldenRun
            if reference.hasSuffix(".jsonl") || FileManager.default.fileExists(atPath: reference) {
                side = try GoldenRun(contentsOf: URL(fileURLWithPath: reference))
            } else {
                if store == nil { store = try database.openForReading() }
                side = try GoldenRun(store: store!, run: try store!.resolveRun(reference))
            }
            loaded[reference] = side
            return side
        }
    }

    private func write(golden path: String) throws {
        let reference = target!
        let store = try database.openForReading()
        let record = try store.resolveRun(reference)
        let side = try GoldenRun(store: store, run: record)
        if record.status != .complete || side.items.count < (record.expectedItems ?? 0) {
            throw CheckError.incompleteRun(run: side.source, status: record.status.rawValue, items: side.items.count,
                                           expected: record.expectedItems)
        }
        do {
            let url = URL(fileURLWithPath: path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(side.jsonl().utf8).write(to: url, options: .atomic)
        } catch {
            throw CheckError.cannotWrite(path: path, reason: error.localizedDescription)
        }
        FileHandle.standardError.write(Data("Wrote \(side.items.count) items of \(side.source) (\(record.decoder.display)) to \(path).\n".utf8))
    }

    // MARK: Reports

    struct JSONReport: Encodable {
        var status: String
        var exitCode: Int32
        var exact: RegressionGate.ExactReport?
        var metrics: [RegressionGate.MetricReport] = []
        var error: String?
    }

    static func encode<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: try! encoder.encode(value), as: UTF8.self)
    }

    static func render(_ r: RegressionGate.ExactReport, maxListed: Int) -> String {
        var lines: [String] = []
        switch r.status {
        case .pass:
            lines.append("exact: PASS: \(r.run) has the same outputs as \(r.baseline) on all \(r.compared) items.")
        case .regression:
            lines.append("exact: FAIL: \(r.differences.count) of \(r.compared) items of \(r.run) differ from \(r.baseline):")
            for d in r.differences.prefix(maxListed) {
                var where_ = "item \(d.item)"
                if let image = d.imageID { where_ += ", image \(image)" }
                if let question = d.questionID { where_ += ", question \(question)" }
                if let failure = d.failure {
                    lines.append("  \(where_): \(failure)")
                } else if let position = d.firstDifferentToken {
                    lines.append("  \(where_): first different token at position \(position) (baseline \(d.baselineTokenCount ?? 0) tokens, run \(d.runTokenCount ?? 0))")
                } else {
                    lines.append("  \(where_): the texts differ")
                }
                lines.append("    baseline: \(quoted(d.baselineText))")
                lines.append("    run:      \(quoted(d.runText))")
            }
            if r.differences.count > maxListed {
                lines.append("  … and \(r.differences.count - maxListed) more (--max-listed, or --json for all)")
            }
            lines.append("If the change is intended, regenerate the golden runs (docs/check.md).")
        case .notComparable:
            lines.append("exact: NOT COMPARABLE: \(r.run) cannot be checked against \(r.baseline):")
            lines += r.reasons.map { "  - \($0)" }
        }
        lines += r.notes.map { "note: \($0)" }
        return lines.map { $0 + "\n" }.joined()
    }

    static func render(_ r: RegressionGate.MetricReport) -> String {
        func points(_ v: Double?, sign: Bool = false) -> String {
            guard let v else { return "n/a" }
            return String(format: sign ? "%+.2f" : "%.2f", v * 100)
        }
        var lines: [String] = []
        let name = r.metric.rawValue
        switch r.status {
        case .notComparable:
            lines.append("\(name): NOT COMPARABLE: \(r.run) vs \(r.baseline):")
            lines += r.reasons.map { "  - \($0)" }
            return lines.map { $0 + "\n" }.joined()
        case .pass:
            lines.append("\(name): PASS: not significantly worse than the baseline by more than \(points(r.worseBy)) points.")
        case .regression:
            lines.append("\(name): FAIL: significantly worse than the baseline by more than \(points(r.worseBy)) points.")
        }
        lines.append("  baseline \(points(r.baselineValue)) (\(r.baseline)), run \(points(r.runValue)) (\(r.run)), difference \(points(r.difference, sign: true)) points")
        if let i = r.interval {
            lines.append("  paired bootstrap \(Int((r.level * 100).rounded()))% interval of run − baseline: [\(points(i.lower, sign: true)), \(points(i.upper, sign: true))] points; \(r.samples) resamples of \(r.units) \(r.unitName), seed \(r.seed)")
        }
        let margin = r.lowerIsBetter ? "+" + points(r.worseBy) : "-" + points(r.worseBy)
        lines.append("  \(r.lowerIsBetter ? "lower" : "higher") is better; it fails when the whole interval lies \(r.lowerIsBetter ? "above" : "below") \(margin)")
        return lines.map { $0 + "\n" }.joined()
    }

    /// The text as a JSON string literal: quoted, with line breaks and other control characters escaped, so a
    /// clipped output stays on one line and invisible differences show.
    static func quoted(_ text: String) -> String {
        let data = try? JSONSerialization.data(withJSONObject: text, options: [.fragmentsAllowed, .withoutEscapingSlashes])
        return data.map { String(decoding: $0, as: UTF8.self) } ?? "\"\(text)\""
    }

    /// The documented exit code of an error (sysexits.h values).
    static func exitCode(for error: Error) -> Int32 {
        switch error {
        case let e as GoldenFileError:
            if case .malformed = e { return 65 }
            return 66
        case let e as StoreError:
            switch e {
            case .runNotFound, .databaseMissing: return 66
            default: return 74
            }
        case let e as CheckError:
            if case .cannotWrite = e { return 73 }
            return 65
        default:
            return 74
        }
    }
}

enum CheckError: Error, CustomStringConvertible {
    case incompleteRun(run: String, status: String, items: Int, expected: Int?)
    case cannotWrite(path: String, reason: String)

    var description: String {
        switch self {
        case let .incompleteRun(run, status, items, expected):
            return "\(run) is \(status) with \(items)\(expected.map { " of \($0)" } ?? "") items; a golden run must be complete: run the same command again to finish it, then write the golden file"
        case let .cannotWrite(path, reason):
            return "cannot write the golden file \(path): \(reason); choose a writable path"
        }
    }
}
