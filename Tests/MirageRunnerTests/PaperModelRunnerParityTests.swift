import Foundation
import MirageDecoding
import MirageEngine
import MirageModels
import MirageStore
@testable import MirageRunner
import MirageTestSupport
import Testing
import MirageTokenizers

/// The paper's four models through the runner's own path against OPERA's wrappers (the tiny paper-model fixtures,
/// Tests/MirageModelsTests/Fixtures/paper-models, made by Scripts/fixtures/make_paper_model_fixtures.py): the
/// model folders as published (LLaVA-1.5 and Shikra loaded from their .bin shards and tokenizer.model; MiniGPT-4 and
/// InstructBLIP assembled from their .pth pieces), the prompt of the shipped opera-chair-512 / opera-pope-random
/// protocols built by `ExperimentRunner.itemPrompt`, the decoder with the family's paper settings
/// (`ExperimentRunner.decoder(_:for:protocol:)`), the runner's prompt layout, EOS ids and answer text; compared with
/// the wrapper's prompt ids, key positions, greedy / beam / OPERA (reference mode) tokens and final text.
@Suite struct PaperModelRunnerParityTests {
    static let root = SharedData.repositoryRoot
    static let paperModels = root.appendingPathComponent("Tests/MirageModelsTests/Fixtures/paper-models")

    static func json(_ url: URL) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    /// The model folder of a fixture, assembled into a scratch folder for the LAVIS layouts.
    static func modelFolder(_ name: String) throws -> (URL, scratch: Bool) {
        let folder = paperModels.appendingPathComponent(name)
        switch name {
        case "llava-original": return (folder.appendingPathComponent("llava-v1.5-7b"), false)
        case "shikra": return (folder.appendingPathComponent("shikra-7b"), false)
        default:
            let instruct = name == "instructblip-original"
            let sizes = try #require(try json(folder.appendingPathComponent("reference.json"))["sizes"] as? [String: Any])
            let heads = try #require((sizes["eva"] as? [String: Any])?["num_heads"] as? Int)
            let out = TestTemporary.url("runner-parity-\(name)")
            try LavisAssembly(architecture: instruct ? .instructBlip : .miniGPT4,
                              vicuna: folder.appendingPathComponent(instruct ? "vicuna-7b-v1.1" : "vicuna-7b-v0"),
                              visionEncoder: folder.appendingPathComponent("eva_vit_g.pth"),
                              qformer: folder.appendingPathComponent(instruct ? "instruct_blip_vicuna7b_trimmed.pth"
                                                                              : "blip2_pretrained_flant5xxl.pth"),
                              projector: instruct ? nil : folder.appendingPathComponent("prerained_minigpt4_7b.pth"),
                              bert: folder.appendingPathComponent("bert-base-uncased"), visionHeads: heads).write(to: out)
            return (out, true)
        }
    }

    /// The wrapper's text against Mirage's for the same ids. They differ only where byte-fallback pieces do not form
    /// valid UTF-8: the slow sentencepiece tokenizer decodes such a run piecewise (valid bytes and sequences as
    /// themselves, U+FFFD for the rest), Mirage's ByteFallback decoder (as transformers' fast one) gives U+FFFD for
    /// every byte of the run. So: equal when neither holds U+FFFD; otherwise, with U+FFFD removed from both, Mirage's
    /// characters appear in the wrapper's in order (a missed cut, strip or split leaves characters the wrapper
    /// does not have).
    static func sameUpToByteFallback(_ mirage: String, _ wrapper: String) -> Bool {
        let replacement: Unicode.Scalar = "\u{FFFD}"
        guard mirage.unicodeScalars.contains(replacement) || wrapper.unicodeScalars.contains(replacement) else { return mirage == wrapper }
        let a = mirage.unicodeScalars.filter { $0 != replacement }, b = Array(wrapper.unicodeScalars.filter { $0 != replacement })
        var j = 0
        for scalar in a {
            guard let k = b[j...].firstIndex(of: scalar) else { return false }
            j = k + 1
        }
        return true
    }

