import Foundation
import Testing
import MirageData
import MirageMetrics
import MirageRunner
@testable import MirageStore

/// Item claims: what several workers on one store rely on to never decode an item twice.
@Suite struct ItemClaimTests {
    static func refs(_ run: Int64, _ keys: ClosedRange<Int>) -> [ItemRef] { keys.map { ItemRef(run: run, key: String($0)) } }

    @Test(.dropsScratchDatabases, arguments: Backend.available) func aClaimedItemIsNotClaimedByAnotherWorkerUntilItsLeaseExpires(backend: Backend) throws {
        let store = try backend.fresh()
        let run = try store.createRun(sampleRun(source: "claims")).run.id
        let all = Self.refs(run, 1...6)
        #expect(try store.claimItems(Array(all[0..<3]), worker: "a", lease: 60) == Array(all[0..<3]))
        // b asks for everything and gets only what a does not hold, in candidate order.
        #expect(try store.claimItems(all, worker: "b", lease: 60) == Array(all[3...]))
        #expect(try store.claimItems(all, worker: "c", lease: 60).isEmpty)
        // A worker may claim again what it holds (renewing it).
        #expect(try store.claimItems([all[0]], worker: "a", lease: 60) == [all[0]])
        let progress = try store.workProgress(runs: [run])
        #expect(progress.claimed == 6 && progress.workers == 2 && progress.recorded[run] == 0)

        // Recording drops the claim; a recorded item is never claimed again.
        try store.recordItem(run: run, NewItem(key: "1", ordinal: 1, imageID: 1, outputText: "a cat"))
        #expect(try store.workProgress(runs: [run]).claimed == 5)
        #expect(try store.claimItems([all[0]], worker: "c", lease: 60).isEmpty)

        // a dies: its leases run out and c takes the items over.
        #expect(try store.claimItems(Array(all[1..<3]), worker: "a", lease: 0.2) == Array(all[1..<3]))
        Thread.sleep(forTimeInterval: 0.3)
        #expect(try store.claimItems(all, worker: "c", lease: 60) == Array(all[1..<3]))
        #expect(try store.workProgress(runs: [run]).workers == 2)   // b and c

        // Renewing extends every claim of the worker; releasing gives them back.
        #expect(try store.renewClaims(worker: "b", lease: 60) == 3)
        #expect(try store.renewClaims(worker: "a", lease: 60) == 0)
        try store.releaseClaims(worker: "b")
        #expect(try store.claimItems(all, worker: "c", lease: 60) == Array(all[1...]))
        #expect(try store.workProgress(runs: [run]) == WorkProgress(recorded: [run: 1], claimed: 5, workers: 1))
    }

    @Test func claimsDoNotTravelWithAMerge() throws {
        let source = try SQLiteRunStore(path: temporaryDatabasePath())
        let run = try source.createRun(sampleRun(source: "merge-claims")).run.id
        _ = try source.claimItems(Self.refs(run, 1...2), worker: "a", lease: 60)
        try source.recordItem(run: run, NewItem(key: "3", ordinal: 3, imageID: 3, outputText: "a dog"))
        let out = try SQLiteRunStore(path: temporaryDatabasePath())
        let outcome = try out.merge(from: [source.path], metrics: RunEvaluation.metrics)
        let merged = try #require(outcome.runs.first).id
        #expect(try out.workProgress(runs: [merged]) == WorkProgress(recorded: [merged: 1], claimed: 0, workers: 0))
    }
}

/// Two processes writing one SQLite file: the busy handler's policy (it must keep retrying quickly, and give up
/// after about a minute so a stuck writer surfaces as an error rather than a hang).
@Suite struct SQLiteWriterWaitTests {
    @Test func retriesQuicklyThenGivesUpAfterAboutAMinute() {
        #expect(SQLiteRunStore.waitForWriter(0))
        #expect(SQLiteRunStore.waitForWriter(1_999))
        #expect(SQLiteRunStore.waitForWriter(2_000))
        #expect(SQLiteRunStore.waitForWriter(61_899))
        #expect(!SQLiteRunStore.waitForWriter(61_900))
        #expect(!SQLiteRunStore.waitForWriter(1_000_000))
    }

    @Test func twoStoresOnOneFileInterleaveWritesWithoutBusyErrors() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("mirage-writer-wait-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("runs.sqlite").path
        let first = try SQLiteRunStore(path: path)
        let second = try SQLiteRunStore(path: path)
        let run = try first.createRun(sampleRun(source: "writer-wait")).run
        DispatchQueue.concurrentPerform(iterations: 2) { side in
            let store = side == 0 ? first : second
            for i in 0..<100 {
                _ = try? store.claimItems([ItemRef(run: run.id, key: "k\(side)-\(i)")], worker: "w\(side)", lease: 30)
                _ = try? store.recordItem(run: run.id, NewItem(key: "k\(side)-\(i)", ordinal: side * 100 + i, imageID: i, outputText: "a cat"))
            }
        }
        #expect(try first.recordedItemKeys(run: run.id).count == 200)
    }
}
