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

    /// The location of a fresh, empty store (a new file, or a new database `mirage_test_<random>` on the server).
    func freshLocation() throws -> String {
        switch self {
        case .sqlite: return temporaryDatabasePath()
        case .postgres:
            let server = try #require(PostgresTestServer.url)
            return try PostgresDatabases.createScratch(serverURL: server, prefix: "mirage_test")
        }
    }

    /// A fresh, empty store opened for writing.
    func fresh() throws -> any RunRepository { try RunStores.open(try freshLocation()) }
}

@Test func postgresCasesRunWhenAServerIsConfigured() throws {
    if PostgresTestServer.url == nil { try Test.cancel(Comment(rawValue: PostgresTestServer.howToStart)) }
    let store = try Backend.postgres.fresh()
    #expect(store is PostgresRunStore && !store.isReadOnly)
}
