import Foundation
@testable import MirageModels
import MirageTestSupport
import Testing
@testable import MirageEngine
@testable import MirageTokenizers

/// `SyntheticLlavaSpec.words`: each word becomes one space-led token, and only those tokens' LM-head rows
/// are scaled (exactly: the random stream of every tensor is the plain model's).
@Test func synthesizedWordsAreSingleTokensWithScaledHeadRows() throws {
    let root = TestTemporary.root.appendingPathComponent("mirage-words-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: root) }
    let plain = SyntheticLlavaSpec(text: SyntheticModelSpec(architecture: .llama, size: .tiny, seed: 5, dtype: .f32),
                                   vision: SyntheticVisionSpec(kind: .clip, size: .tiny, seed: 5, dtype: .f32))
    var worded = plain
    worded.words = ["dog", "do", "yes", "umbrella"]
    worded.wordLogitScale = 3
    try plain.write(to: root.appendingPathComponent("plain"))
    try worded.write(to: root.appendingPathComponent("words"))

    let tokenizer = try Tokenizer(folder: root.appendingPathComponent("words"))
    var ids: [Int] = []
    for word in worded.words {
        let encoded = tokenizer.encode(" " + word, addSpecialTokens: false)
        #expect(encoded.count == 1, "\(word) is \(encoded.count) tokens")
        #expect(tokenizer.decode(encoded, skipSpecialTokens: true) == " " + word)
        ids += encoded
    }
    #expect(Set(ids).count == worded.words.count)

    let hidden = plain.config.text.hiddenSize, vocab = plain.config.text.vocabSize
    func head(_ folder: String) throws -> [Float] {
        let file = try SafeTensorsFile(path: root.appendingPathComponent(folder).appendingPathComponent("model.safetensors").path)
        let entry = try #require(file.tensors["language_model.lm_head.weight"])
        #expect(entry.shape == [vocab, hidden] && entry.dtype == .f32)
        let p = file.pointer(entry).assumingMemoryBound(to: Float.self)
        return Array(UnsafeBufferPointer(start: p, count: vocab * hidden))
    }
    let a = try head("plain"), b = try head("words")
    let scaled = Set(ids)
    for row in 0..<vocab {
        let factor: Float = scaled.contains(row) ? 3 : 1
        for c in 0..<hidden where b[row * hidden + c] != a[row * hidden + c] * factor {
            Issue.record("row \(row) column \(c): \(b[row * hidden + c]) != \(factor) × \(a[row * hidden + c])")
            return
        }
    }
}
