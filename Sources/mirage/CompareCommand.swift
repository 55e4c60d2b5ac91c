import ArgumentParser
import Foundation
import MirageAnalysis
import MirageStore

extension ComparisonFormat: ExpressibleByArgument {}

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare stored runs side by side: CHAIR and POPE, deltas against a baseline, paired statistics.",
        discussion: """
        Rows are methods (model + decoder); a run that is the second of its kind for a column opens its own row. \
        Columns are CHAIR (CHAIR_S, CHAIR_I, Recall, Len, object F1; percent) and, for POPE, one group per split \
        (accuracy, precision, recall, F1, yes-ratio) plus the average over the splits present.

        With --baseline, each row also gets its delta to the baseline's row, a paired bootstrap 95% interval of \
        the CHAIR_S and CHAIR_I deltas (resampling unit: image, over the images both runs captioned; \
        --bootstrap-samples, --seed) and, per POPE split, McNemar's test on the questions both runs answered (exact \
        binomial below 25 discordant pairs, else the continuity-corrected chi-square).

        Runs evaluated under different protocols (other images, prompt, max new tokens, question file, parser, \
        CHAIR data) are refused in one column, with the differences listed; --allow-mixed-protocols overrides. A \
        partial run (fewer stored items than expected: interrupted, or an answer file covering part of its questions) \
        is refused beside complete runs, naming the runs and how many items each lacks; --allow-partial overrides.

        Examples:
          mirage compare 1 2 3 --baseline 1
          mirage compare --protocol opera-chair512 \\
              --baseline opera-llava-1.5-greedy --format latex > table.tex
          mirage compare --model llava-1.5 --task pope --format md
          mirage compare 4 5 --format json
        """)

    @OptionGroup var database: DatabaseOptions
    @Argument(help: ArgumentHelp("Runs to compare (ids or labels).", valueName: "run")) var runReferences: [String] = []
    @Option(help: "Add every run of this protocol (id, name, or hash prefix).") var `protocol`: String?
    @Option(help: "Add every run of this model (combines with the other filters).") var model: String?
    @Option(help: "Add every run of this decoder (combines with the other filters).") var decoder: String?
    @Option(help: "Restrict the filters to one task (chair or pope).") var task: EvalProtocol.Task?
    @Option(help: ArgumentHelp("The run every other row is compared with (id or label); added to the selection.", valueName: "run"))
    var baseline: String?
    @Flag(help: "Put runs of different protocols in one column anyway.") var allowMixedProtocols = false
    @Flag(help: "Put runs that lack some of their expected items beside complete runs anyway (noted below the table).")
    var allowPartial = false
    @Option(help: "Bootstrap resamples for the CHAIR intervals.") var bootstrapSamples = 2000
    @Option(help: "Seed of the bootstrap.") var seed: UInt64 = 0
    @Option(help: "Output format: table, md, latex (booktabs), csv or json.") var format: ComparisonFormat = .table

    func validate() throws {
        if runReferences.isEmpty && `protocol` == nil && model == nil && decoder == nil && task == nil {
            throw ValidationError("name the runs to compare, or select them with --protocol, --model, --decoder or --task")
        }
        if bootstrapSamples < 1 { throw ValidationError("--bootstrap-samples must be at least 1") }
    }

    func run() throws {
        let store = try database.openForReading()
        var runs = try runReferences.map { try store.resolveRun($0) }
        if `protocol` != nil || model != nil || decoder != nil || task != nil {
            runs += try store.runs(RunFilter(protocolRef: `protocol`, model: model, decoder: decoder, task: task))
        }
        let base = try baseline.map { try store.resolveRun($0) }
        if let base, !runs.contains(where: { $0.id == base.id }) { runs.insert(base, at: 0) }
        if runs.isEmpty { throw CompareError.noRuns }
        let comparison = try ComparisonBuilder(store: store).compare(
            runs: runs, options: ComparisonOptions(baseline: base?.id, allowMixedProtocols: allowMixedProtocols, allowPartial: allowPartial,
                                                   bootstrapSamples: bootstrapSamples, seed: seed))
        print(comparison.render(format), terminator: "")
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write one run's items with their scores as CSV or JSON Lines.",
        discussion: """
        One record per item, in order: item key, image id, question id, prompt, output text, timings, status and \
        the score (CHAIR: mentioned and hallucinated node words with token positions, ground truth; POPE: label \
        and parsed answer).

        Examples:
          mirage export 3 > run3.csv
          mirage export llava-greedy --format jsonl --output llava-greedy.jsonl
        """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case csv, jsonl }

    @OptionGroup var database: DatabaseOptions
    @Argument(help: ArgumentHelp("Run id or label.", valueName: "run")) var runReference: String
    @Option(help: "csv or jsonl.") var format: Format = .csv
    @Option(name: .shortAndLong, help: "Write to this file instead of standard output.") var output: String?

    func run() throws {
        let store = try database.openForReading()
        let run = try store.resolveRun(runReference)
        let items = try store.items(run: run.id)
        let text = format == .csv ? ItemExport.csv(items) : ItemExport.jsonl(items)
        if let output {
            try Data(text.utf8).write(to: URL(fileURLWithPath: output))
            FileHandle.standardError.write(Data("Wrote \(items.count) items of run \(run.id) to \(output).\n".utf8))
        } else {
            print(text, terminator: "")
        }
    }
}
