import Foundation
import MirageEngine

/// M3ID, multi-modal mutual-information decoding (Favero et al., CVPR 2024; no official code). Follows the
/// implementation in zifuwan/ONLY @ 109bffe (only_utils/only_sample.py, `use_m3id`): the branch
/// `"unconditional"` is the prompt without its image rows (ONLY's `prepare_inputs_for_generation_m3id` drops
/// the image token and passes no image); at step t (0 for the first new token) with γ_t = exp(−λ·t),
/// scores `z + ((z − z_uncond)·(1 − γ_t))/γ_t` on the tokens passing the plausibility cut-off β of `z`, then
/// the processors and the choice (ONLY always samples; `sample=false` takes the best score, for parity).
/// `mode=clean` is the paper's rule instead (eq. 4 and Algorithm 1, as docs/decoders.md sources them): on
/// log-probabilities `l_c`, `l_u`, `l_c + ((1 − γ)/γ)·(l_c − l_u)` only while `max p_c < α`, `l_c` otherwise,
/// γ = exp(−λ·(t + t₀)), no plausibility cut-off.
public struct M3IDDecoder: Decoder {
    public enum Mode: String, Sendable, CaseIterable { case reference, clean }
    public static let mode = Parameter<String>(
        "mode", .choice(Mode.allCases.map(\.rawValue)), default: "reference",
        help: "reference: ONLY's code (raw logits, β cut-off, contrast on every step); clean: the paper (log-probabilities, contrast only while max p < alpha, no cut-off; the paper takes the argmax, so add sample=false or use the m3id-clean presets, which do).",
        source: "reference: zifuwan/ONLY only_utils/only_sample.py; clean: Favero et al. CVPR 2024 eq. 4, Algorithm 1")
    public static let alpha = Parameter<Double>(
        "alpha", .double(0...1), default: 0.3,
        help: "clean mode: contrast only on steps where the image-conditioned top probability is below alpha (0 = never, 1 = always).",
        source: "Favero et al. CVPR 2024 Algorithm 1, α = 0.3 (implementation details)")
    public static let offset = Parameter<Int>(
        "t0", .int(0...4096), default: 0,
        help: "clean mode: offset of the schedule, γ = exp(−λ·(t + t0)); the paper uses 0 for captions, 10 for POPE (about the question's length).",
        source: "Favero et al. CVPR 2024 implementation details (t0 = 0 captioning, 10 POPE)")
    public static let lambda = Parameter<Double>(
        "lambda", .double(0...10), default: 0.02,
        help: "Decay of γ_t = exp(−λ·t) (clean: exp(−λ·(t + t0))): the weight of the image grows as (1 − γ_t)/γ_t over the response.",
        source: "zifuwan/ONLY only_utils/only_sample.py (torch.exp(torch.tensor(-0.02*t)))")
    public static let beta = Parameter<Double>(
        "beta", .double(0...1), default: 0.1,
        help: "reference mode: plausibility cut-off, keep tokens with z ≥ log β + max z (the paper has none).",
        source: "zifuwan/ONLY only_utils/only_sample.py ritual_beta fallback 0.1")
    public static let sample = Parameter<Bool>(
        "sample", .bool, default: true, help: "Sample (ONLY's multinomial) or take the best score.",
        source: "zifuwan/ONLY only_utils/only_sample.py (torch.multinomial)")
    public static let branchRole = "unconditional"

    public let parameters: DecoderParameters
    public let name = "m3id"
    /// Called with each step's scores before the processors (what the greedy variant takes the argmax of);
    /// the parity tests compare them with the published code's.
    public var scoreObserver: (@Sendable (_ step: Int, _ scores: [Float]) -> Void)?

    public init(_ parameters: DecoderParameters) { self.parameters = parameters }

    public var inputs: DecoderInputs {
        DecoderInputs(branches: [BranchSpec(role: Self.branchRole, image: .none)])
    }

