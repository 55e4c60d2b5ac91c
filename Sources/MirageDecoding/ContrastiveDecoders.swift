import Foundation
import MirageEngine

// VCD, DoLa and the controls that judge contrastive methods (the plausibility cut-off alone, sampling at a
// fixed temperature). See docs/contrastive.md.

/// The logits rows of one step: one per sequence (the prompt first, then the branches in order), and the
/// pass's output (hidden states for DoLa). At the prefill each sequence has its own pass; `output` is the
/// prompt's, whose last row is the one that predicts.
struct ContrastiveRows {
    var logits: [ArraySlice<Float>]
    var output: ForwardOutput
    /// Row of `output` that predicts the next token.
    var lastRow: Int { output.rows.count - 1 }
}

/// The loop the contrastive decoders share: the prompt and each branch prompt become sequences of one
/// session (a common prefix is prefilled once and forked), each step feeds the chosen token to every
/// sequence in a single pass (the weights are read once for all branches), `score` turns the rows into
/// one scores row, then the processors (repetition penalty, min-new-tokens, warpers) and `choose`.
func decodeContrastive(_ context: DecodingContext, branches: [PromptLayout], options: ForwardOptions,
                       processors: [any LogitsProcessor],
                       score: (ContrastiveRows, Int, inout DecodeTrace) throws -> [Float],
                       choose: ([Float], Int) -> Int) throws -> DecodeResult {
    let limits = context.limits
    var session = context.makeSession()
    guard limits.maxNewTokens > 0 else {
        return DecodeResult(tokens: [], text: "", stopReason: .maxNewTokens, meter: session.meter)
    }
    let prompts = [context.prompt] + branches
    guard prompts.allSatisfy({ !$0.items.isEmpty }) else { throw DecodingError.emptyPrompt }
    // The rows every prompt starts with (e.g. the system prompt before the image) are computed once.
    var shared = 0
    if prompts.count > 1 {
        let limit = prompts.map { $0.items.count }.min()! - 1
        while shared < limit, prompts.allSatisfy({ $0.items[shared] == context.prompt.items[shared] }) { shared += 1 }
        // Through the prefix cache when there is one: up to the prompt's own shared prefix (e.g. the system
        // prompt and image, reused by every question on the image), or the common part when it is shorter
        // (a text-only branch: the system prompt before the image, reused by every item).
        let cached = min(shared, context.prompt.prefixLength ?? shared)
        if cached > 0, let cache = context.prefixCache {
            session = try cache.session(prefix: context.prompt.items[..<cached], model: context.model, blockSize: context.blockSize)
            if shared > cached {
                try session.prefill(Array(context.prompt.items[cached..<shared]), options: ForwardOptions(logits: .none))
            }
        } else if shared > 0 {
            try session.prefill(Array(context.prompt.items[..<shared]), options: ForwardOptions(logits: .none))
        }
        for _ in branches { session.session.fork(0) }
    }
    var outputs: [ForwardOutput] = []
    for (i, p) in prompts.enumerated() {
        outputs.append(try session.prefill(Array(p.items[shared...]), to: i, options: i == 0 ? options : ForwardOptions()))
    }
    let stepped = session
    return try decodeTokens(context, session: session, first: ContrastiveRows(logits: outputs.map { $0.logits(0) }, output: outputs[0]),
                            processors: processors, score: score, choose: choose) { token, _ in
        let out = try stepped.step([Int](repeating: token, count: prompts.count), options: options)
        return ContrastiveRows(logits: (0..<prompts.count).map { out.logits($0) }, output: out)
    }
}

/// The early-exit logits of `layers` at the predicting row, in one LM-head call: `lm_head(h_l)`, or
/// `lm_head(norm(h_l))` with `finalNorm`. The pass must have asked for those hidden states.
func earlyExits(_ rows: ContrastiveRows, layers: [Int], model: LanguageModel, finalNorm: Bool) -> [ArraySlice<Float>] {
    earlyExits(rows.output, row: rows.lastRow, layers: layers, model: model, finalNorm: finalNorm)
}

