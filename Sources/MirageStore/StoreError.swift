import Foundation
import MirageData

/// Everything that can go wrong in the run store, each case worded so the user knows what to do next.
public enum StoreError: Error, CustomStringConvertible, Equatable {
    /// The database was written by a newer Mirage (it has migrations this build does not know). `writtenBy` is the
    /// Mirage release recorded beside those migrations (nil when none was recorded), `generation` the schema
    /// generation the database has (nil when unknown).
    case newerSchema(path: String, unknownMigrations: [String], writtenBy: String? = nil, generation: Int? = nil)
    case databaseMissing(path: String)
    case runNotFound(String)
    case labelTaken(String, run: Int64)
    case invalid(String)
    /// `mirage merge`: an item key is in both databases with different content (nothing was written).
    case mergeConflict(input: String, run: String, outputRun: Int64, itemKey: String, field: String,
                       output: String, incoming: String)
    case sqlite(path: String, message: String)
    /// A PostgreSQL store whose server cannot be reached (or went away and did not come back in time).
    case postgresUnreachable(location: String, server: String, message: String)
    /// A write through a store opened with `SQLiteRunStore(readingOnly:)` (a command that should only read).
    case readOnlyStore(path: String)

    public var description: String {
        switch self {
        case let .newerSchema(path, unknown, writtenBy, generation):
            let writer = (writtenBy.map { "Mirage \($0)" } ?? "a newer Mirage (which did not record its version)")
                + (generation.map { ", schema generation \($0)" } ?? "")
            return "the database \(path) was written by \(writer); this is Mirage \(MirageRelease.version), which knows "
                + "schema generations up to \(Schema.version), and the database has schema migrations it does not know: "
                + "\(unknown.joined(separator: ", ")). Nothing was changed. Upgrade Mirage"
                + (writtenBy.map { " to \($0) or later" } ?? "") + ", or pass --db with another store."
        case let .databaseMissing(path):
            return "no run database at \(path). Import or run something first (e.g. `mirage import ...` or "
                + "`mirage reproduce opera`), or point --db at an existing database."
        case let .runNotFound(ref):
            return "no run matches '\(ref)'. `mirage runs list` shows the runs in this database (use an id or a label)."
        case let .labelTaken(label, run):
            return "the label '\(label)' already names run \(run); labels are unique. Choose another, or relabel run \(run) first."
        case let .invalid(message):
            return message
        case let .mergeConflict(input, run, outputRun, itemKey, field, output, incoming):
            func short(_ s: String) -> String { s.count > 80 ? String(s.prefix(77)) + "..." : s }
            return "cannot merge \(input): run \(run) has the identity of run \(outputRun) in the output (same protocol, "
                + "model, decoder, seed and resume key), but item '\(itemKey)' differs in \(field) "
                + "(output: \(short(output)); \(input): \(short(incoming))). Nothing was written. The two runs did "
                + "not produce the same outputs, so they are not parts of one run: delete one of them "
                + "(`mirage runs delete ID --db FILE`) or keep them in separate databases."
        case let .sqlite(path, message):
            return "database error in \(path): \(message)"
        case let .postgresUnreachable(location, server, message):
            return "cannot reach \(server) for \(location): \(message). Check that the server runs "
                + "(pg_ctl status, or start one as docs/store.md shows) and that --db / MIRAGE_DB and PGHOST, PGPORT, "
                + "PGUSER, PGPASSWORD, PGDATABASE name it. Everything committed before is kept: run the same command "
                + "again to resume."
        case let .readOnlyStore(path):
            return "\(path) was opened read-only by a command that only reads, and something tried to write it; "
                + "this is a bug in mirage, please report the command you ran"
        }
    }
}
