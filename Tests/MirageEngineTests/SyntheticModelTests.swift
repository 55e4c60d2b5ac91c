import Foundation
import MirageTestSupport
import Testing
@testable import MirageEngine
@testable import MirageTokenizers

/// `mirage models synth` folders: loadable by Mirage (model and tokenizer), deterministic per seed.
@Suite struct SyntheticModelTests {
    func write(_ spec: SyntheticModelSpec) throws -> URL {
        let dir = TestTemporary.root.appendingPathComponent("mirage-synth-\(UUID().uuidString)")
        try spec.write(to: dir)
        return dir
    }

    @Test(arguments: [(Architecture.llama, TensorDType.bf16), (.qwen2, .f16), (.qwen2, .f32)])
    func synthesizedFolderLoads(_ arch: Architecture, _ dtype: TensorDType) throws {
        let spec = SyntheticModelSpec(architecture: arch, size: .tiny, seed: 11, dtype: dtype)
        let dir = try write(spec)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try LanguageModel(folder: dir, options: LoadOptions(threads: 2))
        let reloaded = try ModelConfig.load(from: dir.appendingPathComponent("config.json"))
        #expect(model.config == reloaded)
        #expect(model.config.architecture == arch && model.weightFormat == dtype.weightFormat)
        #expect(model.eosTokenIDs == [509])
        let tokenizer = try Tokenizer(folder: dir)
        #expect(tokenizer.vocabularySize == model.config.vocabSize)
        #expect(tokenizer.eosTokenID == 509)
        let ids = tokenizer.encode("the cat sat")
        #expect(tokenizer.decode(ids) == "the cat sat")
        let tokens = try greedyDecode(model: model, prompt: ids.map { .token($0) }, maxNewTokens: 4)
        #expect(tokens.count == 4)
    }

    @Test func sameSeedSameBytesOtherSeedOtherBytes() throws {
        let a = try write(SyntheticModelSpec(architecture: .llama, size: .tiny, seed: 3, dtype: .f16))
        let b = try write(SyntheticModelSpec(architecture: .llama, size: .tiny, seed: 3, dtype: .f16))
        let c = try write(SyntheticModelSpec(architecture: .llama, size: .tiny, seed: 4, dtype: .f16))
        defer { for d in [a, b, c] { try? FileManager.default.removeItem(at: d) } }
        let file = "model.safetensors"
        let da = try Data(contentsOf: a.appendingPathComponent(file))
        #expect(da == (try Data(contentsOf: b.appendingPathComponent(file))))
        #expect(da != (try Data(contentsOf: c.appendingPathComponent(file))))
        #expect(try Data(contentsOf: a.appendingPathComponent("tokenizer.json")) == Data(contentsOf: c.appendingPathComponent("tokenizer.json")))
    }

    @Test func bf16RoundingIsNearestEven() {
        #expect(bf16Bits(1.0) == 0x3F80)
        #expect(bf16Bits(Float(bitPattern: 0x3F80_8000)) == 0x3F80)   // tie → even
        #expect(bf16Bits(Float(bitPattern: 0x3F81_8000)) == 0x3F82)   // tie → even (up)
        #expect(bf16Bits(Float(bitPattern: 0x3F80_8001)) == 0x3F81)
        #expect(bf16Bits(.nan) == 0x7FC0)
    }

    @Test func halfBillionShapesMatchQwen2() {
        let c = SyntheticModelSpec(architecture: .qwen2, size: .halfB, seed: 0).config
        #expect((c.hiddenSize, c.numLayers, c.numHeads, c.numKVHeads, c.intermediateSize, c.vocabSize) == (896, 24, 14, 2, 4864, 151936))
        #expect(c.tieWordEmbeddings && c.headDim == 64)
        let l = SyntheticModelSpec(architecture: .llama, size: .sevenB, seed: 0).config
        #expect((l.hiddenSize, l.numLayers, l.numHeads, l.intermediateSize, l.vocabSize) == (4096, 32, 32, 11008, 32000))
    }
}
