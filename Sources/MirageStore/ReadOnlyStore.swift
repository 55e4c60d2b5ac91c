import Foundation
import GRDB

/// A read-only connection that never creates files next to the database.
///
/// A WAL database opened by SQLite with `SQLITE_OPEN_READONLY` still creates the `-wal` and `-shm` files when
/// they are missing and the folder is writable, and leaves them behind (sqlite.org/wal.html, "Read-Only
/// Databases"). Created by another user they lock the owner out, and a reader without write access to the
/// folder cannot open the database at all. So a reader decides from what is on disk:
///
/// - no `-wal`: no writer is connected and the database file holds every commit. It is opened with the URI
///   parameter `immutable=1` (no locks, no side files). Because a writer could start while the reader runs,
///   every read checks afterwards that no `-wal` appeared and the file's size, mtime and inode did not change,
///   and otherwise reads again through a connection that takes SQLite's locks.
/// - a readable `-wal` and `-shm` (a writer is connected, or left them): an ordinary read-only connection;
///   SQLite opens the `-shm` read-only when it is not writable (supported since SQLite 3.22), nothing is created.
/// - a `-wal` without `-shm`, our own database: an ordinary read-only connection (the `-shm` it creates is ours,
///   as a writer of ours would create it).
/// - a `-wal` that cannot be read, or without `-shm` on another user's database: the database file alone, with
///   a warning that commits still in the `-wal` are not shown.
final class ReadOnlyConnection: @unchecked Sendable {
    let path: String
    /// Said once when the connection could not see everything (the caller prints it).
    private(set) var warning: String?
    private let lock = NSLock()
    private var queue: DatabaseQueue
    private var immutable: Bool

    init(path: String) throws {
        self.path = path
        let opened = try Self.open(path: path)
        queue = opened.0; immutable = opened.immutable; warning = opened.warning
    }

    deinit { try? queue.close() }

    private struct FileState: Equatable {
        var exists: Bool
        var size: Int64 = 0, inode: UInt64 = 0, seconds = 0, nanoseconds = 0
        init(_ path: String) {
            var s = stat()
            exists = stat(path, &s) == 0
            guard exists else { return }
            size = Int64(s.st_size); inode = UInt64(s.st_ino)
            seconds = Int(s.st_mtim.tv_sec); nanoseconds = Int(s.st_mtim.tv_nsec)
        }
    }

    /// Reads, re-reading through locks when a writer changed the file under an immutable snapshot.
    /// With `retry: false` such a change throws instead (for a body that must run once, e.g. a merge).
    func read<T>(retry: Bool = true, _ body: (Database) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        guard immutable else { return try queue.read(body) }
        let before = FileState(path)
        let result = try queue.read(body)
        if !FileState(path + "-wal").exists && FileState(path) == before { return result }
        try? queue.close()
        let reopened = try Self.open(path: path)
        queue = reopened.0; immutable = reopened.immutable; warning = reopened.warning
        guard retry else {
            throw StoreError.invalid("\(path) was written by another process while it was being read; nothing was "
                + "written, run the command again (or when the other process has finished)")
        }
        // Read once more through the new connection (locked, or immutable again when the writer has gone).
        if !immutable { return try queue.read(body) }
        let again = FileState(path)
        let result2 = try queue.read(body)
        guard !FileState(path + "-wal").exists && FileState(path) == again else {
            throw StoreError.invalid("\(path) kept changing while it was being read; run the command again")
        }
        return result2
    }

    private static func open(path: String) throws -> (DatabaseQueue, immutable: Bool, warning: String?) {
        let wal = path + "-wal", shm = path + "-shm"
        let walState = FileState(wal)
        guard walState.exists else { return (try openImmutable(path: path), true, nil) }
        if access(wal, R_OK) != 0 {
            return (try openImmutable(path: path), true, """
                warning: cannot read \(wal) (\(String(cString: strerror(errno)))); commits still in it (not yet \
                copied into \(path)) are not shown. Its owner can fold them in by running any mirage command that \
                writes the database (e.g. `mirage runs label`), or make the file readable.
                """)
        }
        if FileState(shm).exists {
            if access(shm, R_OK) == 0 { return (try openLocked(path: path), false, nil) }
        } else if FileState(path).exists, ownsFile(path) {
            return (try openLocked(path: path), false, nil)
        }
        return (try openImmutable(path: path), true, walState.size == 0 ? nil : """
            warning: \(wal) holds commits not yet copied into \(path), but its index \(shm) is missing or unreadable \
            and only the database's owner should create it; those commits are not shown. The owner can fold them \
            in by running any mirage command that writes the database (e.g. `mirage runs label`).
            """)
    }

    private static func ownsFile(_ path: String) -> Bool {
        var s = stat()
        return stat(path, &s) == 0 && s.st_uid == geteuid()
    }

    private static func configuration() -> Configuration {
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(60)
        return config
    }

    /// An ordinary read-only connection (shared locks, WAL index).
    private static func openLocked(path: String) throws -> DatabaseQueue {
        try DatabaseQueue(path: path, configuration: configuration())
    }

    /// `file:PATH?immutable=1`: no locks, no side files. Needs a SQLite that interprets URI file names without
    /// SQLITE_OPEN_URI (GRDB does not pass it): Debian's libsqlite3 is built with SQLITE_USE_URI=1.
    private static func openImmutable(path: String) throws -> DatabaseQueue {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "?#%")
        let encoded = absolute.addingPercentEncoding(withAllowedCharacters: allowed) ?? absolute
        return try DatabaseQueue(path: "file:\(encoded)?immutable=1", configuration: configuration())
    }
}

extension SQLiteRunStore {
    /// Refuses a database with migrations this build does not know.
    static func checkSchema(_ db: Database, path: String) throws {
        let userVersion = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
        var unknown = try Schema.migrator.hasBeenSuperseded(db) ? try unknownMigrations(db) : []
        if userVersion > Schema.version && unknown.isEmpty { unknown = ["schema version \(userVersion)"] }
        if !unknown.isEmpty { throw try Schema.newerSchema(db, path: path, unknown: unknown) }
    }
}
