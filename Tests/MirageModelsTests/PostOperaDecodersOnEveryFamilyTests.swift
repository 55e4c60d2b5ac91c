import Foundation
import MirageDecoding
import MirageEngine
import MirageModels
import MirageTestSupport
import MirageTokenizers
import Testing

/// Every post-OPERA decoder (and VCD, DoLa) on a tiny synthesized folder of every family Mirage loads
/// (`mirage models synth`): the decoder comes from the registry, its declared branches are built the way
/// `mirage generate` builds them (the instruction changed, the image transformed or its rows removed), and it
/// decodes greedily for 8 tokens. With settings that must change the scores, the scores it reports before the
/// processors (`DecodingContext.onScores`) must differ from greedy's logits on the same prompt and tokens at some
/// step (or the tokens differ), which shows the branches and engine hooks were applied; each declared branch
/// must also ride along in the decode passes. No family is exempt: docs/decoders.md "Families" says why none
/// needs to be. (The random tiny models often repeat one token whatever the scores, so the tokens alone would
/// not show it.)
@Suite struct PostOperaDecodersOnEveryFamilyTests {
    static let architectures = ["llava-llama", "llava-qwen2", "llava-original", "shikra", "instructblip", "blip2-llama",
                                "minigpt4", "instructblip-lavis"]

    /// Settings per decoder for 2-layer tiny models: layers inside the model, contrasts strong enough to move
    /// the argmax, the argmax variant, and no repetition penalty (it alone would differ from greedy).
    static let settings: [(String, [String: ParameterValue])] = [
        // The noised image moves the tiny MiniGPT-4's logits by about 2e-4 only: a large α makes it visible.
        ("vcd", ["alpha": .double(50), "beta": .double(0), "sample": .bool(false)]),
        ("dola", ["candidate_layers": .ints([0]), "relative_top": .double(0), "repetition_penalty": .double(1)]),
        ("deco", ["start_layer": .int(0), "end_layer": .int(1), "alpha": .double(4), "threshold_top_k": .int(50),
                  "threshold_top_p": .double(1)]),
        ("icd", ["alpha": .double(3), "mode": .string("reference"), "sample": .bool(false)]),
        ("m3id", ["lambda": .double(1), "beta": .double(0), "sample": .bool(false)]),
        ("pai", ["alpha": .double(5), "gamma": .double(3), "start_layer": .int(0), "beta": .double(0),
                 "mode": .string("clean")]),
        ("vista", ["lambda": .double(3), "logits_alpha": .double(0.5), "logits_layers": .ints([0, 1])]),
        ("sid", ["alpha": .double(3), "beta": .double(0), "agg_layer": .int(1), "attention_rank": .int(2)]),
    ]

    @Test func theListCoversEveryFamilyThatCanBeSynthesized() {
        #expect(Set(ModelFamilies.synthArchitectures) == Set(Self.architectures),
                "a family was added or renamed: add it to PostOperaDecodersOnEveryFamilyTests.architectures")
    }

    @Test(arguments: architectures)
    func everyPostOperaDecoderRunsWithItsBranchesAndHooks(_ arch: String) throws {
        // A folder of its own per family: LLaVA-1.5 and Shikra write their vision tower beside the model.
        let root = TestTemporary.url("post-opera-\(arch)")
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = root.appendingPathComponent("model")
        let (_, synthesizer) = try #require(ModelFamilies.synthesizer(for: arch), "no family synthesizes \(arch)")
        _ = try synthesizer.write(SynthesisRequest(architecture: arch, size: "tiny", seed: 7, dtype: .f32), folder, { _ in })
        let vlm = try ModelFamilies.load(folder, options: LoadOptions(threads: 1))
        let tokenizer = try Tokenizer(folder: folder)
        let imagePath = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/paper-models/images/landscape-300x200.png").path
        // Short: the tiny InstructBLIP's Q-Former reads at most 64 instruction tokens, ICD's disturbance included.
        let question = "What is it?"

        // The prompt (or a branch) on the image, as `mirage generate --image` builds it.
        func layout(_ spec: BranchSpec?) throws -> PromptLayout {
            let instruction = spec?.instruction.apply(to: question) ?? question
            var pixels = try vlm.pixels(ofImageAt: imagePath, padToSquare: false)
            if case let .transformed(transform)? = spec?.image {
                pixels.values = try transform.apply(pixels.values, pixels.channels, pixels.height, pixels.width,
                                                    RandomKey(seed: 1, item: "image"))
            }
            let built = try vlm.prompt(instruction, template: vlm.defaultTemplate, tokenizer: tokenizer,
                                       image: vlm.embedImage(pixels, instruction: instruction))
            let layout = PromptLayout(items: built.items, imageSpan: built.imageSpan, inputIDs: built.inputIDs)
            return spec?.image == BranchImage.none ? layout.removingImage() : layout
        }
        let prompt = try layout(nil)
        let limits = GenerationLimits(maxNewTokens: 8, eosTokenIDs: [])
        let greedyScores = ScoreRecorder()
        var greedyContext = DecodingContext(model: vlm.languageModel, prompt: prompt, limits: limits)
        greedyContext.onScores = { greedyScores.steps.append($1) }
        let greedy = try GreedyDecoder().decode(greedyContext)
        #expect(greedy.tokens.count == 8 && greedyScores.steps.count == 8)

        for (name, values) in Self.settings {
            let descriptor = try DecoderRegistry.standard.descriptor(named: name)
            let decoder = try descriptor.make(descriptor.resolve(values: values))
            var branches: [String: PromptLayout] = [:]
            for spec in decoder.inputs.branches { branches[spec.role] = try layout(spec) }
            let scores = ScoreRecorder()
            var context = DecodingContext(model: vlm.languageModel, prompt: prompt, branches: branches, limits: limits)
            context.onScores = { scores.steps.append($1) }
            let result = try decoder.decode(context)
            #expect(result.tokens.count == 8 && scores.steps.count == 8, "\(name) on \(arch): \(result.tokens.count) tokens")
            // The largest change of a score that is finite in both, over the steps where the tokens so far agree.
            var change: Float = 0
            for (t, (mine, plain)) in zip(scores.steps, greedyScores.steps).enumerated() where result.tokens[..<t] == greedy.tokens[..<t] {
                for (a, b) in zip(mine, plain) where a.isFinite && b.isFinite { change = max(change, abs(a - b)) }
            }
            #expect(result.tokens != greedy.tokens || change > 1e-3,
                    "\(name) on \(arch): the scores equal greedy's logits (largest change \(change)): its branches or hooks had no effect")
            // Each declared branch rides along as its own sequence in the decode steps (VISTA's only in its prefill).
            let rowsPerStep = decoder.inputs.stepFactor < 1 ? 1 : decoder.inputs.sequencesPerStep
            #expect(result.decodeRows >= rowsPerStep * 7, "\(name) on \(arch): \(result.decodeRows) decode rows")
        }
    }
}

/// Each step's scores, as a decoder reports them.
private final class ScoreRecorder: @unchecked Sendable {
    var steps: [[Float]] = []
}