    /// The decoder choice of one reference run, as an experiment would name it.
    static func choice(_ kwargs: [String: Any]) throws -> DecoderChoice {
        let beams = try #require(kwargs["num_beams"] as? Int)
        if kwargs["opera_decoding"] as? Bool == true {
            return try DecoderChoice(parsing: "opera:opera-paper,num_beams=\(beams),scale_factor=\(kwargs["scale_factor"]!),"
                                     + "threshold=\(kwargs["threshold"]!),num_attn_candidates=\(kwargs["num_attn_candidates"]!),"
                                     + "penalty_weights=\(kwargs["penalty_weights"]!)")
        }
        return try DecoderChoice(parsing: beams > 1 ? "beam,num_beams=\(beams)" : "greedy")
    }

    @Test(arguments: ["llava-original", "shikra", "minigpt4", "instructblip-original"])
    func runnerPathMatchesOPERAsWrapper(_ name: String) throws {
        let (folder, scratch) = try Self.modelFolder(name)
        defer { if scratch { try? FileManager.default.removeItem(at: folder) } }
        let vlm = try ModelFamilies.load(folder, options: LoadOptions(threads: 2))
        let tokenizer = try Tokenizer(folder: folder)
        let protocols = Self.root.appendingPathComponent("Annotations/protocols")
        let chair = try RunProtocol.load(path: protocols.appendingPathComponent("opera-chair-512.yaml").path)
        let pope = try RunProtocol.load(path: protocols.appendingPathComponent("opera-pope-random.yaml").path)
        let settings = try #require(ExperimentRunner.paperSettings(for: vlm, protocol: chair), "\(vlm.family.name) has paper settings")
        let reference = try Self.json(Self.paperModels.appendingPathComponent("\(name)/reference.json"))
        let cases = try #require(reference["cases"] as? [[String: Any]])
        #expect(cases.count == 4)
        for c in cases {
            let kind = try #require(c["question_kind"] as? String), question = try #require(c["question"] as? String)
            let label = "\(name) \(c["image"]!) \(kind)"
            let spec = kind == "chair" ? chair : pope
            let text = kind == "chair" ? spec.userText() : spec.userText(question: question)
            #expect(text == question, "\(label): the protocol's question")
            let pixels = try vlm.pixels(ofImageAt: Self.paperModels.appendingPathComponent(try #require(c["image"] as? String)).path,
                                        padToSquare: spec.padToSquare)
            let image = try vlm.embedImage(pixels, instruction: text)
            let (built, rendered) = try ExperimentRunner.itemPrompt(text, template: spec.template(for: vlm), model: vlm,
                                                                     tokenizer: tokenizer, image: image)
            let layout = ExperimentRunner.layout(built)
            // OPERA's prompt, with <ImageHere> where Mirage writes <image> (Shikra's <im_start>/<im_end> are in the template).
            let system = "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, "
                + "and polite answers to the user's questions."
            let operaPrompt = (name == "llava-original" || name == "shikra" ? system : "") + (c["prompt"] as? String ?? "")
            #expect(rendered.replacingOccurrences(of: PromptTemplate.imageMarker, with: "<ImageHere>") == operaPrompt,
                    "\(label): rendered prompt \(rendered)")

            // The ids the wrapper gives the LLM, and the input_ids its generate call starts from.
            let textIDs = built.tokenIDs.filter { $0 != LavisPrompts.imagePlaceholder }
            switch name {
            case "llava-original":
                #expect(built.inputIDs == c["input_ids"] as? [Int], "\(label): input_ids \(built.inputIDs)")
            case "shikra":
                #expect(built.tokenIDs == c["input_ids"] as? [Int], "\(label): input_ids")
            case "minigpt4":
                let segments = try #require(c["segments"] as? [[String: Any]])
                let expected = [try #require(c["bos_id"] as? Int)] + (segments[0]["ids"] as? [Int] ?? []) + (segments[1]["ids"] as? [Int] ?? [])
                #expect(textIDs == expected, "\(label): LLM ids")
            default:
                #expect(textIDs == c["llm_ids"] as? [Int], "\(label): LLM ids")
            }
            // OPERA's key_position, as OPERA's decoder (reference mode) takes it from the layout.
            let key = try #require(c["key_position"] as? [String: Int])
            let opera = try OperaDecoder.operaPrompt(layout, bos: vlm.languageModel.bosTokenID)
            #expect(opera.imageSpan == key["image_start"]!...key["image_end"]! && layout.responseStart == key["response_start"],
                    "\(label): OPERA's span \(opera.imageSpan), response start \(layout.responseStart)")

            for (run, r) in try #require(c["runs"] as? [String: [String: Any]]) {
                let kwargs = try #require(r["generate_kwargs"] as? [String: Any])
                let decoder = try ExperimentRunner.decoder(try Self.choice(kwargs), for: vlm, protocol: spec)
                if name == "instructblip-original" {
                    #expect(decoder.parameters["repetition_penalty"] == .double(1.5), "\(label) \(run): InstructBLIP's penalty")
                }
                let limits = GenerationLimits(maxNewTokens: try #require(kwargs["max_new_tokens"] as? Int),
                                              eosTokenIDs: Set(vlm.languageModel.eosTokenIDs))
                let result = try decoder.decode(DecodingContext(model: vlm.languageModel, prompt: layout, limits: limits,
                                                                tokenizer: tokenizer))
                let raw = try #require(r["raw_output_ids"] as? [Int])
                let inputIDs = layout.tokenIDs
                #expect(Array(raw.prefix(inputIDs.count)) == inputIDs, "\(label) \(run): the sequence's input_ids")
                #expect(result.tokens == Array(raw.dropFirst(inputIDs.count)), "\(label) \(run): tokens")
                let answer = ExperimentRunner.answerText(result, paperSettings: settings, tokenizer: tokenizer)
                let expected = try #require(r["text"] as? String)
                #expect(Self.sameUpToByteFallback(answer, expected),
                        "\(label) \(run): answer text \(answer.debugDescription), the wrapper's \(expected.debugDescription)")
            }
        }
    }
}

