import Foundation
import Testing
import MirageTestSupport

/// `mirage models assemble` on the MiniGPT-4 paper-model pieces (converted to safetensors), and its refusals.
@Suite struct ModelsAssembleCLITests {
    static let pieces = SharedData.repositoryRoot.appendingPathComponent("Tests/MirageModelsTests/Fixtures/paper-models/minigpt4")

    func mirage(_ arguments: [String]) throws -> ProcessResult {
        let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        return try runProcess(binary, arguments)
    }

    @Test func assemblesMiniGPT4AndRefusesWhatItCannotUse() throws {
        let s = Self.pieces.appendingPathComponent("safetensors")
        let out = TestTemporary.url("assemble-minigpt4")
        defer { try? FileManager.default.removeItem(at: out) }
        let common = ["models", "assemble", "minigpt4", "--vicuna", s.appendingPathComponent("vicuna").path,
                      "--qformer", s.appendingPathComponent("qformer.safetensors").path,
                      "--bert", Self.pieces.appendingPathComponent("bert-base-uncased").path, "--vision-heads", "4", "--out", out.path]
        let made = try mirage(common + ["--eva", s.appendingPathComponent("eva_vit_g.safetensors").path,
                                        "--projector", s.appendingPathComponent("projector.safetensors").path])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(made.stdout.contains("minigpt4, 4 image rows"), "\(made.stdout)")
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("model.safetensors.index.json").path))

        let noProjector = try mirage(common + ["--eva", s.appendingPathComponent("eva_vit_g.safetensors").path, "--force"])
        #expect(noProjector.status != 0 && noProjector.stderr.contains("--projector"))
        let pth = try mirage(common + ["--eva", Self.pieces.appendingPathComponent("eva_vit_g.pth").path, "--force",
                                       "--projector", s.appendingPathComponent("projector.safetensors").path])
        #expect(pth.status != 0 && pth.stderr.contains("not a safetensors file"), "\(pth.stderr)")
    }
}

/// `mirage models synth --arch instructblip|blip2-llama`.
@Suite struct ModelsSynthBlip2CLITests {
    @Test(arguments: ["instructblip", "blip2-llama"])
    func tinyFoldersAreWritten(_ arch: String) throws {
        let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        let out = TestTemporary.url("synth-\(arch)")
        defer { try? FileManager.default.removeItem(at: out) }
        let made = try runProcess(binary, ["models", "synth", "--arch", arch, "--size", "tiny", "--seed", "3", "--out", out.path])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(made.stdout.contains("4 image rows"), "\(made.stdout)")
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as! [String: Any]
        #expect(config["model_type"] as? String == (arch == "instructblip" ? "instructblip" : "blip-2"))
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("qformer_tokenizer/vocab.txt").path) == (arch == "instructblip"))
        let refused = try runProcess(binary, ["models", "synth", "--arch", arch, "--size", "0.5b", "--out", out.path + "-x"])
        #expect(refused.status != 0 && refused.stderr.contains("--size takes tiny, 7b for \(arch)"))
    }
}
