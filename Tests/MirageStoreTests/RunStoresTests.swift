import Foundation
import Testing
@testable import MirageStore

/// Where `--db` and `MIRAGE_DB` lead.
@Suite struct RunStoresTests {
    @Test func theOptionWinsThenTheEnvironmentThenTheDefault() {
        #expect(RunStores.location("a.sqlite", environment: ["MIRAGE_DB": "b.sqlite"]) == "a.sqlite")
        #expect(RunStores.location(nil, environment: ["MIRAGE_DB": "b.sqlite"]) == "b.sqlite")
        #expect(RunStores.location(nil, environment: ["MIRAGE_DB": ""]) == RunStores.defaultPath)
        #expect(RunStores.location(nil, environment: [:]) == "Results/mirage.sqlite")
    }

    @Test func aServerURLIsNeverShownWithItsPassword() throws {
        let url = "postgres://me:secret@localhost:5432/mirage"
        #expect(RunStores.isServerURL(url) && RunStores.isServerURL("POSTGRESQL://h/db") && !RunStores.isServerURL("postgres.sqlite"))
        #expect(RunStores.redacted(url) == "postgres://me:***@localhost:5432/mirage")
        #expect(RunStores.redacted("postgres://me:p%40ss@%2Ftmp%2Fpg/db?sslmode=disable&password=x")
                == "postgres://me:***@%2Ftmp%2Fpg/db?sslmode=disable&password=***")
        #expect(RunStores.redacted("postgres://me@host/db") == "postgres://me@host/db")
        // Nothing listens on port 1: the error names the server and the way out, never the password.
        let error = try #require(throws: StoreError.self) { try RunStores.open("postgres://me:secret@127.0.0.1:1/mirage?sslmode=disable") }
        #expect(error.description.contains("127.0.0.1:1") && error.description.contains("PGHOST") && !error.description.contains("secret"))
    }

    @Test func aPostgresURLTakesWhatItLeavesOutFromThePGVariables() throws {
        let env = ["PGHOST": "db.example", "PGPORT": "6543", "PGUSER": "ann", "PGPASSWORD": "pw", "PGDATABASE": "exp",
                   "PGSSLMODE": "require"]
        let full = try PostgresLocation("postgres://bob:x@h:5433/d?sslmode=disable", environment: env)
        #expect(full.host == "h" && full.port == 5433 && full.user == "bob" && full.password == "x" && full.database == "d"
                && full.sslMode == .disable && !full.isUnixSocket)
        let bare = try PostgresLocation("postgres://", environment: env)
        #expect(bare.host == "db.example" && bare.port == 6543 && bare.user == "ann" && bare.password == "pw"
                && bare.database == "exp" && bare.sslMode == .require)
        let socket = try PostgresLocation("postgres://me@%2Fvar%2Frun%2Fpostgresql/runs", environment: [:])
        #expect(socket.isUnixSocket && socket.socketPath == "/var/run/postgresql/.s.PGSQL.5432" && socket.database == "runs"
                && socket.user == "me" && socket.sslMode == .prefer)
        let query = try PostgresLocation("postgresql://me@/runs?host=/tmp/pg&port=7000", environment: [:])
        #expect(query.socketPath == "/tmp/pg/.s.PGSQL.7000")
        let v6 = try PostgresLocation("postgres://me@[::1]:7001/runs", environment: [:])
        #expect(v6.host == "::1" && v6.port == 7001)
        #expect(throws: StoreError.self) { try PostgresLocation("postgres://me@h:port/db", environment: [:]) }
        #expect(throws: StoreError.self) { try PostgresLocation("postgres://me@h/db?sslmode=verify-full", environment: [:]) }
        #expect(PostgresDatabases.url("postgres://me:pw@%2Ftmp/postgres?sslmode=disable", database: "t1")
                == "postgres://me:pw@%2Ftmp/t1?sslmode=disable")
    }

    @Test func aFileOpensAsTheSQLiteStore() throws {
        let path = temporaryDatabasePath()
        let store = try RunStores.open(path)
        #expect(store is SQLiteRunStore && store.location == path && !store.isReadOnly)
        #expect(try RunStores.openForReading(path).isReadOnly)
    }
}
