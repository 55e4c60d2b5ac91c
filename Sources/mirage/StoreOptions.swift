import ArgumentParser
import Foundation
import MirageStore

/// `--db`, shared by every command that reads or writes the run store.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The run store: a SQLite file (created on first use), or a PostgreSQL database "
                                            + "as postgres://user[:password]@host[:port]/db[?sslmode=disable|prefer|require] "
                                            + "(PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE fill in what it leaves out). "
                                            + "Default: $MIRAGE_DB, else \(RunStores.defaultPath).",
                                            valueName: "path|url"))
    var db: String?

    /// Where the store is: --db, else MIRAGE_DB, else the default file.
    var location: String { RunStores.location(db) }

    /// Opens the store for writing; commands that change existing runs pass `create: false` so a typo in --db is
    /// reported, not created.
    func open(create: Bool) throws -> any RunRepository { try RunStores.open(location, create: create) }

    /// Opens the store for a command that only reads: read-only, no migration, no `-wal`/`-shm` files created
    /// (so a database the user cannot write can be read, and other users' files are left alone).
    func openForReading() throws -> any RunRepository { try RunStores.openForReading(location, warn: { note($0) }) }
}

/// Where this binary came from, recorded with every run.
enum Provenance {
    /// The git commit of the checkout the running binary was built in (`<repo>/.build/<config>/mirage`),
    /// or nil when the binary no longer sits in a checkout.
    static var gitRevision: String? {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let fm = FileManager.default
        for _ in 0..<6 {
            let dotGit = dir.appendingPathComponent(".git")
            if fm.fileExists(atPath: dotGit.path) { return revision(dotGit: dotGit) }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    private static func revision(dotGit: URL) -> String? {
        var gitDir = dotGit
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dotGit.path, isDirectory: &isDir) else { return nil }
        if !isDir.boolValue {   // a worktree: ".git" is a file "gitdir: <path>"
            guard let text = try? String(contentsOf: dotGit, encoding: .utf8), text.hasPrefix("gitdir:") else { return nil }
            gitDir = URL(fileURLWithPath: text.dropFirst(7).trimmingCharacters(in: .whitespacesAndNewlines),
                         relativeTo: dotGit.deletingLastPathComponent())
        }
        guard let head = try? String(contentsOf: gitDir.appendingPathComponent("HEAD"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines) else { return nil }
        guard head.hasPrefix("ref: ") else { return head }
        let ref = String(head.dropFirst(5))
        // Refs live in the common dir for worktrees.
        var dirs = [gitDir]
        if let common = try? String(contentsOf: gitDir.appendingPathComponent("commondir"), encoding: .utf8) {
            dirs.append(URL(fileURLWithPath: common.trimmingCharacters(in: .whitespacesAndNewlines), relativeTo: gitDir))
        }
        for d in dirs {
            if let sha = try? String(contentsOf: d.appendingPathComponent(ref), encoding: .utf8) {
                return sha.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            if let packed = try? String(contentsOf: d.appendingPathComponent("packed-refs"), encoding: .utf8),
               let line = packed.split(separator: "\n").first(where: { $0.hasSuffix(" " + ref) }) {
                return String(line.prefix(40))
            }
        }
        return nil
    }
}

/// Formats a fraction as the references print it (`f'{v*100:.01f}'`), "n/a" when undefined.
func percent(_ value: Double?) -> String {
    guard let value, !value.isNaN else { return "n/a" }
    return String(format: "%.1f", value * 100)
}