/// How the runner applies a family's paper settings: only for protocols that ask, only to decoders with the
/// parameter, never over the experiment's own value; the answer text through the family's rules.
@Suite struct PaperSettingsRunnerTests {
    @Test func decoderOverridesFollowTheProtocolAndTheChoice() throws {
        let (folder, _) = try PaperModelRunnerParityTests.modelFolder("instructblip-original")
        defer { try? FileManager.default.removeItem(at: folder) }
        let vlm = try ModelFamilies.load(folder, options: LoadOptions(threads: 2))
        let protocols = SharedData.repositoryRoot.appendingPathComponent("Annotations/protocols")
        var spec = try RunProtocol.load(path: protocols.appendingPathComponent("opera-pope-random.yaml").path)
        #expect(spec.paperSettings)
        let settings = try #require(vlm.paperSettings)
        #expect(settings.decoderParameters == ["repetition_penalty": "1.5"] && settings.outputIDRewrites == [0: 2])

        let greedy = try ExperimentRunner.decoder(DecoderChoice(name: "greedy"), for: vlm, protocol: spec)
        #expect(greedy.parameters["repetition_penalty"] == .double(1.5))
        let own = try ExperimentRunner.decoder(try DecoderChoice(parsing: "beam,num_beams=3,repetition_penalty=1.2"), for: vlm, protocol: spec)
        #expect(own.parameters["repetition_penalty"] == .double(1.2))
        let opera = try ExperimentRunner.decoder(try DecoderChoice(parsing: "opera:opera-paper"), for: vlm, protocol: spec)
        #expect(opera.parameters["repetition_penalty"] == .double(1.5))

        spec.paperSettings = false
        #expect(ExperimentRunner.paperSettings(for: vlm, protocol: spec) == nil)
        let plain = try ExperimentRunner.decoder(DecoderChoice(name: "greedy"), for: vlm, protocol: spec)
        #expect(plain.parameters["repetition_penalty"] == .double(1))
    }

