import Foundation

/// The PostgreSQL server the store tests run against, named by `MIRAGE_TEST_POSTGRES` (a `postgres://` URL of a
/// database the tests may create other databases from, e.g. `postgres`). Unset: the PostgreSQL cases are left out
/// and one test reports them skipped with `howToStart`.
public enum PostgresTestServer {
    public static let variable = "MIRAGE_TEST_POSTGRES"

    public static var url: String? {
        ProcessInfo.processInfo.environment[variable].flatMap { $0.isEmpty ? nil : $0 }
    }

    public static let howToStart = """
        \(variable) is unset, so the store tests ran on SQLite only. To run them on PostgreSQL too, start a \
        throwaway server (Debian's postgresql-15 binaries; no root needed) with \
        `eval "$(Scripts/postgres-throwaway.sh start)"`, which exports \(variable), run the tests again, and stop it \
        with `Scripts/postgres-throwaway.sh stop "$PGTHROWAWAY"`. .ci/run does this.
        """
}
