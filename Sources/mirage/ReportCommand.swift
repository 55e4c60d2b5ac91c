import ArgumentParser
import Foundation
import MirageAnalysis
import MirageCLISupport
import MirageMetrics
import MirageStore
import MirageVisuals

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a self-contained HTML page about runs: settings, metrics, comparison, captions, heatmaps.",
        discussion: """
        One page with no external resources (images inline): each run's settings (model, decoder and its \
        parameters, protocol, seed, provenance), the metrics table, the comparison table of `mirage compare` \
        (with --baseline: deltas, bootstrap intervals, McNemar), and every item's caption with CHAIR's object \
        words highlighted (red: hallucinated, green: in the image). Items with recorded attention get their \
        heatmap (as `mirage attention`, with the summary-token options below). Exact highlighting needs Punkt \
        (--nltk-data); without it whole-word matches of the mentioned words are highlighted.

        Examples:
          mirage report llava-opera --baseline llava-beam5 --out report.html
          mirage report 3 4 5 --out all.html --max-items 20
        """)

    @OptionGroup var database: DatabaseOptions
    @Argument(help: ArgumentHelp("Runs to report (ids or labels).", valueName: "run")) var runReferences: [String]
    @Option(help: ArgumentHelp("The run the others are compared with (id or label); added to the page.", valueName: "run"))
    var baseline: String?
    @Option(name: .shortAndLong, help: ArgumentHelp("The HTML file to write.", valueName: "file.html")) var out: String
    @Option(help: "Items shown per run (in item order; 0 for none).") var maxItems = 50
    @Flag(help: "Put runs of different protocols in one comparison column anyway.") var allowMixedProtocols = false
    @OptionGroup var detectorOptions: DetectorOptions
    @OptionGroup var punkt: PunktOptions

    func validate() throws {
        if maxItems < 0 { throw ValidationError("--max-items must be ≥ 0") }
    }

    func run() throws {
        try runReportingErrors {
            let store = try database.openForReading()
            var runs = try runReferences.map { try store.resolveRun($0) }
            let base = try baseline.map { try store.resolveRun($0) }
            if let base, !runs.contains(where: { $0.id == base.id }) { runs.insert(base, at: 0) }
            let detector = try detectorOptions.detector()
            var aligner: CaptionAligner?
            do { aligner = try punkt.aligner() } catch {
                FileHandle.standardError.write(Data("warning: \(error)\n  highlighting whole-word matches instead\n".utf8))
            }

            let comparison = try ComparisonBuilder(store: store).compare(
                runs: runs, options: ComparisonOptions(baseline: base?.id, allowMixedProtocols: allowMixedProtocols))
            let cells = comparison.cells
            var metricsRows: [[String]] = []
            var metricNames: [String] = []
            var items: [HTMLReport.Item] = []
            for run in runs {
                let metrics = try store.metrics(run: run.id)
                for name in Self.metricOrder + metrics.keys.sorted() where metrics[name] != nil && !metricNames.contains(name) {
                    metricNames.append(name)
                }
            }
            for run in runs {
                let metrics = try store.metrics(run: run.id)
                metricsRows.append([Self.name(run)] + metricNames.map { name in
                    guard let v = metrics[name] else { return "" }
                    return ["items", "failed_items", "unknown"].contains(name) ? String(Int(v)) : percent(v)
                })
                if run.id == base?.id && runs.count > 1 { continue }
                items += try reportItems(store: store, run: run, detector: detector, aligner: aligner)
            }
            // The over-trust figure (CHAIR of sub-sentences by summary tokens) for runs with attention and CHAIR.
            var figures: [HTMLReport.Figure] = []
            if let aligner {
                let analyzer = OvertrustRunAnalyzer(detector: detector, aligner: aligner)
                var analysed: [(name: String, report: OvertrustReport)] = []
                for run in runs where run.task == .chair {
                    let (items, _) = try analyzer.items(store: store, run: run.id)
                    if !items.isEmpty { analysed.append((Self.name(run), OvertrustAnalysis.analyze(items))) }
                }
                if !analysed.isEmpty, analysed.contains(where: { !$0.report.groups.isEmpty }) {
                    let caption = analysed.map { name, r in
                        "\(name): \(r.responses) responses; summary token before the first hallucinated word in "
                            + "\(r.hallucinatedWithOvertrustBefore) of \(r.hallucinatedResponses - r.hallucinatedUnlocated) hallucinated "
                            + "responses; summary token in \(r.cleanWithOvertrust) of \(r.cleanResponses) responses without hallucination"
                    }.joined(separator: ". ")
                    figures.append(HTMLReport.Figure(title: "Over-trust: CHAIR of sub-sentences by summary tokens before them",
                                                     png: try OvertrustFigures.plot(analysed).png().png, caption: caption))
                }
            }
            let report = HTMLReport(
                title: "Mirage report: " + runs.map(Self.name).joined(separator: ", "),
                subtitle: "\(store.location) · \(ISO8601DateFormatter().string(from: Date()))",
                settings: runs.map(Self.settings),
                metrics: [HTMLReport.Table(caption: "Metrics (percent, except counts)", headers: ["Run"] + metricNames, rows: metricsRows)],
                comparison: HTMLReport.Table(caption: base == nil ? "Comparison" : "Comparison against \(Self.name(base!))",
                                             headers: cells.headers, rows: cells.rows, highlightedRows: cells.baselineRows),
                figures: figures, items: items)
            try report.render().write(to: URL(fileURLWithPath: out), atomically: true, encoding: .utf8)
            let heatmaps = items.filter { $0.heatmapPNG != nil }.count
            print("wrote \(out): \(runs.count) runs, \(items.count) items, \(heatmaps) heatmap\(heatmaps == 1 ? "" : "s"), \(figures.count) figure\(figures.count == 1 ? "" : "s")")
        }
    }

    static let metricOrder = ["chair_s", "chair_i", "recall", "len", "object_precision", "object_f1",
                              "accuracy", "precision", "f1", "yes_ratio", "unknown", "items", "failed_items"]

    static func name(_ run: RunRecord) -> String { run.details.label.map { "\($0) (run \(run.id))" } ?? "run \(run.id)" }

    static func settings(_ run: RunRecord) -> HTMLReport.Settings {
        let p = run.protocolRecord.evalProtocol
        var entries: [(key: String, value: String)] = [
            ("model", [run.model.name, run.model.architecture].filter { !$0.isEmpty }.joined(separator: " · ")),
            ("decoder", run.decoder.name), ("decoder parameters", run.decoder.parametersJSON),
            ("protocol", "\(run.protocolRecord.display) (\(p.task.rawValue), \(p.imageIDs.count) images)"),
        ]
        if let t = p.promptTemplate { entries.append(("prompt", t)) }
        if let m = p.maxNewTokens { entries.append(("max new tokens", String(m))) }
        if let s = p.split { entries.append(("split", s)) }
        if !run.model.fingerprint.isEmpty { entries.append(("weights", String(run.model.fingerprint.prefix(16)))) }
        if let seed = run.details.seed { entries.append(("seed", String(seed))) }
        if let path = run.details.sourcePath { entries.append(("source", path)) }
        entries.append(("status", run.status.rawValue))
        entries.append(("created", run.createdAt))
        if let f = run.finishedAt { entries.append(("finished", f)) }
        entries.append(("mirage", run.details.mirageVersion + (run.details.gitRevision.map { " @ " + String($0.prefix(12)) } ?? "")))
        entries.append(("host", run.details.host))
        return HTMLReport.Settings(name: name(run), entries: entries)
    }

    func reportItems(store: any RunRepository, run: RunRecord, detector: SummaryTokenDetector,
                     aligner: CaptionAligner?) throws -> [HTMLReport.Item] {
        let withAttention = Set(try store.itemsWithAttention(run: run.id))
        var out: [HTMLReport.Item] = []
        for stored in try store.items(run: run.id).prefix(maxItems) {
            let caption = stored.item.outputText
            var spans: [HTMLReport.Span] = []
            var notes: [String] = []
            var mentions: [ObjectMention] = []
            switch stored.score {
            case let .chair(score)?:
                mentions = score.mentions
                let bad = mentions.filter(\.hallucinated).map(\.node)
                notes.append("CHAIR: \(bad.count) of \(mentions.count) mentions hallucinated"
                             + (bad.isEmpty ? "" : " (\(bad.joined(separator: ", ")))"))
                if let aligner {
                    for (m, range) in zip(mentions, aligner.mentionRanges(caption: caption, mentions: mentions)) {
                        if let range { spans.append(HTMLReport.Span(range: range, kind: m.hallucinated ? .hallucinated : .correct)) }
                    }
                } else {
                    spans = HTMLReport.Span.occurrences(of: mentions.filter(\.hallucinated).map(\.word), in: caption, kind: .hallucinated)
                        + HTMLReport.Span.occurrences(of: mentions.filter { !$0.hallucinated }.map(\.word), in: caption, kind: .correct)
                    spans.sort { $0.range.lowerBound < $1.range.lowerBound }
                }
            case let .pope(score)?:
                notes.append("POPE: label \(score.label.rawValue), answer \(score.parsed.rawValue)")
            case nil:
                break
            }
            if let reason = stored.item.failureReason { notes.append("failed: \(reason)") }
            var png: [UInt8]?
            if withAttention.contains(stored.item.key), let record = try store.attention(run: run.id, itemKey: stored.item.key) {
                let map = try AttentionMap(record)
                let detection = detector.detect(map)
                var hallucinated = Set<Int>()
                if let aligner, !mentions.isEmpty {
                    let located = aligner.item(key: stored.item.key, caption: caption, mentions: mentions, map: map,
                                               summary: detection.tokens)
                    hallucinated = Set(located.mentions.filter(\.hallucinated).map(\.token))
                }
                let columns = detection.tokens.map { "\($0.column) '\(map.labels[$0.column])'" }
                notes.append("summary tokens: " + (columns.isEmpty ? "none" : columns.joined(separator: ", ")))
                png = try OvertrustFigures.heatmap(map, summary: detection.tokens, hallucinated: hallucinated,
                                                   title: "item \(stored.item.key)").png().png
            }
            out.append(HTMLReport.Item(id: "\(Self.name(run)) · item \(stored.item.key)", caption: caption, spans: spans,
                                       notes: notes, heatmapPNG: png))
        }
        return out
    }
}
