import Foundation
import MirageTestSupport
import Testing
@testable import MirageAnalysis
import MirageDecoding
import MirageEngine
import MirageTokenizers
import MirageStore

/// A tiny synthetic LLaMA (2 layers, hidden 64, 4 heads) with its tokenizer, in a temporary folder.
func tinyModel(seed: UInt64 = 5) throws -> (LanguageModel, Tokenizer, URL) {
    let dir = TestTemporary.root.appendingPathComponent("mirage-analysis-\(UUID().uuidString)")
    try SyntheticModelSpec(architecture: .llama, size: .tiny, seed: seed, dtype: .f32).write(to: dir)
    return (try LanguageModel(folder: dir, options: LoadOptions(threads: 2)), try Tokenizer(folder: dir), dir)
}

@Suite struct AttentionCaptureTests {
    /// A prompt of 3 tokens, 6 "image" embedding rows, 2 tokens.
    func prompt(_ model: LanguageModel) -> PromptLayout {
        let h = model.config.hiddenSize
        var items: [PromptItem] = [.token(1), .token(40), .token(41)]
        for r in 0..<6 { items.append(.embedding((0..<h).map { Float(sin(Double(r * h + $0))) * 0.05 })) }
        items += [.token(50), .token(51)]
        return PromptLayout(items: items, imageSpan: 3..<9)
    }

    @Test func teacherForcedRowsEqualStepByStepRows() throws {
        let (model, tokenizer, dir) = try tinyModel()
        defer { try? FileManager.default.removeItem(at: dir) }
        let layout = prompt(model)
        let text = "the cat sat on the mat, and a dog lay by the door of the old red barn"
        let response = tokenizer.encode(text, addSpecialTokens: false) + [model.eosTokenIDs.first!]
        #expect(response.count > 16)                          // the multi-row (GEMM) pass, not the decode path
        let map = try AttentionCapture().capture(model: model, prompt: layout, response: response, tokenizer: tokenizer)
        #expect(map.count == response.count)
        #expect(map.text == text)                             // EOS adds no text
        #expect(map.labels.last == "<\(response.last!)>")

        // Independent: a decode-style session fed one token per step; max over heads taken here from the
        // per-head probabilities.
        let session = model.makeSession()
        try session.append(layout.items, options: ForwardOptions(logits: .none))
        let R = layout.responseStart
        for (i, t) in response.enumerated() {
            let row = try session.step([t], options: ForwardOptions(lastLayerAttention: true)).attention[0]
            #expect(row.keyCount == R + i + 1)
            var m = [Float](repeating: 0, count: row.keyCount)
            for k in 0..<row.keyCount {
                m[k] = (0..<row.heads).map { row.probabilities[$0 * row.keyCount + k] }.max()!
            }
            func close(_ a: Float, _ b: Float) -> Bool { abs(a - b) <= 1e-5 * max(1, abs(b)) }
            #expect(close(map.imageMass[i], m[3..<9].reduce(0, +)))
            #expect(close(map.promptMass[i], m[0..<3].reduce(0, +) + m[9..<R].reduce(0, +)))
            #expect(close(map.rowTotal[i], m.reduce(0, +)))
            for j in 0...i { #expect(close(map.value(row: i, column: j), m[R + j])) }
        }
    }

    @Test func storeRoundTripAndRecorder() throws {
        let (model, tokenizer, dir) = try tinyModel()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("runs.sqlite").path
        let store = try RunStores.open(path)
        let (run, _) = try store.createRun(NewRun(evalProtocol: EvalProtocol(task: .chair, imageIDs: [7], maxNewTokens: 8),
                                                  model: ModelSpec(name: "tiny"), decoder: DecoderSpec(name: "greedy"),
                                                  mirageVersion: "test"))
        let layout = prompt(model)
        let decoder = try DecoderRegistry.standard.makeDecoder("greedy")
        let result = try decoder.decode(DecodingContext(model: model, prompt: layout,
                                                        limits: GenerationLimits(maxNewTokens: 8, eosTokenIDs: Set(model.eosTokenIDs)),
                                                        tokenizer: tokenizer))
        try store.recordItem(run: run.id, NewItem(key: "7", ordinal: 0, imageID: 7, prompt: "p", outputText: result.text,
                                                  outputTokens: result.tokens))
        #expect(try AttentionRecorder.load(store, run: run.id, itemKey: "7") == nil)
        try AttentionRecorder(store: store).itemRecorded(run: run.id, itemKey: "7", model: model, prompt: layout,
                                                         result: result, tokenizer: tokenizer)
        let direct = try AttentionCapture().capture(model: model, prompt: layout, response: result.tokens, tokenizer: tokenizer)
        let loaded = try #require(try AttentionRecorder.load(store, run: run.id, itemKey: "7"))
        #expect(loaded == direct)                                   // bit-exact through the Float32 LE blob
        #expect(try store.itemsWithAttention(run: run.id) == ["7"])
        #expect(throws: StoreError.self) { try store.recordAttention(run: run.id, itemKey: "8", direct.stored) }
        var wrong = direct.stored
        wrong.data.removeLast()
        #expect(throws: AnalysisError.self) { _ = try AttentionMap(wrong) }
        try store.deleteRun(id: run.id)                             // cascades
        #expect(try store.itemsWithAttention(run: run.id).isEmpty)
    }
}
