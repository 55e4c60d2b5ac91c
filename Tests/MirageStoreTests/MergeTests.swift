import Foundation
import Testing
import GRDB
import MirageData
import MirageMetrics
import MirageRunner
@testable import MirageStore

/// A POPE run of 12 answers, as `mirage run` would record it, split across databases by item range.
private enum Shards {
    static let count = 12

    static func newRun(seed: Int64 = 0, decoder: String = "greedy", label: String? = nil) -> NewRun {
        NewRun(evalProtocol: EvalProtocol(task: .pope, imageIDs: Array(1...6), promptTemplate: "{question}",
                                          maxNewTokens: 8, questionFile: "q.json", questionChecksum: "abc",
                                          split: "random", answerParser: POPEAnswerParser.opera.rawValue),
               model: ModelSpec(name: "tiny-llava", architecture: "llava", fingerprint: "f00d"),
               decoder: DecoderSpec(name: decoder, parameters: ["max_new_tokens": "8"]), seed: seed, label: label,
               sourceHash: "resume-key-\(seed)-\(decoder)", expectedItems: count, mirageVersion: "test")
    }

    static func item(_ i: Int, text: String? = nil, seconds: Double = 0.5) -> (NewItem, ItemScore) {
        let label: POPELabel = i % 2 == 0 ? .yes : .no
        let answer = text ?? ((i % 3 == 0) ? "No, there is not." : "Yes, there is.")
        let item = NewItem(key: "q\(i)", ordinal: i, imageID: i / 2 + 1, questionID: i + 1, prompt: "Is there a dog?",
                           outputText: answer, outputTokens: [i, 7, 2], prefillSeconds: seconds,
                           decodeSeconds: seconds, forwardPasses: 3, seed: 0)
        return (item, .pope(PopeItemScore(label: label, parsed: POPEAnswerParser.opera.parse(answer))))
    }

    /// A database holding one run with the given items (finished like the runner finishes a shard).
    static func database(_ items: some Sequence<Int>, run: NewRun = newRun(),
                         override: [Int: (NewItem, ItemScore)] = [:], seconds: Double = 0.5) throws -> (SQLiteRunStore, Int64) {
        let store = try SQLiteRunStore(path: temporaryDatabasePath())
        let (record, _) = try store.createRun(run)
        for i in items {
            let (item, score) = override[i] ?? item(i, seconds: seconds)
            try store.recordItem(run: record.id, item, score: score)
        }
        try store.finishRun(record.id, status: .running, metrics: RunEvaluation.metrics)
        return (store, record.id)
    }

    /// Content of a run's items (timings left out), in key order.
    static func content(_ store: SQLiteRunStore, run: Int64) throws -> [String] {
        try store.items(run: run).map { s in
            "\(s.item.key)|\(s.item.ordinal)|\(s.item.outputText)|\(s.item.outputTokens ?? [])|\(String(describing: s.score))"
        }.sorted()
    }
}

@Test func mergeOfDisjointShardsEqualsTheUnsplitRun() throws {
    let (whole, wholeRun) = try Shards.database(0..<Shards.count)
    let wholeMetrics = try whole.finishRun(wholeRun, metrics: RunEvaluation.metrics)
    let (a, _) = try Shards.database(0..<5)
    let (b, _) = try Shards.database(5..<Shards.count, seconds: 2)   // timings differ: not content
    let out = try SQLiteRunStore(path: temporaryDatabasePath())
    let outcome = try out.merge(from: [a.path, b.path], metrics: RunEvaluation.metrics)
    #expect(outcome.sources.map(\.combined) == [false, true])
    #expect(outcome.sources.map(\.itemsAdded) == [5, 7])
    let runs = try out.runs()
    try #require(runs.count == 1)
    #expect(runs[0].status == .complete)
    #expect(runs[0].expectedItems == Shards.count)
    #expect(try Shards.content(out, run: runs[0].id) == Shards.content(whole, run: wholeRun))
    let merged = try out.metrics(run: runs[0].id)
    #expect(merged == wholeMetrics)
    #expect(merged["items"] == Double(Shards.count))

    // Merging again changes nothing: every item is recognised as present.
    let again = try out.merge(from: [b.path], metrics: RunEvaluation.metrics)
    #expect(again.sources.map(\.itemsAlreadyPresent) == [7])
    #expect(try out.runs().count == 1)
    #expect(try out.metrics(run: runs[0].id) == wholeMetrics)
}

@Test func mergeKeepsIdenticalDuplicatesOnce() throws {
    let (a, _) = try Shards.database(0..<8)
    let (b, _) = try Shards.database(4..<Shards.count)
    let out = try SQLiteRunStore(path: temporaryDatabasePath())
    let outcome = try out.merge(from: [a.path, b.path], metrics: RunEvaluation.metrics)
    #expect(outcome.sources.map(\.itemsAlreadyPresent) == [0, 4])
    let run = try #require(try out.runs().first)
    #expect(try out.recordedItemKeys(run: run.id).count == Shards.count)
    #expect(try out.run(id: run.id).status == .complete)
}

