import Foundation
import MirageEngine
import MirageModels
import Testing
import MirageTokenizers

/// Tiny InstructBLIP and BLIP-2 (Llama) folders (f32 with tied embeddings, bf16 with GQA, f16 with GQA and odd
/// widths) against transformers 5.24: pixel values bit for bit, the processors' input_ids / qformer_input_ids,
/// vision output, Q-Former output, projected image rows, prompt logits and 16 greedy tokens.
@Suite struct Blip2ParityTests {
    static func load(_ name: String) throws -> Blip2Model {
        let model = try ModelFamilies.load(Blip2Fixtures.folder(name), options: LoadOptions(threads: 2))
        return try #require(model as? Blip2Model)
    }

    @Test(arguments: Blip2Fixtures.modelNames)
    func pixelValuesAreBitExact(_ name: String) throws {
        let model = try Self.load(name)
        let reference = try Blip2Fixtures.reference(name)
        let expected = try #require(reference["pixel_values"] as? [[String: Any]])
        for (index, entry) in expected.enumerated() {
            let pixels = try model.pixels(ofImageAt: Blip2Fixtures.image(index), padToSquare: false)
            #expect([pixels.channels, pixels.height, pixels.width] == (entry["shape"] as? [Int]))
            let first = Blip2Fixtures.floats(entry["first"])
            #expect(Array(pixels.values.prefix(first.count)) == first, "\(name) image \(index): first values differ")
            #expect(String(Blip2Fixtures.checksum(pixels.values)) == entry["checksum"] as? String,
                    "\(name) image \(index): pixel checksum differs from transformers'")
        }
    }

    @Test(arguments: Blip2Fixtures.modelNames)
    func promptIDsMatchTheProcessor(_ name: String) throws {
        let model = try Self.load(name)
        let tokenizer = try Tokenizer(folder: Blip2Fixtures.folder(name))
        let prompts = try #require(try Blip2Fixtures.reference(name)["prompts"] as? [[String: Any]])
        for prompt in prompts {
            let text = try #require(prompt["text"] as? String)
            let rendered = try model.template(named: "processor").render(text)
            #expect(try model.promptTokenIDs(rendered, tokenizer: tokenizer) == prompt["input_ids"] as? [Int], "\(text)")
            if model.imageRowsReadInstruction {
                let qformer = try #require(model.qformerTokenizer)
                #expect(qformer.encode(text) == prompt["qformer_input_ids"] as? [Int], "\(text)")
            } else {
                #expect(prompt["qformer_input_ids"] == nil)
            }
        }
    }

    @Test(arguments: Blip2Fixtures.modelNames)
    func visionQFormerLogitsAndGreedyMatch(_ name: String) throws {
        let model = try Self.load(name)
        let reference = try Blip2Fixtures.reference(name)
        let tokenizer = try Tokenizer(folder: Blip2Fixtures.folder(name))
        let pixels0 = try model.pixels(ofImageAt: Blip2Fixtures.image(0), padToSquare: false)
        let vision = Blip2Fixtures.relativeError(try model.visionRows(pixels0), Blip2Fixtures.floats(reference["vision"]))
        #expect(vision < 1e-5, "\(name) vision output: relative error \(vision)")

        let prompts = try #require(reference["prompts"] as? [[String: Any]])
        let qformer = try #require(reference["qformer"] as? [Any]), projected = try #require(reference["projected"] as? [Any])
        let logits = try #require(reference["logits"] as? [[String: Any]]), greedy = try #require(reference["greedy"] as? [[Int]])
        let columns = try #require(reference["logit_columns"] as? [Int])
        for (p, prompt) in prompts.enumerated() {
            let text = try #require(prompt["text"] as? String)
            let pixels = try model.pixels(ofImageAt: Blip2Fixtures.image(try #require(prompt["image"] as? Int)), padToSquare: false)
            let instruction = model.imageRowsReadInstruction ? text : nil
            let q = Blip2Fixtures.relativeError(try model.qformerOutput(pixels, instruction: instruction),
                                                Blip2Fixtures.floats(qformer[p]))
            #expect(q < 1e-5, "\(name) prompt \(p) Q-Former output: relative error \(q)")
            let image = try model.embedImage(pixels, instruction: instruction)
            #expect(image.tokenCount == model.imageTokenCount)
            let rows = Blip2Fixtures.relativeError(image.values, Blip2Fixtures.floats(projected[p]))
            #expect(rows < 1e-5, "\(name) prompt \(p) language-model image rows: relative error \(rows)")

            let built = try model.prompt(model.defaultTemplate.render(text), tokenizer: tokenizer, image: image)
            #expect(built.tokenIDs == prompt["input_ids"] as? [Int])
            #expect(built.imageSpan == 0..<model.imageTokenCount)
            let output = try model.languageModel.makeSession().append(built.items, options: ForwardOptions(logits: .all))
            let expected = logits[p]
            let maxAbs = try #require(expected["max_abs"] as? Double)
            let expectedColumns = try #require(expected["columns"] as? [[NSNumber]])
            #expect(output.logitRows.count == expectedColumns.count)
            var worst: Float = 0
            for (row, values) in expectedColumns.enumerated() {
                let got = output.logits(row)
                for (j, column) in columns.enumerated() {
                    worst = max(worst, abs(got[got.startIndex + column] - values[j].floatValue))
                }
            }
            let last = output.logits(output.logitRows.count - 1)
            for (column, value) in Blip2Fixtures.floats(expected["last"]).enumerated() {
                worst = max(worst, abs(last[last.startIndex + column] - value))
            }
            #expect(worst <= 1e-4 * Float(maxAbs), "\(name) prompt \(p) logits: max error \(worst), max |logit| \(maxAbs)")
            let tokens = try greedyDecode(model: model.languageModel, prompt: built.items, maxNewTokens: 16)
            #expect(tokens == greedy[p], "\(name) prompt \(p) greedy tokens")
        }
    }

    @Test func registryRecognisesShapesAndNames() throws {
        for name in Blip2Fixtures.modelNames {
            let url = Blip2Fixtures.folder(name)
            let (family, _) = try ModelFamilies.family(of: url)
            let instruct = name.hasPrefix("instructblip")
            #expect(family.name == (instruct ? "instructblip" : "blip2"))
            let shape = try ModelFamilies.shape(of: url)
            let model = try Self.load(name)
            #expect(shape.imageTokenCount == model.imageTokenCount)
            #expect(model.architectureName == (instruct ? "instructblip-llama" : "blip2-llama"))
            #expect(model.imageRowsReadInstruction == instruct)
            #expect(model.defaultTemplate.name == "processor")
            #expect(try model.template(named: "auto").render("Hi?") == "<image>Hi?")
            do {
                _ = try model.pixels(ofImageAt: Blip2Fixtures.image(0), padToSquare: true)
                Issue.record("\(name) accepted LLaVA's pad-to-square")
            } catch {
                #expect("\(error)".contains("pad-to-square"))
            }
        }
    }

    @Test func promptsWithTextBeforeTheMarkerKeepBOSFirst() throws {
        let model = try Self.load("blip2-llama-f16-gqa")
        let tokenizer = try Tokenizer(folder: Blip2Fixtures.folder("blip2-llama-f16-gqa"))
        let ids = try model.promptTokenIDs("###Human: <image> Hi ###Assistant:", tokenizer: tokenizer)
        let head = tokenizer.encode("###Human: ")
        #expect(Array(ids.prefix(head.count)) == head)
        #expect(ids[head.count..<(head.count + model.imageTokenCount)].allSatisfy { $0 == model.config.imageTokenID })
        #expect(Array(ids.suffix(from: head.count + model.imageTokenCount))
                == tokenizer.encode(" Hi ###Assistant:", addSpecialTokens: false))
        #expect(throws: ModelError.self) { try model.promptTokenIDs("no marker", tokenizer: tokenizer) }
    }
}