    @Test func textStepsFollowTheWrappers() {
        // MiniGPT-4: split('###')[0].split('Assistant:')[-1].strip(); Shikra: split('ASSISTANT:')[-1].strip().
        let minigpt4: [PaperSettings.TextStep] = [.before("###"), .afterLast("Assistant:"), .strip]
        func run(_ steps: [PaperSettings.TextStep], _ text: String) -> String {
            PaperSettings(text: steps, source: "test").applyText(text)
        }
        #expect(run(minigpt4, "Assistant: a dog Assistant:  two cats \n###Human: more") == "two cats")
        #expect(run(minigpt4, "no marker at all  ") == "no marker at all")
        #expect(run([.afterLast("ASSISTANT:"), .strip], " a cat\u{1c}") == "a cat")
        #expect(PaperSettings(outputIDRewrites: [0: 2, 1: 2], text: [.before("###"), .strip], source: "x").outputDescription
                == "ids 0→2, 1→2; decode skipping special tokens; split('###')[0]; strip()")
    }
}

/// `ExperimentRunner.run()` itself on the InstructBLIP fixture with a POPE protocol that asks for paper settings:
/// the run records the decoder with the wrapper's repetition penalty, and its items hold OPERA's greedy tokens and
/// the post-processed answer.
@Suite struct PaperSettingsExperimentTests {
    @Test func anExperimentRunAppliesTheFamilysPaperSettings() throws {
        let (model, _) = try PaperModelRunnerParityTests.modelFolder("instructblip-original")
        let folder = TestTemporary.url("paper-settings-run"), images = folder.appendingPathComponent("images")
        defer { try? FileManager.default.removeItem(at: model); try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        let fixtures = PaperModelRunnerParityTests.paperModels
        let reference = try PaperModelRunnerParityTests.json(fixtures.appendingPathComponent("instructblip-original/reference.json"))
        let cases = try #require(reference["cases"] as? [[String: Any]]).filter { $0["question_kind"] as? String == "pope" }
        var lines: [String] = []
        for (i, c) in cases.enumerated() {
            // COCO names are what the image set looks for; the decoder reads the PNG by its content.
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent(try #require(c["image"] as? String)),
                                             to: images.appendingPathComponent("COCO_val2014_\(String(format: "%012d", i + 1)).jpg"))
            lines.append("{\"question_id\": \(i + 1), \"image\": \"COCO_val2014_\(String(format: "%012d", i + 1)).jpg\", "
                         + "\"text\": \"\(try #require(c["question"] as? String))\", \"label\": \"yes\"}")
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: folder.appendingPathComponent("q.jsonl"))
        try Data("""
            task: pope
            questions: {path: q.jsonl}
            template: "<image>{prompt}"
            max_new_tokens: 16
            paper_settings: true

            """.utf8).write(to: folder.appendingPathComponent("p.yaml"))
        let (store, run) = try GreedyExperiment(model: model, folder: folder, images: images, threads: 2).run()
        #expect(run.decoder.parametersJSON.contains("\"repetition_penalty\":1.5"), "\(run.decoder.parametersJSON)")
        let items = try store.items(run: run.id).sorted { $0.item.ordinal < $1.item.ordinal }
        #expect(items.count == cases.count)
        for (stored, c) in zip(items, cases) {
            let greedy = try #require((c["runs"] as? [String: Any])?["greedy"] as? [String: Any])
            let raw = try #require(greedy["raw_output_ids"] as? [Int])
            #expect(stored.item.outputTokens == Array(raw.dropFirst()), "\(c["image"]!): OPERA's greedy tokens through the runner")
            #expect(PaperModelRunnerParityTests.sameUpToByteFallback(stored.item.outputText, try #require(greedy["text"] as? String)),
                    "\(c["image"]!): answer \(stored.item.outputText.debugDescription)")
            #expect(stored.item.failureReason == nil)
        }
    }
}
