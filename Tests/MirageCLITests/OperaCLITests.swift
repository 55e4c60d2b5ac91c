import Foundation
import MirageTestSupport
import Testing

/// `mirage generate --decoder opera --embeds CASE --json` on an opera-golden case with rollbacks.
@Suite struct OperaCLITests {
    static let caseID = "L2_in102_opera_b3_n64_sf50_thr5_C2_pw1"

    @Test("an OPERA golden case with 11 rollbacks runs from the command line with --param and matches the published code",
          .enabled(if: SharedData.has("opera-golden/cases/\(caseID).json"), SharedData.missingMessage))
    func embedsCaseMatchesGoldenOpera() throws {
        let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        let file = SharedData.url("opera-golden/cases/\(Self.caseID).json")
        let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as! [String: Any]
        let expected = (golden["output"] as! [String: Any])["generated_token_ids"] as! [Int]
        let positions = (golden["rollbacks"] as! [[String: Any]]).map { $0["rollback_pos"] as! Int }
        let result = try runProcess(binary, [
            "generate", "--model", SharedData.url("opera-golden/models/tiny_llama_L2").path, "--embeds", file.path,
            "--decoder", "opera", "--preset", "opera-paper", "--param", "num_beams=3", "--param", "threshold=5",
            "--param", "num_attn_candidates=2", "--max-new-tokens", "64", "--json", "--threads", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        #expect(json["tokens"] as? [Int] == expected)
        let parameters = json["parameters"] as! [String: Any]
        #expect(parameters["mode"] as? String == "reference")
        #expect(parameters["threshold"] as? Int == 5)
        let events = (json["trace"] as! [String: Any])["events"] as! [[String: Any]]
        #expect(events.filter { $0["kind"] as? String == "rollback" }.map { $0["position"] as? Int } == positions)
    }
}
