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
    let session = context.makeSession()
    var trace = DecodeTrace()
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
        if shared > 0 { try session.prefill(Array(context.prompt.items[..<shared]), options: ForwardOptions(logits: .none)) }
        for _ in branches { session.session.fork(0) }
    }
    var outputs: [ForwardOutput] = []
    for (i, p) in prompts.enumerated() {
        outputs.append(try session.prefill(Array(p.items[shared...]), to: i, options: i == 0 ? options : ForwardOptions()))
    }
    var rows = ContrastiveRows(logits: outputs.map { $0.logits(0) }, output: outputs[0])
    var response = ResponseAccumulator(context: context)
    while true {
        let step = response.tokens.count
        var scores = try score(rows, step, &trace)
        for p in processors { p.process(&scores, context: response.logitsContext) }
        let token = choose(scores, step)
        if try response.commit(token) { break }
        let out = try session.step([Int](repeating: token, count: prompts.count), options: options)
        rows = ContrastiveRows(logits: (0..<prompts.count).map { out.logits($0) }, output: out)
    }
    return response.result(meter: session.meter, trace: trace)
}

/// Sampling from the scores with the item's stream (as `SamplingDecoder`: draw `step`, stream 0), or argmax.
func contrastiveChoice(sample: Bool, key: RandomKey) -> ([Float], Int) -> Int {
    sample ? { scores, step in sampleIndex(weights: softmax(scores), u: key.uniform(step: step)) }
           : { scores, _ in argmax(scores) }
}

private let temperatureSpec = ParameterSpec(
    "temperature", .double(1e-6...100), default: .double(1.0), help: "Divide the scores by T before sampling.",
    source: "VCD object_hallucination_vqa_llava.py (--temperature 1.0)")
private let topKSpec = ParameterSpec(
    "top_k", .int(0...Int(Int32.max)), default: .int(0), help: "Keep the k best scores (0 = all).",
    source: "VCD object_hallucination_vqa_llava.py (--top_k None)")
private let topPSpec = ParameterSpec(
    "top_p", .double(0...1), default: .double(1.0), help: "Nucleus filter on the contrasted distribution (1 = off).",
    source: "VCD object_hallucination_vqa_llava.py (--top_p 1)")
private let sampleSpec = ParameterSpec(
    "sample", .bool, default: .bool(true), help: "Sample (true, as VCD always does) or take the best score (false).",
    source: "VCD vcd_sample.py (torch.multinomial)")

/// Visual contrastive decoding (Leng et al., CVPR 2024; DAMO-NLP-SG/VCD): a second branch sees a
/// diffusion-noised image (`VCDNoiseSchedule.noised`, then the vision encoder) and is fed the same tokens;
/// each step scores `(1+α)·z − α·z_noised` on the tokens that pass the plausibility cut-off β of `z`, then
/// applies the processors and samples. Needs the branch `"contrast"` (the noised-image prompt, same layout).
public struct VCDDecoder: Decoder {
    public var alpha: Double
    public var beta: Double
    /// The diffusion step of the noised image. The decoder gets the noised prompt ready-made; the value is
    /// recorded with the run and tells the runner which image to build.
    public var noiseStep: Int
    public var sampling: SamplingDecoder
    public var sample: Bool
    public let name = "vcd"
    public static let branchRole = "contrast"

    public init(alpha: Double = 1, beta: Double = 0.1, noiseStep: Int = 500, temperature: Double = 1, topK: Int = 0,
                topP: Double = 1, repetitionPenalty: Double = 1, sample: Bool = true) {
        self.alpha = alpha
        self.beta = beta
        self.noiseStep = noiseStep
        sampling = SamplingDecoder(temperature: temperature, topK: topK, topP: topP, repetitionPenalty: repetitionPenalty)
        self.sample = sample
    }

    public var parameters: DecoderParameters {
        cutoffParameters(sampling, beta: beta, sample: sample, ["alpha": .double(alpha), "noise_step": .int(noiseStep)])
    }

    public static let descriptor = DecoderDescriptor(
        name: "vcd",
        summary: "Visual contrastive decoding: contrast with a diffusion-noised image branch, plausibility cut-off, sampling.",
        parameters: [
            ParameterSpec("alpha", .double(0...100), default: .double(1.0), help: "Contrast strength: (1+α)·z − α·z_noised.",
                          source: "VCD object_hallucination_vqa_llava.py --cd_alpha 1 (the sampler's own fallback is 0.5)"),
            ParameterSpec("beta", .double(0...1), default: .double(0.1), help: "Plausibility cut-off: keep tokens with p ≥ β·max p.",
                          source: "VCD object_hallucination_vqa_llava.py --cd_beta 0.1"),
            ParameterSpec("noise_step", .int(0...999), default: .int(500),
                          help: "Diffusion step of the noised image (of 1000; sigmoid β schedule).",
                          source: "VCD object_hallucination_vqa_llava.py --noise_step 500"),
            temperatureSpec, topKSpec, topPSpec, repetitionPenaltySpec, sampleSpec,
        ],
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
        make: { p in
            VCDDecoder(alpha: p.double("alpha"), beta: p.double("beta"), noiseStep: p.int("noise_step"),
                       temperature: p.double("temperature"), topK: p.int("top_k"), topP: p.double("top_p"),
                       repetitionPenalty: p.double("repetition_penalty"), sample: p.bool("sample"))
        })

