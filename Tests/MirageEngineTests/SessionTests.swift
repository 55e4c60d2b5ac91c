import Foundation
import Testing
@testable import MirageEngine

/// Paged KV cache semantics: fork shares blocks, copy-on-write, truncate, reorder, batched steps.
@Suite struct SessionTests {
    let model: LanguageModel
    let prompt = [17, 3, 99, 250, 41, 8, 66, 120, 5, 77, 200, 31, 9, 14]

    init() throws {
        model = try LanguageModel(folder: EngineFixtures.folder("llama-gqa-f32"), options: LoadOptions(threads: 2))
    }

    /// Builds a session by appending `tokens` one at a time (so every cache row comes from the same
    /// kind of call as in a fresh session fed the same way); returns the last output.
    func feed(_ session: Session, _ tokens: ArraySlice<Int>, to sequence: Int = 0) throws -> ForwardOutput? {
        var last: ForwardOutput?
        for t in tokens { last = try session.append([.token(t)], to: sequence) }
        return last
    }

    @Test func forkSharesBlocksAndTruncateMatchesFreshSession() throws {
        let session = model.makeSession(blockSize: 4)
        _ = try feed(session, prompt[0..<10])                  // blocks hold 4 + 4 + 2 positions
        #expect(session.liveBlockCount == 3)
        let fork = session.fork(0)
        #expect(fork == 1 && session.count == 2)
        #expect(session.blockReferenceCounts(of: 1) == [2, 2, 2])   // nothing copied
        #expect(session.blockIDs(of: 0) == session.blockIDs(of: 1))
        #expect(session.liveBlockCount == 3)

        // Diverge: the partially filled third block is copied for one writer; full blocks stay shared.
        try session.step([prompt[10], 123])
        #expect(session.blockReferenceCounts(of: 0) == [2, 2, 1])
        #expect(session.blockReferenceCounts(of: 1) == [2, 2, 1])
        #expect(session.liveBlockCount == 4)
        try session.append([.token(7), .token(8), .token(9)], to: 1)   // a multi-row append on the fork
        #expect(session.length(of: 1) == 14)

        // Roll the fork back into the shared prefix, then continue: equals a fresh session exactly.
        session.truncate(1, to: 6)
        #expect(session.blockReferenceCounts(of: 1) == [2, 2])
        let resumed = try session.append([.token(prompt[6])], to: 1)
        #expect(session.blockReferenceCounts(of: 1) == [2, 1])       // copy-on-write of the shared block
        let fresh = model.makeSession(blockSize: 4)
        let expected = try #require(try feed(fresh, prompt[0..<7]))
        #expect(Array(resumed.logits(0)) == Array(expected.logits(0)))

        // The original sequence was not disturbed by the fork's writes (its position 10 came from a
        // 2-row step, whose kernel sums in another order than a 1-row step: equal to rounding).
        let original = try session.append([.token(prompt[11])], to: 0)
        let freshLong = model.makeSession(blockSize: 4)
        let expectedLong = try #require(try feed(freshLong, prompt[0..<12]))
        #expect(EngineFixtures.relativeError(original.logits(0), expectedLong.logits(0)) <= 1e-6)
    }

    @Test func truncateToZeroAndRemoveReleaseBlocks() throws {
        let session = model.makeSession(blockSize: 4)
        try session.append(prompt.map { .token($0) })
        #expect(session.liveBlockCount == 4)
        session.fork(0)
        session.truncate(1, to: 0)
        #expect(session.blockIDs(of: 1).isEmpty)
        #expect(session.blockReferenceCounts(of: 0) == [1, 1, 1, 1])
        session.remove(0)
        #expect(session.liveBlockCount == 0 && session.count == 1)
        // Re-prefill of the emptied sequence reuses freed blocks.
        let again = try session.append(prompt[0..<5].map { .token($0) })
        let fresh = try model.makeSession(blockSize: 4).append(prompt[0..<5].map { .token($0) })
        #expect(Array(again.logits(0)) == Array(fresh.logits(0)))
        #expect(session.cacheBytes == 4 * session.cache.floatsPerBlock * 4)
    }

    @Test func reorderFollowsBeamIndices() throws {
        let session = model.makeSession(blockSize: 4)
        try session.append(prompt[0..<6].map { .token($0) })
        session.fork(0)
        session.fork(0)
        try session.step([10, 20, 30])
        session.reorder([2, 2, 0])
        #expect(session.count == 3)
        #expect(session.blockIDs(of: 0) == session.blockIDs(of: 1))
        #expect(session.blockReferenceCounts(of: 0).last == 2)
        let stepped = try session.step([40, 41, 42])
        for (row, history) in [[30, 40], [30, 41], [10, 42]].enumerated() {
            let fresh = model.makeSession(blockSize: 4)
            try fresh.append(prompt[0..<6].map { .token($0) })
            try fresh.step([history[0]])
            let expected = try fresh.step([history[1]])
            let error = EngineFixtures.relativeError(stepped.logits(row), expected.logits(0))
            #expect(error <= 1e-6, "row \(row): \(error)")
        }
    }

    @Test func invalidInputsAreRejectedWithoutTouchingTheCache() throws {
        let session = model.makeSession()
        #expect(throws: ModelError.self) { try session.append([.token(256)]) }
        #expect(throws: ModelError.self) { try session.append([.embedding([1, 2, 3])]) }
        #expect(throws: ModelError.self) { try session.step([1, 2]) }
        #expect(throws: ModelError.self) { try session.append([]) }
        #expect(session.length(of: 0) == 0 && session.liveBlockCount == 0)
    }
}
