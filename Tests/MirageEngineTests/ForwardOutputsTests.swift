import Foundation
import Testing
@testable import MirageEngine

/// Attention probabilities, hidden states, early exit and score edits against transformers.
@Suite struct ForwardOutputsTests {
    @Test(arguments: ["llama-gqa-f32", "qwen2-tied-f32"])
    func attentionAndHiddenStatesMatchTransformers(_ name: String) throws {
        let model = try LanguageModel(folder: EngineFixtures.folder(name), options: LoadOptions(threads: 2))
        let reference = try EngineFixtures.reference(name)
        let L = model.config.numLayers, H = model.config.hiddenSize
        let output = try model.makeSession().append(
            reference.outputIDs.map { .token($0) },
            options: ForwardOptions(logits: .all, lastLayerAttention: true, hiddenStateLayers: Array(0...L)))
        #expect(output.attention.count == reference.outputIDs.count)
        for (q, row) in output.attention.enumerated() {
            #expect(row.keyCount == q + 1 && row.heads == model.config.numHeads)
            for h in 0..<row.heads {
                let mine = row.probabilities[(h * row.keyCount)..<((h + 1) * row.keyCount)]
                let theirs = reference.lastLayerAttention[h][q][0..<row.keyCount]
                #expect(zip(mine, theirs).allSatisfy { abs($0 - $1) <= 1e-5 }, "head \(h) query \(q)")
            }
            for j in 0..<row.keyCount {
                let m = (0..<row.heads).map { row.probabilities[$0 * row.keyCount + j] }.max()!
                #expect(row.maxOverHeads[j] == m)
            }
        }
        for layer in 0..<L {
            let mine = try #require(output.hiddenStates[layer])
            let theirs = reference.hiddenStates[layer].flatMap { $0 }
            #expect(mine.count == theirs.count)
            #expect(EngineFixtures.relativeError(mine, theirs) <= 1e-5, "layer \(layer)")
        }
        // Early exit from the last layer with the final norm reproduces the model's logits.
        let last = try #require(output.hiddenStates[L])
        let early = model.earlyExitLogits(last, rows: reference.outputIDs.count, applyFinalNorm: true)
        #expect(EngineFixtures.relativeError(early, output.logits) <= 1e-6)
        // Without the norm it is a different (DoLa-as-in-transformers) readout.
        let raw = model.earlyExitLogits(last, rows: reference.outputIDs.count, applyFinalNorm: false)
        #expect(EngineFixtures.relativeError(raw, output.logits) > 1e-3)
        #expect(H * reference.outputIDs.count == last.count)
    }

    @Test func scoreEditChangesOnlyTheChosenLayerAndKeys() throws {
        let model = try LanguageModel(folder: EngineFixtures.folder("llama-gqa-f32"), options: LoadOptions(threads: 2))
        let ids: [PromptItem] = [5, 9, 40, 41, 42, 43, 11].map { .token($0) }
        let plain = try model.makeSession().append(ids, options: ForwardOptions(lastLayerAttention: true))
        // A no-op edit leaves everything bit-identical.
        let noop = AttentionScoreEdit(layers: [0, 1], keyRange: 0..<100) { _, _ in }
        let same = try model.makeSession().append(ids, options: ForwardOptions(lastLayerAttention: true, scoreEdit: noop))
        #expect(same.logits == plain.logits)
        // Masking keys 2..<5 in the last layer: their probabilities become 0 and the logits change.
        let mask = AttentionScoreEdit(layers: [1], keyRange: 2..<5) { context, scores in
            precondition(context.layer == 1 && context.keys.lowerBound == 2)
            for i in scores.indices { scores[i] = -.infinity }
        }
        let edited = try model.makeSession().append(ids, options: ForwardOptions(lastLayerAttention: true, scoreEdit: mask))
        let lastRow = try #require(edited.attention.last)
        #expect(lastRow.maxOverHeads[2..<5].allSatisfy { $0 == 0 })
        #expect(abs(lastRow.probabilities[0..<lastRow.keyCount].reduce(0, +) - 1) < 1e-5)
        #expect(edited.logits != plain.logits)
        // Query rows 0 and 1 see no keys of the range: unchanged.
        #expect(edited.attention[1].probabilities == plain.attention[1].probabilities)
    }

    @Test func batchedStepMatchesSingleSteps() throws {
        let model = try LanguageModel(folder: EngineFixtures.folder("qwen2-tied-f32"), options: LoadOptions(threads: 2))
        let session = model.makeSession()
        try session.append([1, 2, 3, 4].map { .token($0) })
        for _ in 0..<4 { session.fork(0) }
        let batch = try session.step([10, 11, 12, 13, 14], options: ForwardOptions(hiddenStateLayers: [1]))
        #expect(batch.logitRows == [0, 1, 2, 3, 4])
        for (row, token) in [10, 11, 12, 13, 14].enumerated() {
            let single = model.makeSession()
            try single.append([1, 2, 3, 4].map { .token($0) })
            let expected = try single.step([token])
            #expect(EngineFixtures.relativeError(batch.logits(row), expected.logits(0)) <= 1e-6)
        }
        #expect(batch.hiddenStates[1]?.count == 5 * model.config.hiddenSize)
    }
}