@Test func mergeRefusesConflictingDuplicatesAndWritesNothing() throws {
    let (a, _) = try Shards.database(0..<6)
    let (other, _) = try Shards.database(6..<Shards.count)
    // Item q3 with another answer text.
    let (b, _) = try Shards.database(3..<6, override: [3: Shards.item(3, text: "Maybe.")])
    let out = try SQLiteRunStore(path: temporaryDatabasePath())
    try out.merge(from: [a.path], metrics: RunEvaluation.metrics)
    let before = try Shards.content(out, run: try out.runs()[0].id)
    do {
        _ = try out.merge(from: [other.path, b.path], metrics: RunEvaluation.metrics)
        Issue.record("a conflicting merge was accepted")
    } catch let StoreError.mergeConflict(input, _, _, itemKey, field, _, _) {
        #expect(input == b.path)
        #expect(itemKey == "q3")
        #expect(field == "output_text")
    }
    // The first input of the refused merge (`other`) was not written either.
    #expect(try out.runs().count == 1)
    #expect(try Shards.content(out, run: try out.runs()[0].id) == before)

    // Same text, different score: named by the per-item table's column.
    var (item, _) = Shards.item(4)
    item.prefillSeconds = 9
    let (c, _) = try Shards.database([4], override: [4: (item, .pope(PopeItemScore(label: .no, parsed: .unknown)))])
    #expect {
        try out.merge(from: [c.path], metrics: RunEvaluation.metrics)
    } throws: { error in
        guard case let StoreError.mergeConflict(_, _, _, key, field, _, _) = error else { return false }
        return key == "q4" && field == "item_scores.label"
    }
    #expect(try Shards.content(out, run: try out.runs()[0].id) == before)
}

@Test func mergeKeepsRunsOfDifferentIdentityApart() throws {
    let (a, _) = try Shards.database(0..<Shards.count, run: Shards.newRun(seed: 0, label: "run"))
    let (b, _) = try Shards.database(0..<Shards.count, run: Shards.newRun(seed: 1, label: "run"))
    let (c, _) = try Shards.database(0..<4, run: Shards.newRun(decoder: "beam", label: "beam"))
    let out = try SQLiteRunStore(path: temporaryDatabasePath())
    let outcome = try out.merge(from: [a.path, b.path, c.path], metrics: RunEvaluation.metrics)
    #expect(outcome.sources.allSatisfy { !$0.combined })
    let runs = try out.runs()
    #expect(runs.map(\.label) == ["run", "run-2", "beam"])
    #expect(runs.map(\.seed) == [0, 1, 0])
    #expect(runs.map(\.status) == [.complete, .complete, .running])   // beam has 4 of 12 items
    #expect(Set(runs.map(\.protocolRecord.id)).count == 1)            // one protocol row, shared
    #expect(try out.recordedItemKeys(run: runs[2].id).count == 4)
}

@Test func mergeRefusesMissingInputsAndItself() throws {
    let (a, _) = try Shards.database(0..<2)
    #expect {
        try a.merge(from: [a.path.replacingOccurrences(of: "runs.sqlite", with: "other.sqlite")], metrics: RunEvaluation.metrics)
    } throws: { "\($0)".contains("no run database at") }
    #expect(throws: StoreError.self) { try a.merge(from: [a.path], metrics: RunEvaluation.metrics) }
}

/// `mirage run --shard i/n` stores `<key>:shard=i/n` with the shard's own expected items: the shards
/// combine into one run under the bare key (what an unsharded `mirage run` looks for), complete only when
/// every shard is in.
@Test func mergeCombinesRunnerShardsUnderTheBareResumeKey() throws {
    func shard(_ i: Int, _ items: Range<Int>) throws -> SQLiteRunStore {
        var run = Shards.newRun()
        run.sourceHash = "abc123:shard=\(i)/3"
        run.expectedItems = items.count
        return try Shards.database(items, run: run).0
    }
    let s0 = try shard(0, 0..<4), s1 = try shard(1, 4..<9), s2 = try shard(2, 9..<12)
    let out = try SQLiteRunStore(path: temporaryDatabasePath())
    try out.merge(from: [s0.path, s2.path], metrics: RunEvaluation.metrics)
    var run = try #require(try out.runs().first)
    #expect(run.sourceHash == "abc123:shards=0,2/3")
    #expect(run.expectedItems == 7)
    #expect(run.status == .running)
    try out.merge(from: [s2.path, s1.path], metrics: RunEvaluation.metrics)        // s2 again: already in
    let runs = try out.runs()
    try #require(runs.count == 1)
    run = runs[0]
    #expect(run.sourceHash == "abc123")
    #expect(run.expectedItems == Shards.count)
    #expect(run.status == .complete)
    let (whole, wholeRun) = try Shards.database(0..<Shards.count)
    #expect(try out.metrics(run: run.id) == whole.finishRun(wholeRun, metrics: RunEvaluation.metrics))

    var other = Shards.newRun()
    other.sourceHash = "abc123:shard=0/2"
    let (mismatched, _) = try Shards.database(0..<2, run: other)
    // A shard of another split joins a whole run (it is a subset), but not a partial one.
    try out.merge(from: [mismatched.path], metrics: RunEvaluation.metrics)
    #expect(try out.runs().count == 1)
    let partial = try SQLiteRunStore(path: temporaryDatabasePath())
    try partial.merge(from: [s0.path], metrics: RunEvaluation.metrics)
    #expect(throws: StoreError.self) { try partial.merge(from: [mismatched.path], metrics: RunEvaluation.metrics) }
}

@Test func resumeKeysParseTheRunnerShardSuffix() {
    #expect(ResumeKey("k:shard=1/4") == ResumeKey(base: "k", shards: [1], shardCount: 4))
    #expect(ResumeKey("k:shards=0,3/4").stored == "k:shards=0,3/4")
    #expect(ResumeKey("k").shards == nil && ResumeKey(nil).base == nil)
    #expect(ResumeKey("k:shard=5/4").base == "k:shard=5/4")       // not a shard suffix: kept whole
    #expect(ResumeKey(base: "k", shards: [0, 1], shardCount: 2).stored == "k")
}
