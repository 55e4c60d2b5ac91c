import ArgumentParser
import Foundation
import MirageAnalysis
import MirageCLISupport
import MirageStore

struct Attention: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render one item's recorded last-layer attention as a PNG heatmap, with its summary tokens.",
        discussion: """
        The item must have been run with attention recorded (`mirage run --record-attention`). Rows and columns \
        are the response tokens (row = query); a cell is OPERA's window entry: the maximum over the last layer's \
        heads, divided by the row's total over all keys. The bar right of each row is the row's share on the \
        image tokens. Red: tokens of hallucinated CHAIR mentions (needs a CHAIR score and Punkt, see \
        --nltk-data). Blue: summary-token columns found with OPERA's column score (--window, --scale, \
        --threshold; docs/overtrust.md). The colour mapping is in docs/visuals.md.

        Examples:
          mirage attention llava-opera 139 --out dog.png
          mirage attention 3 139 --threshold 10 --window 64
          mirage attention 3 --list                 # items of run 3 that have attention
        """)

    @OptionGroup var database: DatabaseOptions
    @Argument(help: ArgumentHelp("The run (id or label).", valueName: "run")) var runReference: String
    @Argument(help: ArgumentHelp("The item key (the image id for CHAIR runs).", valueName: "item")) var item: String?
    @Option(name: .shortAndLong, help: ArgumentHelp("The PNG to write (default: attention-RUN-ITEM.png).", valueName: "file.png"))
    var out: String?
    @Flag(help: "List the run's items that have recorded attention, and stop.") var list = false
    @OptionGroup var detectorOptions: DetectorOptions
    @OptionGroup var punkt: PunktOptions

    func validate() throws {
        if !list && item == nil { throw ValidationError("name the item to render (or pass --list to see which have attention)") }
    }

    func run() throws {
        try runReportingErrors {
            let store = try database.openForReading()
            let run = try store.resolveRun(runReference)
            if list {
                let keys = try store.itemsWithAttention(run: run.id)
                if keys.isEmpty { print("run \(run.id) has no recorded attention") } else { print(keys.joined(separator: "\n")) }
                return
            }
            let key = item!
            guard let record = try store.attention(run: run.id, itemKey: key) else {
                let stored = try store.items(run: run.id).first { $0.item.key == key }
                throw MissingAttention(run: run, item: key, stored: stored)
            }
            let map = try AttentionMap(record)
            let detection = try detectorOptions.detector().detect(map)
            let stored = try store.items(run: run.id).first { $0.item.key == key }
            var hallucinated = Set<Int>()
            if let stored, case let .chair(score)? = stored.score, score.mentions.contains(where: \.hallucinated) {
                do {
                    let located = try punkt.aligner().item(key: key, caption: stored.item.outputText, mentions: score.mentions,
                                                           map: map, summary: detection.tokens)
                    hallucinated = Set(located.mentions.filter(\.hallucinated).map(\.token))
                } catch {
                    FileHandle.standardError.write(Data("warning: hallucinated words are not marked: \(error)\n".utf8))
                }
            }
            let title = "\(run.details.label ?? "run \(run.id)") item \(key)"
            let (png, _) = try OvertrustFigures.heatmap(map, summary: detection.tokens, hallucinated: hallucinated, title: title).png()
            let path = out ?? "attention-\(run.id)-\(key).png"
            try Data(png).write(to: URL(fileURLWithPath: path))
            let columns = detection.tokens.map { "\($0.column) '\(map.labels[$0.column])' (step \($0.step))" }
            print("wrote \(path): \(map.count) tokens; summary tokens: \(columns.isEmpty ? "none" : columns.joined(separator: ", "))"
                  + (hallucinated.isEmpty ? "" : "; hallucinated tokens: \(hallucinated.sorted().map(String.init).joined(separator: ", "))"))
        }
    }
}

/// Why an item has no attention map, and the command that records it.
struct MissingAttention: Error, CustomStringConvertible {
    let run: RunRecord
    let item: String
    let stored: StoredItem?

    var description: String {
        let name = "run \(run.id)\(run.label.map { " (\($0))" } ?? "")"
        guard let stored else {
            return "\(name) has no recorded attention for item '\(item)': the run has no such item. `mirage export "
                + "\(run.id)` lists its items (keys: image ids for CHAIR, question ids for POPE); `mirage attention "
                + "\(run.id) --list` the ones with attention."
        }
        if stored.item.failureReason != nil {
            return "item '\(item)' of \(name) failed (\(stored.item.failureReason!)), so it has no response to map. "
                + "Fix the cause and rerun the run's `mirage run` command with --retry-failed --record-attention."
        }
        if run.model.fingerprint.isEmpty {
            return "\(name) was imported from a file (no model ran in Mirage), so no attention can be recorded for it. "
                + "Attention comes from `mirage run --record-attention` over a model folder."
        }
        // The runner records the experiment file (or "mirage run" for flags) with " (shard i/n)" for shards.
        let source = run.sourcePath.map { $0.replacingOccurrences(of: #" \(shard [0-9]+/[0-9]+\)$"#, with: "", options: .regularExpression) }
        let command = source.flatMap { $0 == "mirage run" || $0.isEmpty ? nil : "mirage run \($0) --record-attention" }
            ?? "mirage run ... --record-attention"
        return "\(name) has no recorded attention for item '\(item)' (the run was made without --record-attention, "
            + "or stopped between the item and its attention). Run the same command again with --record-attention "
            + "(`\(command)`, with the same models, protocols, decoders, seeds and --db): it records the attention "
            + "of every stored item that lacks it, without decoding again. `mirage attention \(run.id) --list` shows "
            + "the items that have it."
    }
}
