import Foundation
import MirageEngine

/// Instruction contrastive decoding (Wang et al., "Mitigating Hallucinations in Large Vision-Language Models
/// with Instruction Contrastive Decoding", Findings of ACL 2024), as the SID repository implements it
/// (huofushuo/SID @ 127dd41: eval_utils/chair_eval.py and pope_eval.py build the disturbed prompt,
/// vcd_sample.py's `use_icd` branch scores it). The branch `"contrast"` is the item's prompt with a
/// disturbance placed right after the image ("You are a confused image caption model." for captions,
/// "You are a confused object detector." for POPE); each step scores `(1+α)·z − α·z_disturbed`.
///
/// Modes (docs/decoders.md "ICD"):
/// - `reference` (SID's code): with `sample=false` (its `--sample-greedy`, the default) the token is the
///   argmax of the raw combination: no plausibility cut-off, no processors (vcd_sample.py
///   `next_tokens = torch.argmax(diffs)`); with `sample=true` the cut-off β, the processors and sampling.
/// - `clean` (the paper): the cut-off β applies in both cases.
public struct ICDDecoder: Decoder {
    public enum Mode: String, Sendable, CaseIterable { case reference, clean }
    /// The disturbance instructions of SID's scripts.
    public static let disturbances = [
        "caption": "You are a confused image caption model.",   // eval_utils/chair_eval.py:216
        "detector": "You are a confused object detector.",       // pope_eval.py:291, eval_utils/gpt4v_eval.py:264
    ]

    public static let mode = Parameter<String>(
        "mode", .choice(Mode.allCases.map(\.rawValue)), default: "reference",
        help: "reference: SID's code (greedy = argmax of the raw contrast, no cut-off); clean: the paper (cut-off always).",
        source: "huofushuo/SID vcd_sample.py (use_icd branch)")
    public static let alpha = Parameter<Double>(
        "alpha", .double(0...100), default: 0.5, help: "Contrast strength: (1+α)·z − α·z_disturbed.",
        source: "huofushuo/SID vcd_sample.py fallback cd_alpha 0.5 (the scripts' --cd-alpha 1 is parsed but not passed to generate)")
    public static let beta = Parameter<Double>(
        "beta", .double(0...1), default: 0.1, help: "Plausibility cut-off: keep tokens with z ≥ log β + max z.",
        source: "huofushuo/SID vcd_sample.py fallback cd_beta 0.1")
    public static let disturbance = Parameter<String>(
        "disturbance", .choice(disturbances.keys.sorted()), default: "caption",
        help: "The disturbance instruction: caption = \"You are a confused image caption model.\", detector = \"You are a confused object detector.\".",
        source: "huofushuo/SID eval_utils/chair_eval.py (caption), pope_eval.py (detector)")
    public static let sample = Parameter<Bool>(
        "sample", .bool, default: false, help: "Sample (SID --sample without --sample-greedy) or take the best score.",
        source: "huofushuo/SID eval_utils/chair_eval.py --sample-greedy True")
    public static let numBeams = Parameter<Int>(
        "num_beams", .int(1...64), default: 1, help: "Only 1: ICD has no beam search (num_beams > 1 is refused with the reason).",
        source: "huofushuo/SID vcd_sample.py: the disturbed prompt is read only in sample (lines 94, 130, 198-243), which evolve_vcd_sampling installs (lines 338-339)")
    public static let branchRole = "contrast"

    public let parameters: DecoderParameters
    public let name = "icd"
    /// Called with each step's scores before the processors (what the greedy variant takes the argmax of);
    /// the parity tests compare them with the published code's.
    public var scoreObserver: (@Sendable (_ step: Int, _ scores: [Float]) -> Void)?

    public init(_ parameters: DecoderParameters) { self.parameters = parameters }

    /// SID inserts `' ' + text_cd` right after the image placeholder, before the question's own leading space.
    public var inputs: DecoderInputs {
        let text = Self.disturbances[parameters[Self.disturbance]] ?? Self.disturbances["caption"]!
        return DecoderInputs(branches: [BranchSpec(role: Self.branchRole, instruction: .prefixed(text + " "))])
    }

    public static let descriptor = DecoderDescriptor(
        name: "icd",
        summary: "Instruction contrastive decoding: contrast with the prompt under a disturbance instruction (SID repository's ICD).",
        parameters: [mode.spec, alpha.spec, beta.spec, disturbance.spec, ContrastSampling.temperature.spec,
                     ContrastSampling.topK.spec, ContrastSampling.topP.spec, ContrastSampling.repetitionPenalty.spec, sample.spec, numBeams.spec],
        presets: [
            DecoderPreset("icd-sid-chair", ["disturbance": .string("caption"), "alpha": .double(0.5), "beta": .double(0.1),
                                            "sample": .bool(false), "mode": .string("reference")],
                          source: "huofushuo/SID eval_utils/chair_eval.py --use-icd (sample-greedy)"),
            DecoderPreset("icd-sid-pope", ["disturbance": .string("detector"), "alpha": .double(0.5), "beta": .double(0.1),
                                           "sample": .bool(false), "mode": .string("reference")],
                          source: "huofushuo/SID pope_eval.py --use-icd (sample-greedy)"),
        ],
        make: { p in
            let beams = p[numBeams]
            guard beams == 1 else { throw PostOperaError.noBeamSearch(decoder: "icd", beams: beams, why: noBeamSearch) }
            return ICDDecoder(p)
        })

    /// Why ICD refuses `num_beams` > 1 (docs/decoders.md "Beam search and the post-OPERA decoders").
    static let noBeamSearch = "ICD's published code (the SID repository) has no beam search: the disturbed-instruction "
        + "prompt is used only in vcd_sample.py's sample (lines 94, 130, 198-243), which evolve_vcd_sampling installs in "
        + "place of transformers' sampling loop (lines 338-339); generate(num_beams > 1) from eval_utils/chair_eval.py "
        + "(--beam, line 247) or pope_eval.py (line 319) runs transformers' beam search, which ignores prompt_cd"

    public func decode(_ context: DecodingContext) throws -> DecodeResult {
        let contrast = try context.branch(Self.branchRole)
        let (alpha, beta) = (parameters[Self.alpha], parameters[Self.beta])
        let rawArgmax = parameters[Self.mode] == Mode.reference.rawValue && !parameters[Self.sample]
        let observer = scoreObserver
        return try decodeContrastive(context, branches: [contrast], options: ForwardOptions(),
                                     processors: rawArgmax ? [] : ContrastSampling.processors(parameters, limits: context.limits),
                                     score: { rows, step, trace in
            let c = ContrastiveScores.vcd(rows.logits[0], contrast: rows.logits[1], alpha: alpha, beta: rawArgmax ? 0 : beta)
            recordCutoff(c, step: step, trace: &trace)
            observer?(step, c.scores)
            return c.scores
        }, choose: ContrastSampling.choice(parameters, key: context.randomKey))
    }
}
