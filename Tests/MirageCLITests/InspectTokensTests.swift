import Foundation
import Testing
import MirageTestSupport

/// `mirage inspect tokens` on the committed Qwen2-style fixture tokenizer; the expected ids are
/// transformers' (Tests/MirageEngineTests/Fixtures/tokenizers/qwen2/expected.json, text "Hello world").
@Suite struct InspectTokensTests {
    static let qwen2 = SharedData.repositoryRoot.appendingPathComponent("Tests/MirageEngineTests/Fixtures/tokenizers/qwen2").path

    @Test func printsIdsTokensAndSpansAsJSON() throws {
        let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        let result = try runProcess(binary, ["inspect", "tokens", "--model", Self.qwen2, "--json", "Hello world"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["ids"] as? [Int] == [39, 348, 303, 1077, 980])
        #expect(object["decoded"] as? String == "Hello world")
        let tokens = try #require(object["tokens"] as? [[String: Any]])
        #expect(tokens.map { $0["token"] as? String } == ["H", "el", "lo", "Ġwor", "ld"])
        #expect(tokens.map { $0["start"] as? Int } == [0, 1, 3, 5, 9])
        #expect(tokens.map { $0["text"] as? String } == ["H", "el", "lo", " wor", "ld"])
    }

    @Test func decodesIdsAndExplainsAMissingTokenizer() throws {
        let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        let decoded = try runProcess(binary, ["inspect", "tokens", "--model", Self.qwen2, "--ids", "39", "348", "303", "3001"])
        #expect(decoded.status == 0)
        #expect(decoded.stdout.contains(#"decoded: "Hello<|im_start|>""#))
        let missing = try runProcess(binary, ["inspect", "tokens", "--model", "/nonexistent-model", "x"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("no tokenizer.json (nor a SentencePiece tokenizer.model) at /nonexistent-model/tokenizer.json"))
    }
}
