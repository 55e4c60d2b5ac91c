import Foundation
import Testing
@testable import MirageEngine

/// Parity with transformers 5.24 / tokenizers 0.23.3 on the recorded corpus, for every fixture folder.
@Suite struct TokenizerParityTests {
    static let folders = ["llama", "llama-json", "llama-legacy", "qwen2", "gpt2-style"]

    @Test(arguments: folders)
    func encodeMatchesTransformers(_ name: String) throws {
        let tokenizer = try TokenizerFixtures.tokenizer(name)
        let cases = try TokenizerFixtures.cases(name)
        #expect(cases.count > 200)
        var mismatches: [String] = []
        for c in cases {
            let ids = tokenizer.encode(c.text)
            if ids != c.ids {
                mismatches.append("\(c.text.debugDescription)\n  expected \(c.ids)\n  got      \(ids)")
            }
        }
        let failures = mismatches.count
        #expect(failures == 0, "\(name): \(failures) of \(cases.count) differ:\n\(mismatches.prefix(3).joined(separator: "\n"))")
    }

    @Test(arguments: folders)
    func decodeMatchesTransformers(_ name: String) throws {
        let tokenizer = try TokenizerFixtures.tokenizer(name)
        var mismatches: [String] = []
        for c in try TokenizerFixtures.cases(name) {
            let decoded = tokenizer.decode(c.ids)
            let skipped = tokenizer.decode(c.ids, skipSpecialTokens: true)
            if decoded != c.decoded { mismatches.append("decode \(c.ids): \(decoded.debugDescription) ≠ \(c.decoded.debugDescription)") }
            if skipped != c.decodedSkip { mismatches.append("skip \(c.ids): \(skipped.debugDescription) ≠ \(c.decodedSkip.debugDescription)") }
        }
        let failures = mismatches.count
        #expect(failures == 0, "\(name): \(failures) differ:\n\(mismatches.prefix(3).joined(separator: "\n"))")
    }
}

@Suite struct TokenizerBehaviourTests {
    /// Streaming reproduces transformers' full decode, and holds back incomplete characters.
    @Test(arguments: ["llama", "qwen2"])
    func streamingDecodeEqualsFullDecode(_ name: String) throws {
        let tokenizer = try TokenizerFixtures.tokenizer(name)
        for c in try TokenizerFixtures.cases(name) {
            for skip in [false, true] {
                var stream = tokenizer.streamDecoder(skipSpecialTokens: skip)
                var text = ""
                for id in c.ids {
                    let delta = stream.append(id)
                    #expect(delta.unicodeScalars.last != "\u{FFFD}" || c.text.contains("\u{FFFD}"))
                    text += delta
                }
                text += stream.finish()
                #expect(text == (skip ? c.decodedSkip : c.decoded), "\(name) skip=\(skip): \(c.text.debugDescription)")
            }
        }
    }

    @Test func streamingHoldsBackByteFallbackSequences() throws {
        let tokenizer = try TokenizerFixtures.tokenizer("llama")
        // 😀 is not in the small vocabulary: it is four <0xNN> tokens.
        let ids = tokenizer.encode("a 😀 b", addSpecialTokens: false)
        let bytes = ["<0xF0>", "<0x9F>", "<0x98>", "<0x80>"].map { tokenizer.id(for: $0)! }
        #expect(ids.contains(bytes[0]))
        var stream = tokenizer.streamDecoder()
        var outputs: [String] = []
        for id in ids { outputs.append(stream.append(id)) }
        let firstByte = ids.firstIndex(of: bytes[0])!
        #expect(outputs[firstByte] == "" && outputs[firstByte + 1] == "" && outputs[firstByte + 2] == "")
        #expect(outputs[firstByte + 3].hasSuffix("😀"))
        #expect(outputs.joined() + stream.finish() == "a 😀 b")
    }

    @Test func specialTokensInTextAreMatched() throws {
        let qwen = try TokenizerFixtures.tokenizer("qwen2")
        let start = try #require(qwen.id(for: "<|im_start|>")), end = try #require(qwen.id(for: "<|im_end|>"))
        let ids = qwen.encode("<|im_start|>user\nHi<|im_end|>")
        #expect(ids.first == start && ids.last == end)
        #expect(qwen.decode(ids, skipSpecialTokens: true) == "user\nHi")
        #expect(qwen.bosTokenID == nil && qwen.eosToken == "<|im_end|>" && !qwen.addsBosToken)

        let llama = try TokenizerFixtures.tokenizer("llama")
        #expect(llama.bosTokenID == 1 && llama.eosTokenID == 2 && llama.addsBosToken)
        let image = try #require(llama.id(for: "<image>"))
        let prompt = llama.encode("USER: <image>\nWhat is this?")
        #expect(prompt.first == 1 && prompt.filter { $0 == image }.count == 1)
        #expect(llama.encode("x", addSpecialTokens: false).first != 1)
    }

    @Test func byteRangesPointIntoTheInput() throws {
        for name in ["llama", "qwen2"] {
            let tokenizer = try TokenizerFixtures.tokenizer(name)
            let text = "Café 😀 <|im_end|> two  dogs"
            let utf8 = Array(text.utf8)
            var covered = 0
            for token in tokenizer.encodeTokens(text) where !token.isTemplate {
                #expect(token.byteRange.lowerBound >= 0 && token.byteRange.upperBound <= utf8.count)
                covered = max(covered, token.byteRange.upperBound)
            }
            #expect(covered == utf8.count, "\(name)")
            // A whole-word token covers exactly its word.
            let dogs = tokenizer.encodeTokens("two dogs").filter { !$0.isTemplate }.last!
            #expect(String(decoding: Array("two dogs".utf8)[dogs.byteRange], as: UTF8.self).hasSuffix("s"))
        }
    }

    @Test func missingTokenizerFile() throws {
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("mirage-no-tokenizer-\(UUID())")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        #expect(throws: TokenizerError.missingFile(path: empty.appendingPathComponent("tokenizer.json").path)) {
            try Tokenizer(folder: empty)
        }
    }

    @Test func unsupportedConfigurationsNameTheComponent() throws {
        let unigram = #"{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}"#
        #expect(throws: TokenizerError.unsupported(component: "model", detail: "type Unigram (only BPE is implemented)")) {
            try Tokenizer(tokenizerJSON: Data(unigram.utf8))
        }
        let regex = #"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\d+"}, "behavior": "Isolated", "invert": false}}"#
        do {
            _ = try Tokenizer(tokenizerJSON: Data(regex.utf8))
            Issue.record("an unknown regex must be rejected")
        } catch let error as TokenizerError {
            guard case .unsupported(let component, _) = error else { Issue.record("\(error)"); return }
            #expect(component == "Split pre-tokenizer")
            #expect(error.description.contains("\\d+"))
        }
        #expect(throws: TokenizerError.self) { try Tokenizer(tokenizerJSON: Data("not json".utf8)) }
    }
}
