import Foundation

/// Creating and dropping whole databases on a PostgreSQL server: fresh, empty stores for tests and benchmarks.
public enum PostgresDatabases {
    /// Creates an empty database named `prefix_<random>` on the server `serverURL` names (connecting to the database
    /// in the URL, e.g. `postgres`, which must exist) and returns the URL of the new database.
    public static func createScratch(serverURL: String, prefix: String = "mirage_scratch") throws -> String {
        let name = "\(prefix)_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16))"
        let session = try PostgresSession(location: try PostgresLocation(serverURL), readOnly: false)
        defer { session.close() }
        try session.outsideTransaction("CREATE DATABASE \(name)")
        return url(serverURL, database: name)
    }

    /// Drops the database a URL names (closing other connections to it), connecting through `postgres`.
    public static func drop(_ databaseURL: String) throws {
        let location = try PostgresLocation(databaseURL)
        let name = location.database
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
            throw StoreError.invalid("refusing to drop the database '\(name)': scratch databases are named with letters, digits and _")
        }
        let session = try PostgresSession(location: location.with(database: "postgres"), readOnly: false)
        defer { session.close() }
        try session.outsideTransaction("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// Ends every other session connected to the database `databaseURL` names (what a server restart does to its
    /// clients; for testing that workers reconnect). Returns how many it ended.
    @discardableResult
    public static func terminateOtherConnections(_ databaseURL: String) throws -> Int {
        let session = try PostgresSession(location: try PostgresLocation(databaseURL), readOnly: false)
        defer { session.close() }
        return try session.transaction { t in
            try t.query("""
                SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()
                """).filter { try $0.bool("ended") == true }.count
        }
    }

    /// `url` with its database replaced by `database` (everything else, the query included, kept).
    public static func url(_ url: String, database: String) -> String {
        guard let scheme = url.range(of: "://") else { return url }
        let query = url.firstIndex(of: "?") ?? url.endIndex
        let pathStart = url[scheme.upperBound..<query].firstIndex(of: "/") ?? query
        return String(url[..<pathStart]) + "/" + database + String(url[query...])
    }
}
