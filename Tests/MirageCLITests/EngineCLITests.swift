import Foundation
import Testing
import MirageTestSupport

/// `mirage generate`, `inspect logits` and `models synth` end to end, against transformers' outputs
/// stored with the engine fixtures (Scripts/fixtures/make_tiny_models.py).
@Suite struct EngineCLITests {
    static let qwen2 = SharedData.repositoryRoot.appendingPathComponent("Tests/MirageEngineTests/Fixtures/models/qwen2-tied-f32")

    static func reference() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: qwen2.appendingPathComponent("reference.json"))) as! [String: Any]
    }

    func mirage(_ arguments: [String]) throws -> ProcessResult {
        let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        return try runProcess(binary, arguments)
    }

    @Test func generateMatchesTransformersGreedy() throws {
        let text = try Self.reference()["text"] as! [String: Any]
        let expected = (text["greedy"] as! [Any]).map { ($0 as! NSNumber).intValue }
        let result = try mirage(["generate", "--model", Self.qwen2.path, "--prompt", text["text"] as! String,
                                 "--max-new-tokens", "16", "--ignore-eos", "--ids", "--threads", "2"])
        #expect(result.status == 0, "\(result.stderr)")
        let ids = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [Int]
        #expect(ids == expected)
        #expect(result.stderr.contains("tokens/s"))
        // Streaming text mode runs too (the text of random weights is not checked).
        let streamed = try mirage(["generate", "--model", Self.qwen2.path, "--prompt", "hello", "--max-new-tokens", "4"])
        #expect(streamed.status == 0, "\(streamed.stderr)")
        #expect(!streamed.stdout.isEmpty)
    }

    @Test func inspectLogitsJSONMatchesTransformers() throws {
        let text = try Self.reference()["text"] as! [String: Any]
        let prompts = try Self.reference()["prompts"] as! [[String: Any]]
        let prompt = prompts[2]
        let ids = (prompt["ids"] as! [Any]).map { ($0 as! NSNumber).intValue }
        let logits = ((prompt["logits"] as! [Any]).last as! [Any]).map { ($0 as! NSNumber).doubleValue }
        let result = try mirage(["inspect", "logits", "--model", Self.qwen2.path,
                                 "--ids", ids.map(String.init).joined(separator: ","), "--top", "5", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        let top = json["top"] as! [[String: Any]]
        let expectedOrder = logits.indices.sorted { logits[$0] > logits[$1] }.prefix(5)
        #expect(top.map { $0["id"] as! Int } == Array(expectedOrder))
        let scale = logits.map(abs).max()!
        for entry in top {
            let id = entry["id"] as! Int
            #expect(abs((entry["logit"] as! Double) - logits[id]) <= 1e-4 * scale)
            #expect((entry["logprob"] as! Double) < 0)
        }
        #expect(json["vocab_size"] as? Int == 3008)
        // With --prompt the tokenizer gives the ids transformers' AutoTokenizer gives.
        let byText = try mirage(["inspect", "logits", "--model", Self.qwen2.path, "--prompt", text["text"] as! String, "--json"])
        let textJSON = try JSONSerialization.jsonObject(with: Data(byText.stdout.utf8)) as! [String: Any]
        #expect(textJSON["prompt_ids"] as? [Int] == (text["ids"] as! [Any]).map { ($0 as! NSNumber).intValue })
    }

    @Test func synthWritesALoadableFolderAndRefusesToOverwrite() throws {
        let dir = TestTemporary.root.appendingPathComponent("mirage-synth-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let synth = try mirage(["models", "synth", "--arch", "llama", "--size", "tiny", "--seed", "5", "--out", dir.path, "--dtype", "bf16"])
        #expect(synth.status == 0, "\(synth.stderr)")
        let logits = try mirage(["inspect", "logits", "--model", dir.path, "--prompt", "a cat", "--top", "3"])
        #expect(logits.status == 0, "\(logits.stderr)")
        let again = try mirage(["models", "synth", "--arch", "llama", "--size", "tiny", "--out", dir.path])
        #expect(again.status != 0)
        #expect(again.stderr.contains("--force"))
    }

    @Test func clearErrors() throws {
        let missing = try mirage(["generate", "--model", "/nonexistent/model", "--prompt", "x"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("/nonexistent/model does not exist"))
        let badQuant = try mirage(["generate", "--model", Self.qwen2.path, "--prompt", "x", "--quantize", "q4"])
        #expect(badQuant.status != 0)
        #expect(badQuant.stderr.contains("q8"))
        let outOfVocab = try mirage(["inspect", "logits", "--model", Self.qwen2.path, "--ids", "1,99999"])
        #expect(outOfVocab.status != 0)
        #expect(outOfVocab.stderr.contains("outside the vocabulary"))
    }

    /// `models quantize --q8` writes a folder whose greedy tokens equal `--quantize q8` on the original.
    @Test func modelsQuantizeMatchesQuantizingAtLoad() throws {
        let output = TestTemporary.url("cli-q8")
        let written = try mirage(["models", "quantize", "--q8", Self.qwen2.path, output.path, "--threads", "2"])
        #expect(written.status == 0, "\(written.stderr)")
        #expect(written.stdout.contains("matrices quantized"))
        let args = ["--prompt", "hello there", "--max-new-tokens", "12", "--ignore-eos", "--ids", "--threads", "2"]
        let atLoad = try mirage(["generate", "--model", Self.qwen2.path, "--quantize", "q8"] + args)
        let mapped = try mirage(["generate", "--model", output.path] + args)
        #expect(atLoad.status == 0 && mapped.status == 0, "\(atLoad.stderr)\n\(mapped.stderr)")
        #expect(mapped.stdout == atLoad.stdout)
        let again = try mirage(["models", "quantize", "--q8", Self.qwen2.path, output.path])
        #expect(again.status != 0 && again.stderr.contains("--force"))
        let noFormat = try mirage(["models", "quantize", Self.qwen2.path, output.path])
        #expect(noFormat.status != 0 && noFormat.stderr.contains("--q8"))
    }
}
