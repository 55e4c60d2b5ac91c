import Foundation
import MirageEngine
import Testing
import MirageTokenizers

/// The Q-Former's BERT WordPiece tokenizer against transformers 5.24's BertTokenizer on tricky strings: accents and
/// combining marks, ASCII and Unicode punctuation, CJK (and Hangul / kana, which are not split), words of 99, 100,
/// 101 and 150 characters, whitespace and control characters, emoji, ligatures, the empty string.
@Suite struct BertTokenizerTests {
    static var cases: [(text: String, ids: [Int], tokens: [String])] {
        get throws {
            let object = try Blip2Fixtures.json(Blip2Fixtures.root.appendingPathComponent("bert/cases.json"))
            return (object["cases"] as! [[String: Any]]).map {
                ($0["text"] as! String, $0["ids"] as! [Int], $0["tokens"] as! [String])
            }
        }
    }

    @Test func vocabTxtFolderMatchesTransformers() throws {
        let tokenizer = try BertTokenizer(folder: Blip2Fixtures.root.appendingPathComponent("bert"))
        #expect(tokenizer.lowercase && tokenizer.stripAccents && tokenizer.splitChineseCharacters)
        for c in try Self.cases {
            #expect(tokenizer.tokenize(c.text) == c.tokens, "\(c.text.debugDescription)")
            #expect(tokenizer.encode(c.text) == c.ids, "\(c.text.debugDescription)")
        }
    }

    @Test func savedQFormerTokenizerFolderMatchesTransformers() throws {
        let tokenizer = try BertTokenizer(folder: Blip2Fixtures.folder("instructblip-f32-tied")
            .appendingPathComponent("qformer_tokenizer"))
        for c in try Self.cases { #expect(tokenizer.encode(c.text) == c.ids, "\(c.text.debugDescription)") }
        #expect(tokenizer.encode("dog", addSpecialTokens: false).count == 1)
    }

    @Test func withoutLowercasingAccentsAndCaseStay() throws {
        let vocabulary = ["[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "Café": 3, "café": 4, "cafe": 5]
        let cased = try BertTokenizer(vocabulary: vocabulary, lowercase: false)
        #expect(cased.encode("Café", addSpecialTokens: false) == [3])
        let stripped = try BertTokenizer(vocabulary: vocabulary, lowercase: false, stripAccents: true)
        #expect(stripped.encode("Café", addSpecialTokens: false) == [0])
        let lower = try BertTokenizer(vocabulary: vocabulary, lowercase: true, stripAccents: false)
        #expect(lower.encode("Café", addSpecialTokens: false) == [4])
        #expect(throws: TokenizerError.self) { try BertTokenizer(vocabulary: ["a": 0]) }
    }
}
