import ArgumentParser
import Foundation
import MirageAnalysis
import MirageCLISupport
import MirageStore

struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Analyses of stored runs (over-trust: OPERA's summary tokens against CHAIR).",
        subcommands: [AnalyzeOvertrust.self])
}

struct AnalyzeOvertrust: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "overtrust",
        abstract: "CHAIR of sub-sentences by the number of summary tokens before them (OPERA's Figure 2 b/c).",
        discussion: """
        Needs runs recorded with attention (`mirage run --record-attention`) and scored with CHAIR. For every \
        response, summary tokens are detected on its last-layer attention as OPERA does while decoding (column \
        score 1e-7·Π σ·W over the response window; a location that wins more than --threshold steps); the caption \
        is split into sub-sentences (Punkt, as CHAIR's tokenizer splits them) and each sub-sentence is grouped by \
        the number of summary tokens located before its first token.

        Per group: CHAIR_S = sub-sentences with a hallucinated object / sub-sentences; CHAIR_I = hallucinated \
        mentions / mentions. Also: the share of hallucinated responses whose attention showed a summary token \
        (its trigger step) before the first hallucinated word, the share that show one anywhere, and the share \
        of responses without hallucination that show one. docs/overtrust.md has the definitions.

        Examples:
          mirage analyze overtrust llava-greedy llava-beam5
          mirage analyze overtrust 3 --format csv > overtrust.csv
          mirage analyze overtrust 3 --out-dir results/overtrust   # table.txt, overtrust.json, overtrust.png
        """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case table, csv, json }

    @OptionGroup var database: DatabaseOptions
    @Argument(help: ArgumentHelp("Runs to analyse (ids or labels).", valueName: "run")) var runReferences: [String]
    @OptionGroup var detectorOptions: DetectorOptions
    @OptionGroup var punkt: PunktOptions
    @Option(help: "Output format on stdout: table, csv or json.") var format: Format = .table
    @Option(help: ArgumentHelp("Also write the table, the JSON and the PNG line plot into this folder.", valueName: "dir"))
    var outDir: String?

    func run() throws {
        try runReportingErrors {
            let store = try database.openForReading()
            let analyzer = OvertrustRunAnalyzer(detector: try detectorOptions.detector(), aligner: try punkt.aligner())
            var results: [OvertrustRunResult] = []
            for reference in runReferences {
                let run = try store.resolveRun(reference)
                let (items, unscored) = try analyzer.items(store: store, run: run.id)
                if items.isEmpty {
                    throw OvertrustCommandError.nothingToAnalyse(run: reference, unscored: unscored)
                }
                results.append(OvertrustRunResult(run: run.id, name: run.details.label ?? "run \(run.id)",
                                                   report: OvertrustAnalysis.analyze(items), unscoredItems: unscored))
            }
            let text: String
            switch format {
            case .table: text = OvertrustRunResult.table(results)
            case .csv: text = OvertrustRunResult.csv(results)
            case .json: text = try OvertrustRunResult.json(results)
            }
            print(text, terminator: "")
            if let outDir {
                let dir = URL(fileURLWithPath: outDir)
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                try OvertrustRunResult.table(results).write(to: dir.appendingPathComponent("overtrust.txt"), atomically: true, encoding: .utf8)
                try OvertrustRunResult.csv(results).write(to: dir.appendingPathComponent("overtrust.csv"), atomically: true, encoding: .utf8)
                try OvertrustRunResult.json(results).write(to: dir.appendingPathComponent("overtrust.json"), atomically: true, encoding: .utf8)
                try OvertrustRunResult.plot(results).write(to: dir.appendingPathComponent("overtrust.png"))
                FileHandle.standardError.write(Data("wrote overtrust.txt, .csv, .json and .png to \(dir.path)\n".utf8))
            }
        }
    }
}

enum OvertrustCommandError: Error, CustomStringConvertible {
    case nothingToAnalyse(run: String, unscored: Int)

    var description: String {
        switch self {
        case let .nothingToAnalyse(run, unscored):
            return unscored > 0
                ? "run \(run) has attention for \(unscored) items but no CHAIR scores; score the run with CHAIR first"
                : "run \(run) has no recorded attention; run it with `mirage run --record-attention`"
        }
    }
}

/// One run's analysis and its renderings.
struct OvertrustRunResult: Codable {
    var run: Int64
    var name: String
    var report: OvertrustReport
    var unscoredItems: Int
    /// (b): the shares of responses showing a summary token (NaN where the denominator is 0).
    var shares: [String: Double]

    init(run: Int64, name: String, report: OvertrustReport, unscoredItems: Int) {
        self.run = run
        self.name = name
        self.report = report
        self.unscoredItems = unscoredItems
        shares = ["hallucinatedBeforeFirstHallucination": report.shareHallucinatedBefore,
                  "hallucinatedAnywhere": report.shareHallucinated, "cleanAnywhere": report.shareClean]
    }

    static func table(_ results: [OvertrustRunResult]) -> String {
        var out = ""
        for r in results {
            let p = r.report
            out += "\(r.name): \(p.responses) responses with attention and CHAIR"
                + (r.unscoredItems > 0 ? " (\(r.unscoredItems) without CHAIR skipped)" : "")
                + (p.unmappedMentions > 0 ? "; \(p.unmappedMentions) mentions not found in the response text" : "") + "\n"
            out += "  summary tokens before   sub-sentences   CHAIR_S   CHAIR_I   mentions\n"
            for g in p.groups {
                out += "  " + pad("\(g.summaryTokens)", 20) + "   " + pad("\(g.subSentences)", 13) + "   "
                    + pad(percent(g.chairS), 7) + "   " + pad(percent(g.chairI), 7) + "   " + pad("\(g.mentions)", 8) + "\n"
            }
            out += "  hallucinated responses with a summary token before the first hallucinated word: "
                + "\(p.hallucinatedWithOvertrustBefore)/\(p.hallucinatedResponses - p.hallucinatedUnlocated) (\(share(p.shareHallucinatedBefore)))\n"
            out += "  hallucinated responses with a summary token anywhere: \(p.hallucinatedWithOvertrust)/\(p.hallucinatedResponses) (\(share(p.shareHallucinated)))\n"
            out += "  responses without hallucination with a summary token: \(p.cleanWithOvertrust)/\(p.cleanResponses) (\(share(p.shareClean)))\n"
        }
        return out
    }

    private static func share(_ v: Double) -> String { v.isNaN ? "n/a" : percent(v) + "%" }

    private static func pad(_ s: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - s.count)) + s
    }

    static func csv(_ results: [OvertrustRunResult]) -> String {
        var out = "run,name,summary_tokens,sub_sentences,hallucinated_sub_sentences,mentions,hallucinated_mentions,chair_s,chair_i\n"
        func number(_ v: Double) -> String { v.isNaN ? "" : String(v) }
        for r in results {
            let name = "\"" + r.name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            for g in r.report.groups {
                out += "\(r.run),\(name),\(g.summaryTokens),\(g.subSentences),\(g.hallucinatedSubSentences),"
                    + "\(g.mentions),\(g.hallucinatedMentions),\(number(g.chairS)),\(number(g.chairI))\n"
            }
        }
        return out
    }

    static func plot(_ results: [OvertrustRunResult]) throws -> Data {
        Data(try OvertrustFigures.plot(results.map { ($0.name, $0.report) }).png().png)
    }

    static func json(_ results: [OvertrustRunResult]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "NaN")
        return String(decoding: try encoder.encode(results), as: UTF8.self) + "\n"
    }
}
