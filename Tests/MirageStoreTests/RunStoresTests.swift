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

    @Test func aServerURLIsRefusedWithoutItsPassword() throws {
        let url = "postgres://me:secret@localhost:5432/mirage"
        #expect(RunStores.isServerURL(url) && RunStores.isServerURL("POSTGRESQL://h/db") && !RunStores.isServerURL("postgres.sqlite"))
        #expect(RunStores.redacted(url) == "postgres://me:***@localhost:5432/mirage")
        for open in [{ _ = try RunStores.open(url) }, { _ = try RunStores.openForReading(url) }] as [() throws -> Void] {
            let error = try #require(throws: StoreError.self) { try open() }
            #expect(error.description.contains("not available in this build yet") && !error.description.contains("secret"))
        }
    }

    @Test func aFileOpensAsTheSQLiteStore() throws {
        let path = temporaryDatabasePath()
        let store = try RunStores.open(path)
        #expect(store is SQLiteRunStore && store.location == path && !store.isReadOnly)
        #expect(try RunStores.openForReading(path).isReadOnly)
    }
}