    public static let descriptor = DecoderDescriptor(
        name: "m3id",
        summary: "M3ID: contrast with the text-only prompt, weighted more as the response grows (γ_t = exp(−λt)).",
        parameters: [mode.spec, lambda.spec, beta.spec, alpha.spec, offset.spec, ContrastSampling.temperature.spec,
                     ContrastSampling.topK.spec, ContrastSampling.topP.spec, ContrastSampling.repetitionPenalty.spec,
                     sample.spec],
        presets: [
            DecoderPreset("m3id-only", ["lambda": .double(0.02), "beta": .double(0.1), "sample": .bool(true)],
                          source: "zifuwan/ONLY --use_m3id (only_sample.py)"),
            DecoderPreset("m3id-greedy", ["sample": .bool(false)], source: "argmax of the M3ID scores (parity setting; not in ONLY)"),
            DecoderPreset("m3id-clean", ["mode": .string("clean"), "lambda": .double(0.02), "alpha": .double(0.3),
                                         "t0": .int(0), "sample": .bool(false)],
                          source: "Favero et al. CVPR 2024 Algorithm 1 (argmax), captioning settings"),
            DecoderPreset("m3id-clean-pope", ["mode": .string("clean"), "lambda": .double(0.02), "alpha": .double(0.3),
                                              "t0": .int(10), "sample": .bool(false)],
                          source: "Favero et al. CVPR 2024 implementation details (POPE: t0 = 10)"),
        ],
        make: { M3IDDecoder($0) })

    /// One step: `z + ((z − u)·(1 − γ))/γ` with γ = exp(−λ·t) in f32 (as torch computes it), −∞ where
    /// `z < log β + max z`.
    public static func scores(_ z: ArraySlice<Float>, unconditional u: ArraySlice<Float>, step t: Int, lambda: Double,
                              beta: Double) -> [Float] {
        let gamma = Foundation.exp(Float(-lambda * Double(t)))
        let cutoff = ContrastiveScores.plausibilityThreshold(z, beta: beta)
        var scores = [Float](repeating: -.infinity, count: z.count)
        for (i, (a, b)) in zip(z, u).enumerated() where a >= cutoff {
            scores[i] = a + ((a - b) * (1 - gamma)) / gamma
        }
        return scores
    }

    /// One step of the paper's rule (`mode=clean`): `l_c` = log-softmax of `z`, `l_u` of `u`; while
    /// `max l_c < log α` the scores are `l_c + ((1 − γ)/γ)·(l_c − l_u)` with γ = exp(−λ·(t + t₀)), else `l_c`.
    /// No token is cut off.
    public static func cleanScores(_ z: ArraySlice<Float>, unconditional u: ArraySlice<Float>, step t: Int,
                                   lambda: Double, offset: Int, alpha: Double) -> (scores: [Float], amplified: Bool) {
        let conditioned = logSoftmax(z)
        guard let top = conditioned.max(), Double(top) < Foundation.log(alpha) else { return (conditioned, false) }
        let gamma = Foundation.exp(-lambda * Double(t + offset))
        let weight = Float((1 - gamma) / gamma)
        return (zip(conditioned, logSoftmax(u)).map { c, n in c + weight * (c - n) }, true)
    }

    public func decode(_ context: DecodingContext) throws -> DecodeResult {
        let unconditional = try context.branch(Self.branchRole)
        let (lambda, beta, observer) = (parameters[Self.lambda], parameters[Self.beta], scoreObserver)
        let (clean, alpha, offset) = (parameters[Self.mode] == Mode.clean.rawValue, parameters[Self.alpha], parameters[Self.offset])
        return try decodeContrastive(context, branches: [unconditional], options: ForwardOptions(),
                                     processors: ContrastSampling.processors(parameters, limits: context.limits),
                                     score: { rows, step, trace in
            trace.count("steps")
            let scores: [Float]
            if clean {
                let paper = Self.cleanScores(rows.logits[0], unconditional: rows.logits[1], step: step, lambda: lambda,
                                             offset: offset, alpha: alpha)
                if paper.amplified { trace.count("amplified steps") }
                scores = paper.scores
            } else {
                scores = Self.scores(rows.logits[0], unconditional: rows.logits[1], step: step, lambda: lambda, beta: beta)
            }
            observer?(step, scores)
            return scores
        }, choose: ContrastSampling.choice(parameters, key: context.randomKey))
    }
}
