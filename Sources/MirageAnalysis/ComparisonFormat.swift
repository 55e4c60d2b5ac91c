import Foundation
import MirageMetrics
import MirageStore

/// Output formats of `mirage compare`.
public enum ComparisonFormat: String, CaseIterable, Sendable {
    case table, md, latex, csv, json
}

extension Comparison {
    /// One displayed column: its group, header, and how to read its value from a row.
    struct DisplayColumn {
        enum Value { case metric(String), delta(String), interval(String), mcnemarP, run }
        var group: ComparisonColumn
        var header: String
        var csvName: String
        var value: Value
        var percent: Bool
    }

    var displayColumns: [DisplayColumn] {
        var out: [DisplayColumn] = []
        let hasBaseline = baselineRun != nil
        for c in columns {
            func add(_ header: String, _ csv: String, _ v: DisplayColumn.Value, percent: Bool = true) {
                out.append(DisplayColumn(group: c, header: header, csvName: "\(c.key).\(csv)", value: v, percent: percent))
            }
            switch c.kind {
            case .chair:
                add("CHAIR_S", "chair_s", .metric("chair_s")); add("CHAIR_I", "chair_i", .metric("chair_i"))
                add("Recall", "recall", .metric("recall")); add("Len", "len", .metric("len"))
                add("F1", "object_f1", .metric("object_f1"))
                if hasBaseline {
                    add("ΔC_S", "chair_s.delta", .delta("chair_s")); add("95% CI", "chair_s.ci", .interval("chair_s"))
                    add("ΔC_I", "chair_i.delta", .delta("chair_i")); add("95% CI", "chair_i.ci", .interval("chair_i"))
                }
            case .pope:
                add("Acc", "accuracy", .metric("accuracy")); add("P", "precision", .metric("precision"))
                add("R", "recall", .metric("recall")); add("F1", "f1", .metric("f1"))
                add("Yes", "yes_ratio", .metric("yes_ratio"))
                if hasBaseline { add("ΔF1", "f1.delta", .delta("f1")); add("p", "mcnemar_p", .mcnemarP, percent: false) }
            case .popeAverage:
                add("Acc", "accuracy", .metric("accuracy")); add("F1", "f1", .metric("f1"))
                if hasBaseline { add("ΔF1", "f1.delta", .delta("f1")) }
            }
        }
        return out
    }

    /// The text of a cell in the human formats (percent with one decimal; Len as words; signed deltas).
    func displayCell(_ row: ComparisonRow, _ col: DisplayColumn) -> String {
        let key = col.group.key
        func number(_ v: Double, signed: Bool = false) -> String {
            if v.isNaN { return "n/a" }
            let x = col.percent ? v * 100 : v
            let s = String(format: "%.1f", x)
            if s == "-0.0" { return signed ? "+0.0" : "0.0" }
            return signed && x >= 0 ? "+" + s : s
        }
        switch col.value {
        case .metric(let m):
            return row.metrics[key]?[m].map { number($0) } ?? ""
        case .delta(let m):
            return row.deltas[key]?[m].map { number($0, signed: true) } ?? ""
        case .interval(let m):
            guard let iv = row.intervals[key]?[m] else { return "" }
            return "[\(number(iv.lower, signed: true)), \(number(iv.upper, signed: true))]"
        case .mcnemarP:
            guard let t = row.mcnemar[key] else { return "" }
            return t.pValue < 0.001 ? "<0.001" : String(format: "%.3f", t.pValue)
        case .run:
            return row.runs[key].map(String.init) ?? ""
        }
    }

    /// The raw value of a cell for CSV (fractions, six decimals; intervals as two columns).
    func rawCells(_ row: ComparisonRow, _ col: DisplayColumn) -> [String] {
        let key = col.group.key
        func raw(_ v: Double?) -> String {
            guard let v, !v.isNaN else { return "" }
            let s = String(format: "%.6f", v)
            return s == "-0.000000" ? "0.000000" : s
        }
        switch col.value {
        case .metric(let m): return [raw(row.metrics[key]?[m])]
        case .delta(let m): return [raw(row.deltas[key]?[m])]
        case .interval(let m):
            let iv = row.intervals[key]?[m]
            return [raw(iv?.lower), raw(iv?.upper)]
        case .mcnemarP: return [raw(row.mcnemar[key]?.pValue)]
        case .run: return [row.runs[key].map(String.init) ?? ""]
        }
    }

