import Foundation
import MirageEngine
import MirageTokenizers
@testable import MirageModels
import MirageTestSupport
import Testing

/// Shikra through the registry: a synthesized folder, its tower beside it, the prompt with
/// `<im_start>` + patches + `<im_end>` and the span OPERA's key_position gives.
@Suite struct ShikraTests {
    @Test func synthesizedShikraLoadsAndPlacesTheImageBetweenItsMarkers() throws {
        let root = TestTemporary.url("mirage-shikra")
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = root.appendingPathComponent("shikra-7b")
        let spec = try SyntheticShikraSpec(request: SynthesisRequest(architecture: "shikra", size: "tiny", seed: 3, dtype: .f32))
        try spec.write(to: folder)
        let (family, _) = try ModelFamilies.family(of: folder)
        #expect(family.name == "shikra")
        #expect(try ModelFamilies.shape(of: folder).imageTokenCount == 16)
        let vlm = try ModelFamilies.load(folder, options: LoadOptions(threads: 1))
        #expect(vlm.architectureName == "shikra-llama" && vlm.defaultTemplate.name == "vicuna11")
        let tokenizer = try Tokenizer(folder: folder)
        let pixels = try vlm.pixels(ofImageAt: SharedData.repositoryRoot
            .appendingPathComponent("Tests/MirageEngineTests/Fixtures/llava/pipeline.png").path, padToSquare: false)
        let rows = try vlm.embedImage(pixels, instruction: nil)
        let start = try #require(tokenizer.id(for: "<im_start>")), end = try #require(tokenizer.id(for: "<im_end>"))
        let patch = try #require(tokenizer.id(for: "<im_patch>"))
        for text in ["SYS.USER: <image> Describe it. ASSISTANT:", "SYS.USER: <im_start><image><im_end> Describe it. ASSISTANT:"] {
            let prompt = try vlm.prompt(text, tokenizer: tokenizer, image: rows)
            // transformers 4.29's slow tokenizer (OPERA's) strips the space before <im_start>.
            let expected = tokenizer.encode("SYS.USER:<im_start>" + String(repeating: "<im_patch>", count: 16)
                                            + "<im_end> Describe it. ASSISTANT:")
            #expect(prompt.tokenIDs == expected && prompt.inputIDs == expected)
            let s = try #require(expected.firstIndex(of: start)), e = try #require(expected.firstIndex(of: end))
            #expect(prompt.imageSpan == s..<(e + 1) && e - s == 17)
            #expect(prompt.items[s] == .token(start) && prompt.items[e] == .token(end))
            #expect(prompt.items[(s + 1)..<e].allSatisfy { if case .embedding = $0 { return true } else { return false } })
            #expect(!prompt.tokenIDs.isEmpty && prompt.tokenIDs.filter { $0 == patch }.count == 16)
        }
    }
}
