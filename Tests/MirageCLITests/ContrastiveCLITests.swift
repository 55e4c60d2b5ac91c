import Foundation
import Testing
import MirageTestSupport

/// `mirage generate --decoder vcd` with a contrast branch, on the tiny model of the decoding fixtures; the
/// expected tokens are torch's (Scripts/fixtures/make_contrastive_fixtures.py).
@Test func generateRunsVCDWithABranchFromTheCommandLine() throws {
    let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
    let fixtures = SharedData.repositoryRoot.appendingPathComponent("Tests/MirageDecodingTests/Fixtures")
    let reference = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent("contrastive.json"))) as! [String: Any]
    let expected = (reference["vcd_e2e"] as! [String: Any])["tokens"] as! [Int]
    let base = ["generate", "--model", fixtures.appendingPathComponent("contrastive-llama").path,
                "--embeds", fixtures.appendingPathComponent("vcd-prompt.json").path,
                "--max-new-tokens", "12", "--ignore-eos", "--threads", "1"]
    let result = try runProcess(binary, base + ["--branch", "contrast=" + fixtures.appendingPathComponent("vcd-contrast.json").path,
                                                "--decoder", "vcd", "--preset", "vcd-greedy", "--json"])
    #expect(result.status == 0, "\(result.stderr)")
    let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
    #expect(json["tokens"] as? [Int] == expected)
    let parameters = json["parameters"] as! [String: Any]
    #expect(parameters["sample"] as? Bool == false)
    #expect((json["trace"] as! [String: Any])["counters"] != nil)

    let missing = try runProcess(binary, base + ["--decoder", "vcd"])
    #expect(missing.status != 0)
    #expect(missing.stderr.contains("needs a 'contrast' branch prompt"))
    let malformed = try runProcess(binary, base + ["--decoder", "vcd", "--branch", "noised.json"])
    #expect(malformed.status != 0)
    #expect(malformed.stderr.contains("take role=value"))
}
