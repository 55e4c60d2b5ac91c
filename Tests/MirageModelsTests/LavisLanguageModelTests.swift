import Foundation
import MirageEngine
import MirageKernels
import MirageModels
import MirageTestSupport
import Testing
import MirageTokenizers

/// The `instructblip-lavis` and `minigpt4` families on LAVIS-layout folders put together by `LavisAssembly`, against OPERA's wrappers on the
/// tiny paper-model fixtures: loaded through the registry, OPERA's template rendered and tokenized into the wrapper's
/// ids, image rows where the wrapper puts them, first-step logits and 16 greedy tokens (InstructBLIP with the
/// wrapper's repetition penalty 1.5, MiniGPT-4 without; neither stops at EOS, as the folders' ids make OPERA run them).
@Suite struct LavisLanguageModelTests {
    static let paperModels = LavisImageEncoderTests.paperModels

    /// transformers 4.29's RepetitionPenaltyLogitsProcessor on raw logits: for each id seen, a negative score is
    /// multiplied by `penalty`, a positive one divided.
    static func penalized(_ logits: ArraySlice<Float>, seen: Set<Int>, penalty: Float) -> [Float] {
        var out = Array(logits)
        for id in seen where id >= 0 && id < out.count { out[id] = out[id] < 0 ? out[id] * penalty : out[id] / penalty }
        return out
    }

    @Test(arguments: [("instructblip-original", true), ("minigpt4", false)])
    func promptsLogitsAndGreedyMatchOPERAsWrapper(_ name: String, _ instruct: Bool) throws {
        let folder = Self.paperModels.appendingPathComponent(name)
        let assembled = try LavisImageEncoderTests.assembled(name, instruct: instruct)
        defer { try? FileManager.default.removeItem(at: assembled) }
        let (family, _) = try ModelFamilies.family(of: assembled)
        #expect(family.name == (instruct ? "instructblip-lavis" : "minigpt4"))
        let model = try #require(try ModelFamilies.load(assembled, options: LoadOptions(threads: 2)) as? LavisBlip2Model)
        #expect(model.imageTokenCount == 4 && model.imageRowsReadInstruction == instruct)
        #expect(try ModelFamilies.shape(of: assembled).imageTokenCount == 4)
        let tokenizer = try Tokenizer(folder: assembled)
        let reference = try Blip2Fixtures.json(folder.appendingPathComponent("reference.json"))
        for c in try #require(reference["cases"] as? [[String: Any]]) {
            let label = "\(name) \(c["image"] ?? "") \(c["question_kind"] ?? "")"
            let question = try #require(c["question"] as? String)
            let rendered = model.defaultTemplate.render(question).replacingOccurrences(of: PromptTemplate.imageMarker, with: "<ImageHere>")
            #expect(rendered == c["prompt"] as? String, "\(label): OPERA's template")
            let pixels = try model.pixels(ofImageAt: Self.paperModels.appendingPathComponent(try #require(c["image"] as? String)).path,
                                          padToSquare: false)
            let image = try model.embedImage(pixels, instruction: question)
            let prompt = try model.prompt(model.defaultTemplate.render(question), tokenizer: tokenizer, image: image)
            let text = prompt.tokenIDs.filter { $0 != LavisPrompts.imagePlaceholder }
            if instruct {
                #expect(text == c["llm_ids"] as? [Int], "\(label): LLM ids")
            } else {
                let segments = try #require(c["segments"] as? [[String: Any]])
                let expected = [try #require(c["bos_id"] as? Int)] + (segments[0]["ids"] as? [Int] ?? []) + (segments[1]["ids"] as? [Int] ?? [])
                #expect(text == expected, "\(label): LLM ids")
            }
            let rows = try #require(c["image_rows"] as? [String: Int])
            #expect(prompt.imageSpan == rows["start"]!..<rows["end_exclusive"]!, "\(label): image rows")
            let key = try #require(c["key_position"] as? [String: Int])
            #expect(prompt.responseStart == key["response_start"], "\(label): response start")

            let session = model.languageModel.makeSession()
            var output = try session.append(prompt.items)
            // InstructBLIP's wrapper appends a [PAD] row (random at load, id 480) after the folder's vocabulary.
            let expected = Array(Blip2Fixtures.floats(c["first_step_logits"]).prefix(model.languageModel.config.vocabSize))
            let error = Blip2Fixtures.relativeError(Array(output.logits(0)), expected)
            #expect(error <= 1e-4, "\(label): first-step logits, relative error \(error)")

            let greedy = try #require((c["runs"] as? [String: Any])?["greedy"] as? [String: Any])
            let raw = try #require(greedy["raw_output_ids"] as? [Int])
            // The returned sequence starts with the dummy BOS of the LLM's generation settings.
            var seen: Set<Int> = [raw[0]], tokens: [Int] = []
            while tokens.count < raw.count - 1 {
                let scores = instruct ? Self.penalized(output.logits(0), seen: seen, penalty: 1.5) : Array(output.logits(0))
                let next = argmax(scores)
                tokens.append(next)
                seen.insert(next)
                output = try session.step([next])
            }
            #expect(tokens == Array(raw.dropFirst()), "\(label): greedy tokens")
        }
    }

    @Test func assemblyRefusesWhatItCannotUseAndSaysWhy() throws {
        let folder = Self.paperModels.appendingPathComponent("minigpt4")
        var assembly = LavisAssembly(architecture: .miniGPT4, vicuna: folder.appendingPathComponent("vicuna-7b-v0"),
                                     visionEncoder: folder.appendingPathComponent("reference.json"),
                                     qformer: folder.appendingPathComponent("blip2_pretrained_flant5xxl.pth"),
                                     projector: folder.appendingPathComponent("prerained_minigpt4_7b.pth"),
                                     bert: folder.appendingPathComponent("bert-base-uncased"), visionHeads: 4)
        let out = TestTemporary.url("lavis-refused")
        defer { try? FileManager.default.removeItem(at: out) }
        do {
            try assembly.write(to: out)
            Issue.record("a JSON file was accepted as EVA's weights")
        } catch {
            #expect("\(error)".contains("cannot be read as the assembly's weights") && "\(error)".contains("reference.json"))
        }
        assembly.visionEncoder = folder.appendingPathComponent("eva_vit_g.pth")
        assembly.projector = nil
        do {
            try assembly.write(to: out)
            Issue.record("MiniGPT-4 without its projector was accepted")
        } catch {
            #expect("\(error)".contains("--projector"))
        }
        assembly.projector = folder.appendingPathComponent("blip2_pretrained_flant5xxl.pth")
        do {
            try assembly.write(to: out)
            Issue.record("a file given twice was accepted")
        } catch {
            #expect("\(error)".contains("is in both"))
        }
    }
}
