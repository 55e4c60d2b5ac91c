import Foundation
import MirageEngine
import MirageModels
import MirageTestSupport
import Testing
import MirageTokenizers

/// Random-weight tiny InstructBLIP / BLIP-2 folders written by Mirage load through the registry and run end to end;
/// only InstructBLIP's image rows depend on the instruction.
@Suite struct Blip2SyntheticTests {
    @Test(arguments: [true, false])
    func tinySyntheticFoldersRunEndToEnd(_ instruct: Bool) throws {
        let folder = TestTemporary.url("blip2-synth-\(instruct)")
        defer { try? FileManager.default.removeItem(at: folder) }
        if instruct {
            try ModelFamily.synthesizeInstructBlip(size: .tiny, seed: 3, to: folder)
        } else {
            try ModelFamily.synthesizeBlip2Llama(size: .tiny, seed: 3, to: folder)
        }
        let (family, _) = try ModelFamilies.family(of: folder)
        #expect(family.name == (instruct ? "instructblip" : "blip2"))
        let model = try ModelFamilies.load(folder, options: LoadOptions(threads: 1))
        #expect(model.imageTokenCount == 4 && model.imageRowsReadInstruction == instruct)
        let shape = try ModelFamilies.shape(of: folder)
        #expect(shape.imageTokenCount == 4)
        let pixels = try model.pixels(ofImageAt: Blip2Fixtures.image(0), padToSquare: false)
        #expect(pixels.height == 32 && pixels.width == 32)
        let a = try model.embedImage(pixels, instruction: "describe the image")
        let b = try model.embedImage(pixels, instruction: "is there a dog?")
        #expect(a.values.allSatisfy { $0.isFinite })
        #expect((a == b) == !instruct, "the image rows must depend on the instruction exactly for InstructBLIP")
        let tokenizer = try Tokenizer(folder: folder)
        let prompt = try model.prompt(model.defaultTemplate.render("describe the image"), tokenizer: tokenizer, image: a)
        #expect(prompt.imageSpan == 0..<4)
        let tokens = try greedyDecode(model: model.languageModel, prompt: prompt.items, maxNewTokens: 4)
        #expect(tokens.count == 4)
    }
}
