import Foundation
import Testing
import MirageTestSupport

/// `mirage models assemble` on the MiniGPT-4 paper-model pieces as released (.pth files, a Vicuna folder with .bin
/// shards and tokenizer.model), and its refusals.
@Suite struct ModelsAssembleCLITests {
    static let pieces = SharedData.repositoryRoot.appendingPathComponent("Tests/MirageModelsTests/Fixtures/paper-models/minigpt4")

    func mirage(_ arguments: [String]) throws -> ProcessResult {
        let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        return try runProcess(binary, arguments)
    }

    @Test func assemblesMiniGPT4AndRefusesWhatItCannotUse() throws {
        let p = Self.pieces
        let out = TestTemporary.url("assemble-minigpt4")
        defer { try? FileManager.default.removeItem(at: out) }
        let common = ["models", "assemble", "minigpt4", "--vicuna", p.appendingPathComponent("vicuna-7b-v0").path,
                      "--qformer", p.appendingPathComponent("blip2_pretrained_flant5xxl.pth").path,
                      "--bert", p.appendingPathComponent("bert-base-uncased").path, "--vision-heads", "4", "--out", out.path]
        let made = try mirage(common + ["--eva", p.appendingPathComponent("eva_vit_g.pth").path,
                                        "--projector", p.appendingPathComponent("prerained_minigpt4_7b.pth").path])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(made.stdout.contains("minigpt4, 4 image rows"), "\(made.stdout)")
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("model.safetensors").path))
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("tokenizer.model").path))

        let noProjector = try mirage(common + ["--eva", p.appendingPathComponent("eva_vit_g.pth").path, "--force"])
        #expect(noProjector.status != 0 && noProjector.stderr.contains("--projector"))
        let notWeights = try mirage(common + ["--eva", p.appendingPathComponent("reference.json").path, "--force",
                                              "--projector", p.appendingPathComponent("prerained_minigpt4_7b.pth").path])
        #expect(notWeights.status != 0 && notWeights.stderr.contains("cannot be read as the assembly's weights"), "\(notWeights.stderr)")
    }
}

/// `mirage models synth --arch instructblip|blip2-llama|instructblip-lavis|minigpt4`.
@Suite struct ModelsSynthBlip2CLITests {
    static let modelTypes = ["instructblip": "instructblip", "blip2-llama": "blip-2", "instructblip-lavis": "lavis-blip2",
                             "minigpt4": "lavis-blip2"]

    @Test(arguments: ["instructblip", "blip2-llama", "instructblip-lavis", "minigpt4"])
    func tinyFoldersAreWritten(_ arch: String) throws {
        let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        let out = TestTemporary.url("synth-\(arch)")
        defer { try? FileManager.default.removeItem(at: out) }
        let made = try runProcess(binary, ["models", "synth", "--arch", arch, "--size", "tiny", "--seed", "3", "--out", out.path])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(made.stdout.contains("4 image rows"), "\(made.stdout)")
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as! [String: Any]
        #expect(config["model_type"] as? String == Self.modelTypes[arch])
        let readsInstruction = arch.hasPrefix("instructblip")
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("qformer_tokenizer/vocab.txt").path) == readsInstruction)
        let refused = try runProcess(binary, ["models", "synth", "--arch", arch, "--size", "0.5b", "--out", out.path + "-x"])
        #expect(refused.status != 0 && refused.stderr.contains("--size takes tiny, 7b for \(arch)"))
    }
}
