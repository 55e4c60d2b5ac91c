import Foundation
import Testing
import MirageTestSupport

/// `mirage bench contrastive` on the tiny model of the decoding fixtures (a seconds-long run).
@Test func benchContrastivePrintsEveryDecoderAgainstGreedy() throws {
    let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
    let model = SharedData.repositoryRoot.appendingPathComponent("Tests/MirageDecodingTests/Fixtures/contrastive-llama")
    let result = try runProcess(binary, ["bench", "contrastive", "--model", model.path, "--new-tokens", "5",
                                         "--image-rows", "4", "--threads", "1"])
    #expect(result.status == 0, "\(result.stderr)")
    let lines = result.stdout.split(separator: "\n").map(String.init)
    #expect(lines.count == 5)
    #expect(lines.dropFirst().map { String($0.prefix { $0 != " " }) } == ["greedy", "vcd", "apc", "dola"])
    // Greedy: 1 prefill + 4 steps; VCD: shared prefix, two remainders, then one pass per step for both rows.
    let greedy = lines[1].split(separator: " ").map(String.init)
    let vcd = lines[2].split(separator: " ").map(String.init)
    let greedyRows = 35 + 4 + 20 + 4
    let vcdRows = 35 + 2 * (4 + 20) + 2 * 4
    #expect(greedy[4] == "5")
    #expect(greedy[5] == String(greedyRows))
    #expect(vcd[4] == "7")
    #expect(vcd[5] == String(vcdRows))

    let bad = try runProcess(binary, ["bench", "contrastive", "--new-tokens", "0"])
    #expect(bad.status != 0)
    #expect(bad.stderr.contains("--new-tokens and --image-rows must be ≥ 1"))
}
