import Foundation
import MirageTestSupport
import Testing
@testable import MirageStore

/// The store backends a test runs on: SQLite always, PostgreSQL when `MIRAGE_TEST_POSTGRES` names a server.
enum Backend: String, CustomTestStringConvertible, Sendable {
    case sqlite, postgres

    var testDescription: String { rawValue }

    /// The backends available to this test run.
    static var available: [Backend] { PostgresTestServer.url == nil ? [.sqlite] : [.sqlite, .postgres] }

    /// The location of a fresh, empty store (a new file, or a new database `mirage_test_<random>` on the server,
    /// dropped when the test case ends: the test carries `.dropsScratchDatabases`).
    func freshLocation() throws -> String {
        switch self {
        case .sqlite: return temporaryDatabasePath()
        case .postgres: return try Self.scratchDatabase()
        }
    }

    /// A new database on the test server, registered to be dropped when the current test case ends.
    static func scratchDatabase() throws -> String {
        let url = try PostgresDatabases.createScratch(serverURL: try #require(PostgresTestServer.url), prefix: "mirage_test")
        try ScratchDatabases.register(url) { try PostgresDatabases.drop($0) }
        return url
    }

    /// A fresh, empty store opened for writing.
    func fresh() throws -> any RunRepository { try RunStores.open(try freshLocation()) }
}

@Test(.dropsScratchDatabases) func postgresCasesRunWhenAServerIsConfigured() throws {
    if PostgresTestServer.url == nil { try Test.cancel(Comment(rawValue: PostgresTestServer.howToStart)) }
    let store = try Backend.postgres.fresh()
    #expect(store is PostgresRunStore && !store.isReadOnly)
}