/// The early-exit logits of `layers` at query row `row` of `output` (an index into `output.rows`).
func earlyExits(_ output: ForwardOutput, row: Int, layers: [Int], model: LanguageModel, finalNorm: Bool) -> [ArraySlice<Float>] {
    let H = model.config.hiddenSize, V = model.config.vocabSize
    var hidden: [Float] = []
    hidden.reserveCapacity(layers.count * H)
    for l in layers {
        hidden += output.hiddenStates[l]![(row * H)..<((row + 1) * H)]
    }
    let exits = model.earlyExitLogits(hidden, rows: layers.count, applyFinalNorm: finalNorm)
    return layers.indices.map { exits[($0 * V)..<(($0 + 1) * V)] }
}

/// Sampling from the scores with the item's stream (as `SamplingDecoder`: draw `step`, stream 0), or argmax.
func contrastiveChoice(sample: Bool, key: RandomKey) -> ([Float], Int) -> Int {
    sample ? { scores, step in sampleIndex(weights: softmax(scores), u: key.uniform(step: step)) }
           : { scores, _ in argmax(scores) }
}

/// The sampling parameters the contrastive decoders share (declared once; VCD's defaults): the processors
/// after the contrast, and whether to sample or take the best score.
public enum ContrastSampling {
    public static let temperature = Parameter<Double>(
        "temperature", .double(1e-6...100), default: 1, help: "Divide the scores by T before sampling.",
        source: "VCD object_hallucination_vqa_llava.py (--temperature 1.0)")
    public static let topK = Parameter<Int>(
        "top_k", .int(0...Int(Int32.max)), default: 0, help: "Keep the k best scores (0 = all).",
        source: "VCD object_hallucination_vqa_llava.py (--top_k None)")
    public static let topP = Parameter<Double>(
        "top_p", .double(0...1), default: 1, help: "Nucleus filter on the contrasted distribution (1 = off).",
        source: "VCD object_hallucination_vqa_llava.py (--top_p 1)")
    public static let repetitionPenalty = Parameter<Double>(
        "repetition_penalty", repetitionPenaltySpec.kind, default: 1, help: repetitionPenaltySpec.help,
        source: repetitionPenaltySpec.source)
    public static let sample = Parameter<Bool>(
        "sample", .bool, default: true, help: "Sample (true, as VCD always does) or take the best score (false).",
        source: "VCD vcd_sample.py (torch.multinomial)")

    /// The five specs, for a descriptor's parameter list.
    public static let specs = [temperature.spec, topK.spec, topP.spec, repetitionPenalty.spec, sample.spec]

    /// The processors of `SamplingDecoder` with these parameters (penalty, min-new-tokens, T, top-k, top-p).
    static func processors(_ p: DecoderParameters, limits: GenerationLimits) -> [any LogitsProcessor] {
        SamplingDecoder(temperature: p[temperature], topK: p[topK], topP: p[topP], repetitionPenalty: p[repetitionPenalty])
            .processors(limits)
    }

    /// Sampling with the item's stream, or argmax, as `sample` says.
    static func choice(_ p: DecoderParameters, key: RandomKey) -> ([Float], Int) -> Int {
        contrastiveChoice(sample: p[sample], key: key)
    }
}

/// VCD's plausibility cut-off β (`apc` has the same with its own help).
private let cutoffBeta = Parameter<Double>(
    "beta", .double(0...1), default: 0.1, help: "Plausibility cut-off: keep tokens with p ≥ β·max p.",
    source: "VCD object_hallucination_vqa_llava.py --cd_beta 0.1")

