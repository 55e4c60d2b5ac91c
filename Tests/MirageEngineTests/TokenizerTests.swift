import Foundation
import MirageTestSupport
import Testing
@testable import MirageEngine
@testable import MirageTokenizers

/// Parity with transformers 5.24 / tokenizers 0.23.3 on the recorded corpus, for every fixture folder.
@Suite struct TokenizerParityTests {
    static let folders = ["llama", "llama-json", "llama-legacy", "llama-metaspace", "qwen2", "gpt2-style", "llama3-style",
                          "llama-spm", "llama-spm-legacy", "llama-spm-user"]

    @Test(arguments: folders)
    func encodeMatchesTransformers(_ name: String) throws {
        let tokenizer = try TokenizerFixtures.tokenizer(name)
        let cases = try TokenizerFixtures.cases(name)
        #expect(cases.count > 150)
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

    /// Over the whole corpus: spans stay inside the input, move forward, and cover every byte.
    @Test(arguments: TokenizerParityTests.folders)
    func byteRangesCoverTheCorpus(_ name: String) throws {
        let tokenizer = try TokenizerFixtures.tokenizer(name)
        var failures: [String] = []
        for text in TokenizerFixtures.texts {
            let count = text.utf8.count
            var covered = [Bool](repeating: false, count: count)
            var previous = 0
            for token in tokenizer.encodeTokens(text) where !token.isTemplate {
                let range = token.byteRange
                guard range.lowerBound >= previous, range.upperBound <= count, !range.isEmpty else {
                    failures.append("\(text.debugDescription): \(token)")
                    break
                }
                previous = range.lowerBound
                for k in range { covered[k] = true }
            }
            if covered.contains(false) { failures.append("\(text.debugDescription): bytes not covered") }
        }
        let count = failures.count
        #expect(count == 0, "\(name): \(failures.prefix(3))")
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
        let empty = TestTemporary.root.appendingPathComponent("mirage-no-tokenizer-\(UUID())")
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

@Suite struct SyntheticTokenizerTests {
    @Test(arguments: [259, 600, 2048])
    func writesWorkingTokenizerOfExactSize(_ size: Int) throws {
        let folder = TestTemporary.root.appendingPathComponent("mirage-synth-tok-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        try SyntheticTokenizer.write(to: folder, vocabularySize: size)
        let tokenizer = try Tokenizer(folder: folder)
        #expect(tokenizer.vocabularySize == size)
        #expect(tokenizer.id(for: "<|im_end|>") == size - 1 && tokenizer.eosTokenID == size - 3)
        #expect(!tokenizer.addsBosToken)
        // Byte-level BPE round-trips any (NFC) text.
        for text in TokenizerFixtures.texts {
            let ids = tokenizer.encode(text)
            #expect(ids.allSatisfy { $0 >= 0 && $0 < size })
            #expect(tokenizer.decode(ids) == text.precomposedStringWithCanonicalMapping)
        }
        if size >= 600 {  // merges were learned: common words are single tokens
            #expect(tokenizer.encode(" the image").count < 4)
        }
        // Deterministic output.
        #expect(try SyntheticTokenizer.files(vocabularySize: size) == SyntheticTokenizer.files(vocabularySize: size))
    }

    @Test func rejectsTooSmallVocabulary() {
        #expect(throws: TokenizerError.self) { try SyntheticTokenizer.files(vocabularySize: 100) }
    }
}

/// Split behaviours on "the-final--countdown-" with the literal "-"; expected pieces printed by
/// tokenizers 0.23.3 (`pre_tokenizers.Split("-", behavior, invert).pre_tokenize_str`).
@Suite struct TokenizerSplitBehaviourTests {
    static let expected: [(String, Bool, [String])] = [
        ("Removed", false, ["the", "final", "countdown"]),
        ("Removed", true, ["-", "-", "-", "-"]),
        ("Isolated", false, ["the", "-", "final", "-", "-", "countdown", "-"]),
        ("Isolated", true, ["the", "-", "final", "-", "-", "countdown", "-"]),
        ("MergedWithPrevious", false, ["the-", "final-", "-", "countdown-"]),
        ("MergedWithPrevious", true, ["the", "-final", "-", "-countdown", "-"]),
        ("MergedWithNext", false, ["the", "-final", "-", "-countdown", "-"]),
        ("MergedWithNext", true, ["the-", "final-", "-", "countdown-"]),
        ("Contiguous", false, ["the", "-", "final", "--", "countdown", "-"]),
        ("Contiguous", true, ["the", "-", "final", "--", "countdown", "-"]),
    ]

    @Test func splitBehavioursMatchTokenizers() throws {
        for (behavior, invert, pieces) in Self.expected {
            let splitter = TokenizerPreTokenizer.split(.literal(["-"]), behavior: TokenizerSplitBehavior(rawValue: behavior)!,
                                                       invert: invert)
            let words = splitter.apply([AlignedText("the-final--countdown-")]).map(\.string)
            #expect(words == pieces, "\(behavior) invert=\(invert)")
        }
    }
}

@Suite struct TokenizerJSONParserTests {
    /// The tokenizer-file JSON reader agrees with Foundation's JSONSerialization.
    @Test func agreesWithJSONSerialization() throws {
        let text = #"""
        {"a": "plain", "b": "esc \" \\ \/ \b \f \n \r \t \u0120\u010a \ud83d\ude00 é", "n": [0, -12, 3.5, 1e3, -2.5E-2],
         "t": true, "f": false, "z": null, "nested": {"x": [[], {}, [1, [2]]]}, "": ""}
        """#
        let ours = try #require(try TokenizerJSONParser.parse(Data(text.utf8), file: "test") as? [String: Any])
        let reference = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(ours["b"] as? String == reference["b"] as? String)
        #expect(ours["b"] as? String == "esc \" \\ / \u{8} \u{C} \n \r \t ĠĊ 😀 é")
        #expect((ours["n"] as! [Any]).map { TokenizerJSON.number($0)! } == (reference["n"] as! [NSNumber]).map(\.doubleValue))
        #expect(ours["t"] as? Bool == true && ours["f"] as? Bool == false && ours["z"] is NSNull)
        #expect(Set(ours.keys) == Set(reference.keys))
        for bad in ["{", "{\"a\" 1}", "[1,]x", "\"abc", "{\"a\": tru}", "[1] 2"] {
            #expect(throws: TokenizerError.self) { try TokenizerJSONParser.parse(Data(bad.utf8), file: "bad") }
        }
    }
}

/// The SentencePiece reader on damaged and unsupported files.
@Suite struct SentencePieceModelTests {
    static func modelData() throws -> Data {
        try Data(contentsOf: TokenizerFixtures.folder("llama-spm").appendingPathComponent("tokenizer.model"))
    }

    @Test func readsTheTrainerSettings() throws {
        let model = try SentencePieceModel(data: try Self.modelData())
        #expect(model.modelType == .bpe)
        #expect(model.byteFallback)
        #expect(model.addDummyPrefix)
        #expect((model.unkID, model.bosID, model.eosID, model.padID) == (0, 1, 2, -1))
        #expect(model.pieces[1] == SentencePieceModel.Piece(text: "<s>", score: 0, type: .control))
        #expect(model.pieces.filter { $0.type == .byte }.count == 256)
    }

    /// Every truncation either parses (a cut between whole pieces) or throws a message naming the file; none traps.
    @Test func truncatedFilesThrowInsteadOfTrapping() throws {
        let data = try Self.modelData()
        var refused = 0
        for length in stride(from: 0, to: data.count, by: 7) {
            do {
                _ = try SentencePieceModel(data: data.prefix(length))
            } catch {
                refused += 1
                #expect("\(error)".contains("tokenizer.model"))
            }
        }
        #expect(refused > data.count / 7 / 2)
    }

    @Test func unigramModelsAreRefusedWithAWayOut() throws {
        // pieces {piece: "a", score: 0, type: NORMAL}, trainer_spec {model_type: UNIGRAM}
        let bytes: [UInt8] = [0x0a, 0x08, 0x0a, 0x01, 0x61, 0x15, 0, 0, 0, 0, 0x18, 0x01, 0x12, 0x02, 0x18, 0x01]
        let model = try SentencePieceModel(data: Data(bytes))
        #expect(model.modelType == .unigram)
        #expect(throws: TokenizerError.self) { try Tokenizer(sentencePieceModel: Data(bytes)) }
        do { _ = try Tokenizer(sentencePieceModel: Data(bytes)) } catch {
            #expect("\(error)".contains("tokenizer.json"))
        }
    }

    @Test func wrongWireTypesAreNamed() {
        #expect(throws: TokenizerError.self) { try SentencePieceModel(data: Data([0x0b, 0x00])) }   // wire type 3
        #expect(throws: TokenizerError.self) { try SentencePieceModel(data: Data([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])) }
    }
}
