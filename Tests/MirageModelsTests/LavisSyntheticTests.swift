import Foundation
import MirageEngine
import MirageModels
import MirageTestSupport
import Testing
import MirageTokenizers

/// Random-weight LAVIS-layout folders (`mirage models synth --arch instructblip-lavis|minigpt4`): tiny ones load through
/// the registry as their family and decode; the 7B shapes equal what OPERA's own modules build.
@Suite struct LavisSyntheticTests {
    @Test(arguments: ["instructblip-lavis", "minigpt4"])
    func tinySyntheticFoldersLoadThroughTheRegistryAndDecode(_ arch: String) throws {
        let folder = TestTemporary.url("lavis-synth-\(arch)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (writer, synthesizer) = try #require(ModelFamilies.synthesizer(for: arch), "no family synthesizes \(arch)")
        #expect(synthesizer.sizes == ["tiny", "7b"])
        let description = try synthesizer.write(SynthesisRequest(architecture: arch, size: "tiny", seed: 5, dtype: .f32), folder, { _ in })
        #expect(description.contains("4 image rows"), "\(description)")
        let instruct = arch == "instructblip-lavis"
        let (family, modelFolder) = try ModelFamilies.family(of: folder)
        #expect(family.name == arch && writer.name == arch)
        #expect(LavisConfig.isLavis(modelFolder, instruct ? .instructBlip : .miniGPT4))
        let model = try ModelFamilies.load(folder, options: LoadOptions(threads: 1))
        #expect(model.imageTokenCount == 4 && model.imageRowsReadInstruction == instruct)
        #expect(try ModelFamilies.shape(of: folder).imageTokenCount == 4)
        let lavis = try #require(model as? LavisBlip2Model)
        #expect(lavis.encoder.vision.config.numLayers == 2 && lavis.encoder.vision.config.imageSize == 32)
        let pixels = try model.pixels(ofImageAt: Blip2Fixtures.image(0), padToSquare: false)
        #expect(pixels.height == 32 && pixels.width == 32)
        let a = try model.embedImage(pixels, instruction: "describe the image")
        let b = try model.embedImage(pixels, instruction: "is there a dog?")
        #expect(a.values.allSatisfy { $0.isFinite } && a.tokenCount == 4 && a.width == 64)
        #expect((a == b) == !instruct, "the image rows must depend on the instruction exactly for InstructBLIP")

        let tokenizer = try Tokenizer(folder: folder)
        let eos = try #require(tokenizer.id(for: "</s>")), bos = try #require(tokenizer.bosTokenID)
        #expect(model.languageModel.eosTokenIDs == [eos] && model.languageModel.bosTokenID == bos)
        let prompt = try model.prompt(model.defaultTemplate.render("describe the image"), tokenizer: tokenizer, image: a)
        if instruct {
            // image rows, then </s> (LAVIS' BOS) and the question
            #expect(prompt.imageSpan == 0..<4 && prompt.tokenIDs[4] == eos)
        } else {
            // [BOS] ###Human: <Img> rows </Img> question ###Assistant:
            #expect(prompt.tokenIDs.first == bos && prompt.imageSpan.count == 4 && prompt.imageSpan.lowerBound > 1)
        }
        let tokens = try greedyDecode(model: model.languageModel, prompt: prompt.items, maxNewTokens: 4)
        #expect(tokens.count == 4 && tokens.allSatisfy { (0..<tokenizer.vocabularySize).contains($0) })
    }

    /// Parameter counts of OPERA's own modules at 7B (Scripts/fixtures/count_lavis_parameters.py: eva_vit.py
    /// VisionTransformer with create_eva_vit_g's arguments + ln_vision, Qformer.py BertLMHeadModel with init_Qformer's
    /// config as each wrapper trims it, query_tokens, nn.Linear(768, 4096), LlamaForCausalLM at LLaMA-7B's config).
    static let operaParameters: [LavisConfig.Architecture: Int] = [.miniGPT4: 7_832_625_024, .instructBlip: 7_913_147_520]

    @Test(arguments: [LavisConfig.Architecture.miniGPT4, .instructBlip])
    func sevenBShapesEqualOperasModules(_ architecture: LavisConfig.Architecture) throws {
        let spec = SyntheticLavisSpec(architecture: architecture, size: .sevenB, seed: 0)
        let tensors = spec.tensors
        #expect(tensors.parameterCount == Self.operaParameters[architecture])
        var shapes: [String: [Int]] = [:]
        for (declaration, _) in tensors.entries { shapes[declaration.name] = declaration.shape }
        #expect(shapes.count == tensors.entries.count, "tensor names must be unique")
        #expect(shapes["patch_embed.proj.weight"] == [1408, 3, 14, 14] && shapes["pos_embed"] == [1, 257, 1408])
        #expect(shapes["blocks.38.mlp.fc1.weight"] == [6144, 1408] && shapes["blocks.39.norm1.weight"] == nil)
        #expect(shapes["ln_vision.weight"] == [1408] && shapes["query_tokens"] == [1, 32, 768])
        #expect(shapes["Qformer.bert.encoder.layer.10.crossattention.self.key.weight"] == [768, 1408])
        #expect(shapes["Qformer.bert.encoder.layer.11.crossattention.self.key.weight"] == nil)
        let projection = architecture == .instructBlip ? "llm_proj.weight" : "llama_proj.weight"
        #expect(shapes[projection] == [4096, 768])
        #expect(shapes["Qformer.bert.embeddings.word_embeddings.weight"] == (architecture == .instructBlip ? [30523, 768] : nil))
        #expect(shapes["model.layers.31.mlp.gate_proj.weight"] == [11008, 4096] && shapes["lm_head.weight"] == [32000, 4096])
        #expect(spec.weightBytes == 2 * Self.operaParameters[architecture]!, "f16: two bytes per parameter")
        #expect(spec.text.bosTokenID == 31998 && spec.text.eosTokenIDs == [31997])
    }
}

/// LAVIS' InstructBLIP cuts the Q-Former's instruction to `max_txt_len` (128) from the left, keeping `[CLS]` and `[SEP]`:
/// the ids against the wrapper's tokenizer call (Scripts/fixtures/make_qformer_truncation_reference.py, transformers 4.29.2
/// on the paper-model fixture's bert-base-uncased/).
@Suite struct LavisQFormerTruncationTests {
    @Test func instructionIdsEqualTheWrappersTruncatedIds() throws {
        let folder = LavisImageEncoderTests.paperModels.appendingPathComponent("instructblip-original")
        let reference = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: folder.appendingPathComponent("qformer-truncation.json"))) as? [String: Any])
        #expect(reference["max_txt_len"] as? Int == LavisConfig.qformerMaxTextLength)
        let tokenizer = try BertTokenizer(folder: folder.appendingPathComponent("bert-base-uncased"))
        let cases = try #require(reference["cases"] as? [[String: Any]])
        #expect(cases.contains { ($0["ids"] as? [Int])?.count ?? 0 > 128 }, "the reference must hold a prompt that is cut")
        for c in cases {
            let prompt = try #require(c["prompt"] as? String)
            let ids = tokenizer.encode(prompt)
            #expect(ids == c["ids"] as? [Int], "\(prompt.prefix(40)): the whole encoding")
            #expect(LavisConfig.truncatedInstruction(ids) == c["qformer_ids"] as? [Int], "\(prompt.prefix(40)): what the Q-Former reads")
        }
    }
}