/// Visual contrastive decoding (Leng et al., CVPR 2024; DAMO-NLP-SG/VCD): a second branch sees a
/// diffusion-noised image (`VCDNoiseSchedule.noised`, then the vision encoder) and is fed the same tokens;
/// each step scores `(1+α)·z − α·z_noised` on the tokens that pass the plausibility cut-off β of `z`, then
/// applies the processors and samples. Declares the branch `"contrast"`: the prompt with the image noised at
/// `noise_step`.
public struct VCDDecoder: Decoder {
    public static let alpha = Parameter<Double>(
        "alpha", .double(0...100), default: 1, help: "Contrast strength: (1+α)·z − α·z_noised.",
        source: "VCD object_hallucination_vqa_llava.py --cd_alpha 1 (the sampler's own fallback is 0.5)")
    public static let beta = cutoffBeta
    public static let noiseStep = Parameter<Int>(
        "noise_step", .int(0...999), default: 500, help: "Diffusion step of the noised image (of 1000; sigmoid β schedule).",
        source: "VCD object_hallucination_vqa_llava.py --noise_step 500")
    public static let branchRole = "contrast"

    public let parameters: DecoderParameters
    public let name = "vcd"

    /// `parameters` from `descriptor.resolve(...)` (every parameter present).
    public init(_ parameters: DecoderParameters) { self.parameters = parameters }

    public var inputs: DecoderInputs {
        DecoderInputs(branches: [BranchSpec(role: Self.branchRole, image: .transformed(.vcdNoise(step: parameters[Self.noiseStep])))])
    }

    public static let descriptor = DecoderDescriptor(
        name: "vcd",
        summary: "Visual contrastive decoding: contrast with a diffusion-noised image branch, plausibility cut-off, sampling.",
        parameters: [alpha.spec, beta.spec, noiseStep.spec] + ContrastSampling.specs,
        presets: [
            DecoderPreset("vcd-paper", ["alpha": .double(1), "beta": .double(0.1), "noise_step": .int(500),
                                        "temperature": .double(1), "top_p": .double(1), "top_k": .int(0), "sample": .bool(true)],
                          source: "VCD object_hallucination_vqa_llava.py defaults (α=1, β=0.1, step 500, T=1, sampling)"),
            DecoderPreset("vcd-pope-script", ["beta": .double(0.2)],
                          source: "VCD experiments/cd_scripts/llava1.5_pope.bash (cd_beta=0.2)"),
            DecoderPreset("vcd-noise-999", ["noise_step": .int(999)], source: "VCD paper's other noise step (discussed in RITUAL#2)"),
            DecoderPreset("vcd-greedy", ["sample": .bool(false)],
                          source: "argmax of the VCD scores (VCD issue #15 asks for it; not in the official code)"),
        ],
        make: { VCDDecoder($0) })

    public func decode(_ context: DecodingContext) throws -> DecodeResult {
        try decodeWithCutoff(context, contrast: context.branch(Self.branchRole), alpha: parameters[Self.alpha],
                             beta: parameters[Self.beta], parameters: parameters)
    }
}

/// VCD's loop: the cut-off (and the contrast, when there is a branch), the sampling processors, the choice.
func decodeWithCutoff(_ context: DecodingContext, contrast: PromptLayout?, alpha: Double, beta: Double,
                      parameters: DecoderParameters) throws -> DecodeResult {
    try decodeContrastive(context, branches: contrast.map { [$0] } ?? [], options: ForwardOptions(),
                          processors: ContrastSampling.processors(parameters, limits: context.limits),
                          score: { rows, step, trace in
        let c = ContrastiveScores.vcd(rows.logits[0], contrast: rows.logits.count > 1 ? rows.logits[1] : nil,
                                      alpha: alpha, beta: beta)
        recordCutoff(c, step: step, trace: &trace)
        return c.scores
    }, choose: ContrastSampling.choice(parameters, key: context.randomKey))
}

/// Trace of the plausibility cut-off: steps where it changed the best token, and the plausible-set sizes.
func recordCutoff(_ c: ContrastiveScores.Contrast, step: Int, trace: inout DecodeTrace) {
    trace.count("steps")
    trace.count("plausible-tokens", by: Double(c.plausibleCount))
    if c.cutoffBound {
        trace.count("cutoff-bound-steps")
        trace.record(TraceEvent(step: step, kind: "cutoff-bound", value: Double(c.plausibleCount)))
    }
}