    public func render(_ format: ComparisonFormat) -> String {
        switch format {
        case .table: return renderTable()
        case .md: return renderMarkdown()
        case .latex: return renderLatex()
        case .csv: return renderCSV()
        case .json: return renderJSON()
        }
    }

    /// The human table as plain cells (for HTML and other renderers): "Method" then "group header" per
    /// displayed column, one row per method, and the indices of the baseline rows.
    public var cells: (headers: [String], rows: [[String]], baselineRows: Set<Int>) {
        let cols = displayColumns
        let headers = ["Method"] + cols.map { "\($0.group.title) \($0.header)" }
        let body = rows.map { r in [rowTitle(r)] + cols.map { displayCell(r, $0) } }
        return (headers, body, Set(rows.indices.filter { rows[$0].isBaseline }))
    }

    private var groupSpans: [(title: String, count: Int)] {
        var spans: [(String, Int)] = []
        for c in displayColumns {
            if let last = spans.last, last.0 == c.group.title { spans[spans.count - 1].1 += 1 } else { spans.append((c.group.title, 1)) }
        }
        return spans
    }

    private func rowTitle(_ row: ComparisonRow) -> String { row.isBaseline ? row.title + " (baseline)" : row.title }

    func renderTable() -> String {
        let cols = displayColumns
        let body = rows.map { r in [rowTitle(r)] + cols.map { displayCell(r, $0) } }
        let header = ["Method"] + cols.map(\.header)
        var widths = header.map(\.count)
        for line in body { for (i, cell) in line.enumerated() { widths[i] = max(widths[i], cell.count) } }
        // Widen the last column of a group when its title is longer than its columns.
        var index = 1
        for span in groupSpans {
            let width = widths[index..<(index + span.count)].reduce(0, +) + 2 * (span.count - 1)
            if span.title.count > width { widths[index + span.count - 1] += span.title.count - width }
            index += span.count
        }
        func pad(_ s: String, _ w: Int, left: Bool) -> String {
            let fill = String(repeating: " ", count: max(0, w - s.count))
            return left ? s + fill : fill + s
        }
        var groupLine = pad("", widths[0], left: true)
        index = 1
        for span in groupSpans {
            let width = widths[index..<(index + span.count)].reduce(0, +) + 2 * (span.count - 1)
            groupLine += "  " + pad(span.title, width, left: true)
            index += span.count
        }
        var lines = [groupLine.trailingTrimmed]
        lines.append(header.enumerated().map { pad($1, widths[$0], left: $0 == 0) }.joined(separator: "  "))
        lines.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "))
        for line in body { lines.append(line.enumerated().map { pad($1, widths[$0], left: $0 == 0) }.joined(separator: "  ").trailingTrimmed) }
        lines += notes
        return lines.joined(separator: "\n") + "\n"
    }

    func renderMarkdown() -> String {
        let cols = displayColumns
        func esc(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }
        var lines = ["| Method | " + cols.map { esc($0.group.kind == .chair ? $0.header : "\($0.group.title) \($0.header)") }.joined(separator: " | ") + " |"]
        lines.append("|---|" + cols.map { _ in "---:|" }.joined())
        for r in rows {
            let title = r.isBaseline ? "\(esc(r.title)) (baseline)" : esc(r.title)
            lines.append("| \(title) | " + cols.map { esc(displayCell(r, $0)) }.joined(separator: " | ") + " |")
        }
        if !notes.isEmpty { lines.append(""); lines += notes }
        return lines.joined(separator: "\n") + "\n"
    }

