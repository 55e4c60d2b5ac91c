import ArgumentParser
import Foundation
import MirageRunner
import MirageStore

/// `mirage merge OUT IN...`: combines run databases (e.g. the shards of `mirage run --shard i/n`).
struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Combine run databases into one (shards of a run become one run).",
        discussion: """
        Copies every run of the input databases into OUT (created when missing). Runs with the same identity \
        (protocol, model name + architecture + weights fingerprint, decoder + parameters, seed, and resume \
        key) become one run: their items are unioned by item key, the metrics are recomputed from all items, \
        and the run is complete when it has all its expected items. This is how the shards of \
        `mirage run --shard i/n`, run on several machines, are put back together.

        An item in two databases must have the same content (output text, tokens, status, score; timings \
        and creation times may differ). If it does not, nothing is written and the conflicting run, item \
        and field are named. Runs with another identity are copied as they are; a label that OUT already \
        uses gets a -2, -3, ... suffix. Inputs are opened read-only and never changed, so a merge can be \
        repeated: items already in OUT are recognised and skipped.

        OUT and the inputs may be SQLite files or PostgreSQL stores (postgres://... URLs, see docs/store.md): \
        SQLite shards into a PostgreSQL experiment, or a PostgreSQL experiment into a SQLite file to send to \
        a colleague. A merge into PostgreSQL holds its tables against writers until it commits.

        Examples:
          mirage merge Results/mirage.sqlite shard-0.sqlite shard-1.sqlite shard-2.sqlite
          mirage merge all.sqlite laptop.sqlite server.sqlite
          mirage merge postgres://me@dbhost/mirage shard-0.sqlite shard-1.sqlite
          mirage merge for-a-colleague.sqlite postgres://me@dbhost/mirage
        """)

    @Argument(help: ArgumentHelp("The database to merge into (created when missing).", valueName: "out.sqlite"))
    var output: String

    @Argument(help: ArgumentHelp("Databases to merge from.", valueName: "in.sqlite"))
    var inputs: [String]

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("name at least one input database after the output, e.g. mirage merge all.sqlite a.sqlite b.sqlite") }
    }

    func run() throws {
        let store = try RunStores.open(output)
        let outcome = try store.merge(from: inputs, metrics: RunEvaluation.metrics)
        var table = [["Input", "Run", "→ Run", "As", "Added", "Present"]]
        for s in outcome.sources {
            table.append([s.path, String(s.sourceRunID), String(s.runID), s.combined ? "combined" : "new",
                          String(s.itemsAdded), String(s.itemsAlreadyPresent)])
        }
        print(alignedTable(table), terminator: "")
        print("")
        var runs = [["Run", "Label", "Task", "Model", "Decoder", "Items", "Status"]]
        for run in outcome.runs {
            let count = try store.recordedItemKeys(run: run.id).count
            let items = run.expectedItems.map { count == $0 ? "\($0)" : "\(count)/\($0)" } ?? "\(count)"
            runs.append([String(run.id), run.label ?? "", run.task.rawValue, run.model.name, run.decoder.display,
                         items, run.status.rawValue])
        }
        print(alignedTable(runs), terminator: "")
        print("Merged \(inputs.count) database\(inputs.count == 1 ? "" : "s") into \(store.location): "
              + "\(outcome.runs.count) run\(outcome.runs.count == 1 ? "" : "s") updated.")
    }
}