/// The control for contrastive decoding (cd_rethink, arXiv 2504.10020): VCD's plausibility cut-off and
/// sampling without any contrast branch (one pass per token). With β = 0 nothing is cut, which is plain
/// sampling at the given temperature: the fixed-temperature control.
public struct PlausibilityCutoffDecoder: Decoder {
    public static let beta = Parameter<Double>(
        "beta", .double(0...1), default: 0.1,
        help: "Keep tokens with p ≥ β·max p (0 = keep all: plain sampling at the temperature).",
        source: "VCD --cd_beta 0.1, so `apc` is VCD with α = 0")

    public let parameters: DecoderParameters
    public let name = "apc"

    public init(_ parameters: DecoderParameters) { self.parameters = parameters }

    public static let descriptor = DecoderDescriptor(
        name: "apc",
        summary: "Control: VCD's plausibility cut-off alone (no contrast branch), then sampling. beta=0 is fixed-temperature sampling.",
        parameters: [beta.spec] + ContrastSampling.specs,
        presets: [
            DecoderPreset("cd-rethink-apc", ["beta": .double(0.2), "temperature": .double(0.2)],
                          source: "cd_rethink inference/pope_infer_apc.py (--temperature 0.2) with apc_utils.py cd_beta 0.2"),
            DecoderPreset("fixed-temperature", ["beta": .double(0), "temperature": .double(0.2)],
                          source: "cd_rethink's temperature control: sampling at T=0.2 with the cut-off off"),
        ],
        make: { PlausibilityCutoffDecoder($0) })

    public func decode(_ context: DecodingContext) throws -> DecodeResult {
        try decodeWithCutoff(context, contrast: nil, alpha: 0, beta: parameters[Self.beta], parameters: parameters)
    }
}

/// DoLa, decoding by contrasting layers (Chuang et al., ICLR 2024; voidism/DoLa): each step picks the
/// candidate premature layer whose early-exit distribution is farthest (Jensen–Shannon, as the code
/// computes it) from the mature layer's, scores `log p_mature − log p_premature` on the tokens passing the
/// relative-top filter, applies the repetition penalty to those scores and takes the best (greedy, as
/// `dola_greedy_decode`). Early exits are `lm_head(h_j)` without the final norm, as the official code;
/// `final_norm=true` applies it (the question of voidism/DoLa#9).
public struct DoLaDecoder: Decoder {
    public enum LayerSet: String, Sendable, CaseIterable { case even, low, high }

    public static let layerSet = Parameter<String>(
        "layers", .choice(LayerSet.allCases.map(\.rawValue)), default: "even",
        help: "Candidate premature layers when candidate_layers is not set: even = 0,2,…,L−2; low = even layers below L/2; high = even layers from L/2.",
        source: "HALC caption_generation.py (all even layers 0..30, mature 32); low/high: DoLa README (7B: 0..14 / 16..30)")
    public static let candidateLayers = Parameter<[Int]>(
        "candidate_layers", .ints, default: [],
        help: "Explicit candidate layers, e.g. 0,2,4 (0 = the embeddings); overrides `layers`.",
        source: "DoLa --early-exit-layers (all but the last entry)")
    public static let matureLayer = Parameter<Int>(
        "mature_layer", .int(-1...4096), default: -1, help: "The mature layer (-1 = the last layer).",
        source: "DoLa --early-exit-layers (last entry, 32 for 7B)")
    public static let relativeTop = Parameter<Double>(
        "relative_top", .double(0...1), default: 0.1,
        help: "Keep tokens with p_mature ≥ relative_top·max p_mature (0 = no filter, raw logit difference).",
        source: "DoLa dola_greedy_decode relative_top=0.1")
    public static let repetitionPenalty = Parameter<Double>(
        "repetition_penalty", .double(0.01...100), default: 1.2,
        help: "transformers' repetition penalty on the DoLa scores (prompt ids + generated). 1 = off.",
        source: "DoLa tfqa_eval.py --repetition_penalty 1.2 in DoLa modes")
    public static let finalNorm = Parameter<Bool>(
        "final_norm", .bool, default: false,
        help: "Apply the final RMSNorm to early exits (the official code does not; voidism/DoLa#9).",
        source: "DoLa modeling_llama.py: lm_head(hidden_states[j])")

