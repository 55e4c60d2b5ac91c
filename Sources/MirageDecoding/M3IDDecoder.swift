import Foundation
import MirageEngine

/// M3ID, multi-modal mutual-information decoding (Favero et al., CVPR 2024; no official code). Follows the
/// implementation in zifuwan/ONLY @ 109bffe (only_utils/only_sample.py, `use_m3id`): the branch
/// `"unconditional"` is the prompt without its image rows (ONLY's `prepare_inputs_for_generation_m3id` drops
/// the image token and passes no image); at step t (0 for the first new token) with γ_t = exp(−λ·t),
/// scores `z + ((z − z_uncond)·(1 − γ_t))/γ_t` on the tokens passing the plausibility cut-off β of `z`, then
/// the processors and the choice (ONLY always samples; `sample=false` takes the best score, for parity).
public struct M3IDDecoder: Decoder {
    public static let lambda = Parameter<Double>(
        "lambda", .double(0...10), default: 0.02,
        help: "Decay of γ_t = exp(−λ·t): the weight of the image grows as (1 − γ_t)/γ_t over the response.",
        source: "zifuwan/ONLY only_utils/only_sample.py (torch.exp(torch.tensor(-0.02*t)))")
    public static let beta = Parameter<Double>(
        "beta", .double(0...1), default: 0.1, help: "Plausibility cut-off: keep tokens with z ≥ log β + max z.",
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
        parameters: [lambda.spec, beta.spec, ContrastSampling.temperature.spec, ContrastSampling.topK.spec,
                     ContrastSampling.topP.spec, ContrastSampling.repetitionPenalty.spec, sample.spec],
        presets: [
            DecoderPreset("m3id-only", ["lambda": .double(0.02), "beta": .double(0.1), "sample": .bool(true)],
                          source: "zifuwan/ONLY --use_m3id (only_sample.py)"),
            DecoderPreset("m3id-greedy", ["sample": .bool(false)], source: "argmax of the M3ID scores (parity setting; not in ONLY)"),
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

    public func decode(_ context: DecodingContext) throws -> DecodeResult {
        let unconditional = try context.branch(Self.branchRole)
        let (lambda, beta, observer) = (parameters[Self.lambda], parameters[Self.beta], scoreObserver)
        return try decodeContrastive(context, branches: [unconditional], options: ForwardOptions(),
                                     processors: ContrastSampling.processors(parameters, limits: context.limits),
                                     score: { rows, step, trace in
            trace.count("steps")
            let scores = Self.scores(rows.logits[0], unconditional: rows.logits[1], step: step, lambda: lambda, beta: beta)
            observer?(step, scores)
            return scores
        }, choose: ContrastSampling.choice(parameters, key: context.randomKey))
    }
}