    public func decode(_ context: DecodingContext) throws -> DecodeResult {
        try decodeWithCutoff(context, contrast: context.branch(VCDDecoder.branchRole), alpha: alpha, beta: beta,
                             sampling: sampling, sample: sample)
    }
}

/// VCD's loop: the cut-off (and the contrast, when there is a branch), the sampling processors, the choice.
func decodeWithCutoff(_ context: DecodingContext, contrast: PromptLayout?, alpha: Double, beta: Double,
                      sampling: SamplingDecoder, sample: Bool) throws -> DecodeResult {
    try decodeContrastive(context, branches: contrast.map { [$0] } ?? [], options: ForwardOptions(),
                          processors: sampling.processors(context.limits),
                          score: { rows, step, trace in
        let c = ContrastiveScores.vcd(rows.logits[0], contrast: rows.logits.count > 1 ? rows.logits[1] : nil,
                                      alpha: alpha, beta: beta)
        recordCutoff(c, step: step, trace: &trace)
        return c.scores
    }, choose: contrastiveChoice(sample: sample, key: context.randomKey))
}

/// The recorded parameters of a cut-off decoder: the sampling ones, β, `sample`, and `extra`.
func cutoffParameters(_ sampling: SamplingDecoder, beta: Double, sample: Bool,
                      _ extra: [String: ParameterValue] = [:]) -> DecoderParameters {
    var values = sampling.parameters.values.merging(extra) { $1 }
    values["beta"] = .double(beta)
    values["sample"] = .bool(sample)
    return DecoderParameters(values)
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
    public var beta: Double
    public var sampling: SamplingDecoder
    public var sample: Bool
    public let name = "apc"

    public init(beta: Double = 0.1, temperature: Double = 1, topK: Int = 0, topP: Double = 1,
                repetitionPenalty: Double = 1, sample: Bool = true) {
        self.beta = beta
        sampling = SamplingDecoder(temperature: temperature, topK: topK, topP: topP, repetitionPenalty: repetitionPenalty)
        self.sample = sample
    }

    public var parameters: DecoderParameters { cutoffParameters(sampling, beta: beta, sample: sample) }

    public static let descriptor = DecoderDescriptor(
        name: "apc",
        summary: "Control: VCD's plausibility cut-off alone (no contrast branch), then sampling. beta=0 is fixed-temperature sampling.",
        parameters: [
            ParameterSpec("beta", .double(0...1), default: .double(0.1),
                          help: "Keep tokens with p ≥ β·max p (0 = keep all: plain sampling at the temperature).",
                          source: "VCD --cd_beta 0.1, so `apc` is VCD with α = 0"),
            temperatureSpec, topKSpec, topPSpec, repetitionPenaltySpec, sampleSpec,
        ],
        presets: [
            DecoderPreset("cd-rethink-apc", ["beta": .double(0.2), "temperature": .double(0.2)],
                          source: "cd_rethink inference/pope_infer_apc.py (--temperature 0.2) with apc_utils.py cd_beta 0.2"),
            DecoderPreset("fixed-temperature", ["beta": .double(0), "temperature": .double(0.2)],
                          source: "cd_rethink's temperature control: sampling at T=0.2 with the cut-off off"),
        ],
        make: { p in
            PlausibilityCutoffDecoder(beta: p.double("beta"), temperature: p.double("temperature"), topK: p.int("top_k"),
                                      topP: p.double("top_p"), repetitionPenalty: p.double("repetition_penalty"),
                                      sample: p.bool("sample"))
        })

    public func decode(_ context: DecodingContext) throws -> DecodeResult {
        try decodeWithCutoff(context, contrast: nil, alpha: 0, beta: beta, sampling: sampling, sample: sample)
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
    /// Explicit candidate layers (0 = the embeddings); empty = `layerSet`.
    public var candidateLayers: [Int]
    public var layerSet: LayerSet
    /// The mature layer; nil = the last layer (the model's logits).
    public var matureLayer: Int?
    public var relativeTop: Double
    public var repetitionPenalty: Double
    public var finalNorm: Bool
    public let name = "dola"

    public init(candidateLayers: [Int] = [], layerSet: LayerSet = .even, matureLayer: Int? = nil,
                relativeTop: Double = 0.1, repetitionPenalty: Double = 1.2, finalNorm: Bool = false) {
        self.candidateLayers = candidateLayers
        self.layerSet = layerSet
        self.matureLayer = matureLayer
        self.relativeTop = relativeTop
        self.repetitionPenalty = repetitionPenalty
        self.finalNorm = finalNorm
    }

    public var parameters: DecoderParameters {
        DecoderParameters(["candidate_layers": .ints(candidateLayers), "layers": .string(layerSet.rawValue),
                           "mature_layer": .int(matureLayer ?? -1), "relative_top": .double(relativeTop),
                           "repetition_penalty": .double(repetitionPenalty), "final_norm": .bool(finalNorm)])
    }

    public static let descriptor = DecoderDescriptor(
        name: "dola",
        summary: "DoLa: contrast the final layer with the most divergent early layer (dynamic premature layer), greedy.",
        parameters: [
            ParameterSpec("layers", .choice(LayerSet.allCases.map(\.rawValue)), default: .string("even"),
                          help: "Candidate premature layers when candidate_layers is not set: even = 0,2,…,L−2; low = even layers below L/2; high = even layers from L/2.",
                          source: "HALC caption_generation.py (all even layers 0..30, mature 32); low/high: DoLa README (7B: 0..14 / 16..30)"),
            ParameterSpec("candidate_layers", .ints, default: .ints([]),
                          help: "Explicit candidate layers, e.g. 0,2,4 (0 = the embeddings); overrides `layers`.",
                          source: "DoLa --early-exit-layers (all but the last entry)"),
            ParameterSpec("mature_layer", .int(-1...4096), default: .int(-1), help: "The mature layer (-1 = the last layer).",
                          source: "DoLa --early-exit-layers (last entry, 32 for 7B)"),
            ParameterSpec("relative_top", .double(0...1), default: .double(0.1),
                          help: "Keep tokens with p_mature ≥ relative_top·max p_mature (0 = no filter, raw logit difference).",
                          source: "DoLa dola_greedy_decode relative_top=0.1"),
            ParameterSpec("repetition_penalty", .double(0.01...100), default: .double(1.2),
                          help: "transformers' repetition penalty on the DoLa scores (prompt ids + generated). 1 = off.",
                          source: "DoLa tfqa_eval.py --repetition_penalty 1.2 in DoLa modes"),
            ParameterSpec("final_norm", .bool, default: .bool(false),
                          help: "Apply the final RMSNorm to early exits (the official code does not; voidism/DoLa#9).",
                          source: "DoLa modeling_llama.py: lm_head(hidden_states[j])"),
        ],
        presets: [
            DecoderPreset("dola-halc", ["layers": .string("even")], source: "HALC run_scripts/caption_generation.py"),
            DecoderPreset("dola-low", ["layers": .string("low")], source: "DoLa README: 0,2,…,14 for 7B (FACTOR, GSM8K, StrQA)"),
            DecoderPreset("dola-high", ["layers": .string("high")], source: "DoLa README: 16,18,…,30 for 7B (TruthfulQA)"),
        ],
        make: { p in
            DoLaDecoder(candidateLayers: p.ints("candidate_layers"), layerSet: LayerSet(rawValue: p.string("layers"))!,
                        matureLayer: p.int("mature_layer") < 0 ? nil : p.int("mature_layer"),
                        relativeTop: p.double("relative_top"), repetitionPenalty: p.double("repetition_penalty"),
                        finalNorm: p.bool("final_norm"))
        })

    /// The candidate layers and the mature layer for a model with `layers` decoder layers.
    public func layers(modelLayers L: Int) throws -> (candidates: [Int], mature: Int) {
        let mature = matureLayer ?? L
        guard (1...L).contains(mature) else { throw ContrastiveError.layer(mature, layers: L, role: "mature") }
        let candidates: [Int]
        if !candidateLayers.isEmpty {
            candidates = candidateLayers
        } else {
            switch layerSet {
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
        let H = model.config.hiddenSize
        let V = model.config.vocabSize
        let (relativeTop, finalNorm) = (relativeTop, finalNorm)
        let processors = standardProcessors(repetitionPenalty: repetitionPenalty, limits: context.limits)
        return try decodeContrastive(context, branches: [], options: ForwardOptions(hiddenStateLayers: hiddenLayers),
                                     processors: processors, score: { rows, step, trace in
            // Early exits of every candidate (and a non-final mature layer) in one LM-head call.
            var hidden: [Float] = []
            hidden.reserveCapacity(hiddenLayers.count * H)
            for l in hiddenLayers {
                let all = rows.output.hiddenStates[l]!
                hidden += all[(rows.lastRow * H)..<((rows.lastRow + 1) * H)]
            }
            let exits = model.earlyExitLogits(hidden, rows: hiddenLayers.count, applyFinalNorm: finalNorm)
            let premature = candidates.indices.map { exits[($0 * V)..<(($0 + 1) * V)] }
            let matureLogits = mature == L ? rows.logits[0] : exits[(candidates.count * V)..<((candidates.count + 1) * V)]
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
