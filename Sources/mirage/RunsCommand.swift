import ArgumentParser
import Foundation
import MirageStore
import MirageRunner

struct Runs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, inspect, label and delete the runs in the store.",
        discussion: """
        Every import (`mirage import`, `mirage reproduce opera`) and every model run is one run in the store \
        (default \(RunStores.defaultPath); --db picks another file). Refer to a run by its id or its label.

        Examples:
          mirage runs list
          mirage runs list --model llava-1.5 --task chair
          mirage runs show 3
          mirage runs label 3 llava-greedy
          mirage runs delete llava-greedy --yes
        """,
        subcommands: [List.self, Show.self, Label.self, Delete.self],
        defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List runs with their status and headline metrics.",
            discussion: """
            CHAIR runs show CHAIR_S / CHAIR_I (percent); POPE runs show accuracy / F1 (percent). Items shows \
            stored/expected when a run lacks items; such a run's status reads "partial" (its numbers cover only \
            the stored items). Long labels, names and decoder settings are shortened with "…" to fit about 120 \
            columns; --wide shows everything, with the task and creation time.

            Examples:
              mirage runs list
              mirage runs list --protocol 3f2a9c --decoder beam5
              mirage runs list --wide
            """)
        @OptionGroup var database: DatabaseOptions
        @Option(help: "Only runs of this protocol (id, name, or hash prefix).") var `protocol`: String?
        @Option(help: "Only runs of this model name.") var model: String?
        @Option(help: "Only runs of this decoder name.") var decoder: String?
        @Option(help: "Only runs of this task (chair or pope).") var task: EvalProtocol.Task?
        @Flag(help: "Show every column in full (task, full decoder settings, creation time); may be wide.") var wide = false

        func run() throws {
            let store = try database.openForReading()
            let rows = try store.summaries(RunFilter(protocolRef: `protocol`, model: model, decoder: decoder, task: task))
            if rows.isEmpty {
                let filtered = `protocol` != nil || model != nil || decoder != nil || task != nil
                print(filtered ? "No runs match in \(store.location)." : "No runs yet in \(store.location).")
                return
            }
            var table = wide ? [["ID", "Label", "Task", "Protocol", "Model", "Decoder", "Items", "Status", "Metrics", "Created"]]
                             : [["ID", "Label", "Protocol", "Model", "Decoder", "Items", "Status", "Metrics"]]
            for s in rows {
                let r = s.run
                let metrics: String
                switch r.task {
                case .chair:
                    metrics = s.metrics.isEmpty ? "" : wide ? "CHAIR_S \(percent(s.metrics["chair_s"])) CHAIR_I \(percent(s.metrics["chair_i"]))"
                        : "S \(percent(s.metrics["chair_s"])) I \(percent(s.metrics["chair_i"]))"
                case .pope: metrics = s.metrics.isEmpty ? "" : "Acc \(percent(s.metrics["accuracy"])) F1 \(percent(s.metrics["f1"]))"
                }
                let items = r.expectedItems.map { s.itemCount == $0 ? "\($0)" : "\(s.itemCount)/\($0)" } ?? "\(s.itemCount)"
                if wide {
                    table.append([String(r.id), r.label ?? "", r.task.rawValue, r.protocolRecord.display, r.model.name,
                                  r.decoder.display, items, s.statusText, metrics, String(r.createdAt.prefix(19))])
                } else {
                    table.append([String(r.id), elided(r.label ?? "", 16), elided(r.protocolRecord.display, 16),
                                  elided(r.model.name, 16), elided(r.decoder.display, 18), items, s.statusText, metrics])
                }
            }
            print(alignedTable(table), terminator: "")
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a run: protocol, model, decoder, provenance and all metrics.",
            discussion: "Example:\n  mirage runs show 3\n  mirage runs show llava-greedy")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: ArgumentHelp("Run id or label.", valueName: "run")) var runReference: String

        func run() throws {
            let store = try database.openForReading()
            let r = try store.resolveRun(runReference)
            let s = try store.summaries().first { $0.run.id == r.id }!
            let p = r.protocolRecord.evalProtocol
            var lines: [(String, String)] = [
                ("Run", "\(r.id)" + (r.label.map { " (\($0))" } ?? "")),
                ("Status", s.statusText + (s.missingItems > 0 ? " (\(r.status.rawValue); \(s.missingItems) of \(r.expectedItems!) items missing, "
                                             + "its metrics cover the stored items only)" : "")),
                ("Items", r.expectedItems.map { "\(s.itemCount) of \($0), \(s.scoredCount) scored" } ?? "\(s.itemCount), \(s.scoredCount) scored"),
                ("Model", [r.model.name, r.model.architecture, r.model.fingerprint].filter { !$0.isEmpty }.joined(separator: ", ")),
                ("Precision", Self.precision(fingerprint: r.model.fingerprint)),
                ("Decoder", r.decoder.display),
                ("Seed", r.seed.map(String.init) ?? "-"),
                ("Protocol", "\(r.protocolRecord.display)  sha256 \(r.protocolRecord.hash)"),
                ("  task", p.task.rawValue),
                ("  images", "\(p.imageIDs.count)"),
            ]
            if let v = p.promptTemplate { lines.append(("  prompt", v)) }
            if let v = p.maxNewTokens { lines.append(("  max new tokens", String(v))) }
            if let v = p.questionFile { lines.append(("  question file", v + (p.questionChecksum.map { " (sha256 \($0))" } ?? ""))) }
            if let v = p.split { lines.append(("  split", v)) }
            if let v = p.answerParser { lines.append(("  answer parser", v)) }
            if let v = p.vocabularyChecksum { lines.append(("  vocabulary", "sha256 \(v)")) }
            if let v = p.groundTruthChecksum { lines.append(("  ground truth", "sha256 \(v)")) }
            if let v = r.sourcePath { lines.append(("Source", v)) }
            lines += [("Mirage", r.mirageVersion + (r.gitRevision.map { " (\($0.prefix(12)))" } ?? "")),
                      ("Host", r.host), ("Created", r.createdAt), ("Finished", r.finishedAt ?? "-")]
            let width = max(lines.map(\.0.count).max()!, (s.metrics.keys.map(\.count).max() ?? 0) + 2)
            for (k, v) in lines { print(k.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + v) }
            if !s.metrics.isEmpty {
                print("Metrics")
                for (k, v) in s.metrics.sorted(by: { $0.key < $1.key }) {
                    let shown = ["items", "failed_items", "unknown", "splits"].contains(k) ? String(Int(v)) : percent(v)
                    print("  " + k.padding(toLength: width - 2, withPad: " ", startingAt: 0) + "  " + shown)
                }
            }
        }

        /// The precision a `mirage run` run computed with, from its model's fingerprint (`+exact`, `+fast`,
        /// `+fast/<route>`; see `ExperimentRunner.modelSpec`), with a fast run's route (`FastRoute`). Runs
        /// stored before the precision was explicit have none of them.
        static func precision(fingerprint: String) -> String {
            if fingerprint.hasSuffix("+exact") { return "exact" }
            if let (_, route) = FastRoute.split(fingerprint: fingerprint) {
                guard let route else {
                    return "fast (standard route: \(FastRoute.standardDescription); fast runs stored before the route was recorded "
                        + "on a CPU without AVX512-BF16/VNNI computed with f32 FMAs)"
                }
                return "fast (route: \(route.description); the computing CPU lacked bf16/int8 dot products or they were slower than f32 FMAs there)"
            }
            if fingerprint.isEmpty { return "- (outputs imported, not computed by Mirage)" }
            return "not recorded (run stored before --precision: bf16 checkpoints computed as fast, f16 and f32 as exact)"
        }
    }

    struct Label: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give a run a unique label (use it wherever a run id is accepted).",
            discussion: "Examples:\n  mirage runs label 3 llava-greedy\n  mirage runs label llava-greedy --clear")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: ArgumentHelp("Run id or label.", valueName: "run")) var runReference: String
        @Argument(help: "The new label.") var name: String?
        @Flag(help: "Remove the label instead.") var clear = false

        func validate() throws {
            if clear == (name != nil) { throw ValidationError("give either a new label or --clear") }
            if let name, Int64(name) != nil { throw ValidationError("a label cannot be a number (numbers are run ids)") }
        }

        func run() throws {
            let store = try database.open(create: false)
            let r = try store.resolveRun(runReference)
            try store.setLabel(run: r.id, to: clear ? nil : name)
            print(clear ? "Run \(r.id) has no label now." : "Run \(r.id) is now labelled '\(name!)'.")
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a run with its items, scores and metrics.",
            discussion: """
            Asks for confirmation unless --yes is given. Protocols, models and decoders stay in the store.

            Examples:
              mirage runs delete 3
              mirage runs delete llava-greedy --yes
            """)
        @OptionGroup var database: DatabaseOptions
        @Argument(help: ArgumentHelp("Run id or label.", valueName: "run")) var runReference: String
        @Flag(name: .shortAndLong, help: "Do not ask for confirmation.") var yes = false

        func run() throws {
            let store = try database.open(create: false)
            let r = try store.resolveRun(runReference)
            let items = try store.items(run: r.id).count
            if !yes {
                print("Delete run \(r.id)\(r.label.map { " (\($0))" } ?? ""): \(r.model.name) \(r.decoder.display), "
                      + "\(items) items? [y/N] ", terminator: "")
                guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else {
                    print("Nothing deleted.")
                    throw ExitCode(1)
                }
            }
            try store.deleteRun(id: r.id)
            print("Deleted run \(r.id) (\(items) items).")
        }
    }
}

extension EvalProtocol.Task: ExpressibleByArgument {}

extension RunSummary {
    /// "partial" for a finished run that lacks expected items, else the stored status.
    var statusText: String { missingItems > 0 && run.status == .complete ? "partial" : run.status.rawValue }
}

/// `text` cut to `width` characters, the last one replaced by "…" when it was longer.
func elided(_ text: String, _ width: Int) -> String {
    text.count <= width ? text : String(text.prefix(width - 1)) + "…"
}

/// Left-aligned columns separated by two spaces, header underlined.
func alignedTable(_ rows: [[String]]) -> String {
    guard let header = rows.first else { return "" }
    var widths = header.map(\.count)
    for row in rows { for (i, c) in row.enumerated() { widths[i] = max(widths[i], c.count) } }
    func line(_ row: [String]) -> String {
        row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
            .joined(separator: "  ").trailingSpacesRemoved
    }
    return ([line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")]
            + rows.dropFirst().map(line)).joined(separator: "\n") + "\n"
}

extension String {
    var trailingSpacesRemoved: String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}