    public let parameters: DecoderParameters
    public let name = "dola"

    public init(_ parameters: DecoderParameters) { self.parameters = parameters }

    public var inputs: DecoderInputs {
        DecoderInputs(hooks: [.hiddenStates(layers: parameters[Self.candidateLayers].isEmpty
            ? .perModel(rule: "\(parameters[Self.layerSet]) layers below the mature one, and the mature one")
            : .layers(parameters[Self.candidateLayers]))])
    }

    public static let descriptor = DecoderDescriptor(
        name: "dola",
        summary: "DoLa: contrast the final layer with the most divergent early layer (dynamic premature layer), greedy.",
        parameters: [layerSet.spec, candidateLayers.spec, matureLayer.spec, relativeTop.spec, repetitionPenalty.spec,
                     finalNorm.spec],
        presets: [
            DecoderPreset("dola-halc", ["layers": .string("even")], source: "HALC run_scripts/caption_generation.py"),
            DecoderPreset("dola-low", ["layers": .string("low")], source: "DoLa README: 0,2,…,14 for 7B (FACTOR, GSM8K, StrQA)"),
            DecoderPreset("dola-high", ["layers": .string("high")], source: "DoLa README: 16,18,…,30 for 7B (TruthfulQA)"),
        ],
        make: { DoLaDecoder($0) })

    /// The candidate layers and the mature layer for a model with `layers` decoder layers.
    public func layers(modelLayers L: Int) throws -> (candidates: [Int], mature: Int) {
        let mature = parameters[Self.matureLayer] < 0 ? L : parameters[Self.matureLayer]
        guard (1...L).contains(mature) else { throw ContrastiveError.layer(mature, layers: L, role: "mature") }
        var candidates = parameters[Self.candidateLayers]
        if candidates.isEmpty {
            switch LayerSet(rawValue: parameters[Self.layerSet]) ?? .even {
            case .even: candidates = Array(stride(from: 0, to: mature, by: 2))
            case .low: candidates = Array(stride(from: 0, to: mature / 2, by: 2))
            case .high: candidates = Array(stride(from: mature / 2, to: mature, by: 2))
            }
        }
        guard !candidates.isEmpty else { throw ContrastiveError.noCandidateLayers }
        for c in candidates {
            guard (0...L).contains(c) else { throw ContrastiveError.layer(c, layers: L, role: "candidate") }
            guard c != mature else { throw ContrastiveError.candidateIsMature(c) }
        }
        return (candidates, mature)
    }

    public func decode(_ context: DecodingContext) throws -> DecodeResult {
        let model = context.model
        let L = model.config.numLayers
        let (candidates, mature) = try layers(modelLayers: L)
        let hiddenLayers = candidates + (mature == L ? [] : [mature])
        let (relativeTop, finalNorm) = (parameters[Self.relativeTop], parameters[Self.finalNorm])
        let processors = standardProcessors(repetitionPenalty: parameters[Self.repetitionPenalty], limits: context.limits)
        return try decodeContrastive(context, branches: [], options: ForwardOptions(hiddenStateLayers: hiddenLayers),
                                     processors: processors, score: { rows, step, trace in
            // Early exits of every candidate (and a non-final mature layer) in one LM-head call.
            let exits = earlyExits(rows, layers: hiddenLayers, model: model, finalNorm: finalNorm)
            let premature = Array(exits[..<candidates.count])
            let matureLogits = mature == L ? rows.logits[0] : exits[candidates.count]
            let js = ContrastiveScores.dolaDivergences(mature: matureLogits, premature: premature)
            var best = 0
            for i in js.indices where js[i] > js[best] { best = i }
            let layer = candidates[best]
            trace.count("premature-layer-\(layer)")
            trace.record(TraceEvent(step: step, kind: "premature-layer", position: layer, value: js[best]))
            let result = ContrastiveScores.dola(mature: matureLogits, premature: premature[best], relativeTop: relativeTop)
            trace.count("relative-top-kept", by: Double(result.kept))
            return result.scores
        }, choose: { scores, _ in argmax(scores) })
    }
}