    func renderLatex() -> String {
        let cols = displayColumns
        func esc(_ s: String) -> String {
            var out = ""
            for ch in s {
                switch ch {
                case "\\": out += "\\textbackslash{}"
                case "&", "%", "$", "#", "_", "{", "}": out += "\\\(ch)"
                case "~": out += "\\textasciitilde{}"
                case "^": out += "\\textasciicircum{}"
                case "Δ": out += "$\\Delta$"
                default: out.append(ch)
                }
            }
            return out
        }
        func cell(_ s: String) -> String {
            if s == "<0.001" { return "$<$0.001" }
            return esc(s.replacingOccurrences(of: "-", with: "\u{2212}")).replacingOccurrences(of: "\u{2212}", with: "$-$")
        }
        var lines = ["\\begin{tabular}{l" + String(repeating: "r", count: cols.count) + "}", "\\toprule"]
        var groupCells = [""], rules: [String] = []
        var index = 2
        for span in groupSpans {
            groupCells.append("\\multicolumn{\(span.count)}{c}{\(esc(span.title))}")
            rules.append("\\cmidrule(lr){\(index)-\(index + span.count - 1)}")
            index += span.count
        }
        lines.append(groupCells.joined(separator: " & ") + " \\\\")
        lines.append(rules.joined(separator: " "))
        lines.append((["Method"] + cols.map { esc($0.header) }).joined(separator: " & ") + " \\\\")
        lines.append("\\midrule")
        for r in rows {
            let title = r.isBaseline ? esc(r.title) + " (baseline)" : esc(r.title)
            lines.append(([title] + cols.map { cell(displayCell(r, $0)) }).joined(separator: " & ") + " \\\\")
        }
        lines += ["\\bottomrule", "\\end{tabular}"]
        return lines.joined(separator: "\n") + "\n"
    }

    func renderCSV() -> String {
        let cols = displayColumns
        func quote(_ s: String) -> String {
            s.contains(where: { ",\"\n\r".contains($0) }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        var header = ["method", "model", "decoder", "baseline"]
        let runColumns = columns.filter { $0.kind != .popeAverage }
        for c in runColumns { header.append("\(c.key).run") }
        for c in cols {
            if case .interval = c.value { header += [c.csvName + "_low", c.csvName + "_high"] } else { header.append(c.csvName) }
        }
        var lines = [header.map(quote).joined(separator: ",")]
        for r in rows {
            var cells = [r.title, r.model, r.decoder, r.isBaseline ? "true" : "false"]
            for c in runColumns { cells.append(r.runs[c.key].map(String.init) ?? "") }
            for c in cols { cells += rawCells(r, c) }
            lines.append(cells.map(quote).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// JSON with every number as a fraction (null where undefined); keys sorted.
    func renderJSON() -> String {
        struct JSONInterval: Encodable { var low: Double?; var high: Double? }
        struct JSONRow: Encodable {
            var method: String, model: String, decoder: String, baseline: Bool
            var runs: [String: Int64]
            var metrics: [String: [String: Double?]]
            var deltas: [String: [String: Double?]]?
            var intervals: [String: [String: JSONInterval]]?
            var shared_images: [String: Int]?
            var mcnemar: [String: McNemarResult]?
        }
        struct JSONBootstrap: Encodable { var unit: String, samples: Int, seed: UInt64, interval: String }
        struct JSONComparison: Encodable {
            var columns: [ComparisonColumn]
            var rows: [JSONRow]
            var baseline_run: Int64?
            var bootstrap: JSONBootstrap?
            var notes: [String]
        }
        func clean(_ d: [String: [String: Double]]) -> [String: [String: Double?]] {
            d.mapValues { $0.mapValues { $0.isNaN ? nil : $0 } }
        }
        func nonEmpty<T: Collection>(_ c: T) -> T? { c.isEmpty ? nil : c }
        let hasChairDeltas = baselineRun != nil && columns.contains { $0.kind == .chair }
        let doc = JSONComparison(
            columns: columns,
            rows: rows.map { r in
                JSONRow(method: r.title, model: r.model, decoder: r.decoder, baseline: r.isBaseline, runs: r.runs,
                        metrics: clean(r.metrics), deltas: nonEmpty(clean(r.deltas)),
                        intervals: nonEmpty(r.intervals.mapValues { $0.mapValues { JSONInterval(low: $0.lower, high: $0.upper) } }),
                        shared_images: nonEmpty(r.sharedImages), mcnemar: nonEmpty(r.mcnemar))
            },
            baseline_run: baselineRun,
            bootstrap: hasChairDeltas ? JSONBootstrap(unit: "image", samples: bootstrapSamples, seed: bootstrapSeed,
                                                      interval: "95% percentile") : nil,
            notes: notes)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try! encoder.encode(doc), as: UTF8.self) + "\n"
    }
}

extension String {
    var trailingTrimmed: String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}
