import Foundation
import MirageTestSupport
import Testing

/// `mirage generate --decoder/--preset/--param/--embeds/--json` and `mirage decoders` end to end.
@Suite struct DecodersCLITests {
    static let qwen2 = SharedData.repositoryRoot.appendingPathComponent("Tests/MirageEngineTests/Fixtures/models/qwen2-tied-f32")

    func mirage(_ arguments: [String]) throws -> ProcessResult {
        let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        return try runProcess(binary, arguments)
    }

    /// An opera-golden beam baseline (transformers 4.29.2) run from its case file reproduces its tokens.
    @Test(.enabled(if: SharedData.has("opera-golden/cases/L2_in101_beam_b3_n24.json"), SharedData.missingMessage))
    func embedsCaseMatchesGoldenBeamBaseline() throws {
        let file = SharedData.url("opera-golden/cases/L2_in101_beam_b3_n24.json")
        let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as! [String: Any]
        let expected = (golden["output"] as! [String: Any])["generated_token_ids"] as! [Int]
        let result = try mirage(["generate", "--model", SharedData.url("opera-golden/models/tiny_llama_L2").path,
                                 "--embeds", file.path, "--decoder", "beam", "--param", "num_beams=3",
                                 "--max-new-tokens", "24", "--json", "--threads", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        #expect(json["tokens"] as? [Int] == expected)
        #expect(json["decoder"] as? String == "beam")
        let parameters = json["parameters"] as! [String: Any]
        #expect(parameters["num_beams"] as? Int == 3)
        #expect(parameters["semantics"] as? String == "transformers-4")
        #expect(json["forward_passes"] as? Int == 24)
        #expect(json["trace"] is [String: Any])
    }

    @Test func sampleWithPresetSeedAndItemIsReproducible() throws {
        let args = ["generate", "--model", Self.qwen2.path, "--prompt", "the cat", "--decoder", "sample",
                    "--preset", "nucleus-0.9", "--param", "temperature=1.3", "--seed", "5", "--item", "img1",
                    "--max-new-tokens", "10", "--ids"]
        let a = try mirage(args), b = try mirage(args)
        #expect(a.status == 0, "\(a.stderr)")
        #expect(a.stdout == b.stdout)
        let ids = try JSONSerialization.jsonObject(with: Data(a.stdout.utf8)) as! [Int]
        #expect(ids.count == 10)
        let other = try mirage(args.map { $0 == "img1" ? "img2" : $0 })
        #expect(other.stdout != a.stdout)
    }

    /// A contrast branch given as text makes VCD run; the same branch as the prompt cancels the contrast
    /// (s = (1+α)z − αz = z), so VCD then samples exactly like the cut-off control with the same seed.
    @Test func branchPromptFeedsContrastiveDecoders() throws {
        let common = ["generate", "--model", Self.qwen2.path, "--prompt", "the cat", "--max-new-tokens", "8", "--ids",
                      "--seed", "2", "--param", "beta=0.1"]
        let vcd = try mirage(common + ["--decoder", "vcd", "--branch-prompt", "contrast=the cat"])
        #expect(vcd.status == 0, "\(vcd.stderr)")
        let apc = try mirage(common + ["--decoder", "apc"])
        #expect(apc.status == 0, "\(apc.stderr)")
        #expect(vcd.stdout == apc.stdout)
    }

    @Test func decodersListsParametersPresetsAndSources() throws {
        let text = try mirage(["decoders"])
        #expect(text.status == 0)
        for name in ["greedy:", "sample:", "beam:", "top_p", "num_beams", "source:", "halc-baseline"] {
            #expect(text.stdout.contains(name), "\(name)")
        }
        let json = try mirage(["decoders", "--json"])
        let list = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [[String: Any]]
        #expect(Set(list.map { $0["name"] as! String }).isSuperset(of: ["greedy", "sample", "beam"]))
    }

    @Test func errorsNameTheFix() throws {
        let unknown = try mirage(["generate", "--model", Self.qwen2.path, "--prompt", "x", "--decoder", "nope"])
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("choose one of greedy"))
        let badParam = try mirage(["generate", "--model", Self.qwen2.path, "--prompt", "x", "--decoder", "beam", "--param", "beams=3"])
        #expect(badParam.stderr.contains("num_beams"))
        let noBranch = try mirage(["generate", "--model", Self.qwen2.path, "--prompt", "x", "--decoder", "vcd"])
        #expect(noBranch.status != 0)
        #expect(noBranch.stderr.contains("--branch-prompt contrast=TEXT"))
        let both = try mirage(["generate", "--model", Self.qwen2.path, "--prompt", "x", "--embeds", "/tmp/x.json"])
        #expect(both.stderr.contains("exactly one of --prompt"))
    }
}
