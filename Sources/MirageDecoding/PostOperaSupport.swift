import Foundation
import MirageEngine

// What the decoders after OPERA (PAI, VISTA, SID) share: their setup errors.

/// Errors of the PAI / VISTA / SID setups; each says what to change.
public enum PostOperaError: Error, CustomStringConvertible, Equatable {
    case layerRange(decoder: String, lower: Int, upper: Int, layers: Int, parameters: String)
    case needsImage(decoder: String)
    case imageTooSmall(decoder: String, imageRows: Int, keep: Int)
    case noBeamSearch(decoder: String, beams: Int, why: String)
    case beamWithSampling(decoder: String, beams: Int)

    public var description: String {
        switch self {
        case let .layerRange(decoder, lower, upper, layers, parameters):
            return "\(decoder): layers \(lower)..<\(upper) do not fit this model's \(layers) decoder layers (0...\(layers - 1)); "
                + "set \(parameters) within them (the published defaults are for 32-layer 7B models)"
        case let .needsImage(decoder):
            return "\(decoder) acts on the image rows, but this prompt has no image span; run it on a vision-language prompt"
        case let .imageTooSmall(decoder, rows, keep):
            return "\(decoder) keeps \(keep) vision tokens but the image has \(rows) rows; set --param attention_rank below \(rows)"
        case let .noBeamSearch(decoder, beams, why):
            return "\(decoder) cannot run with num_beams \(beams): \(why); set --param num_beams=1 (greedy with sample=false, "
                + "or sampling with sample=true)"
        case let .beamWithSampling(decoder, beams):
            return "\(decoder) with num_beams \(beams) searches over its scores and cannot also sample (the published "
                + "--beam runs are deterministic); set sample=false, or num_beams=1 to sample"
        }
    }
}

/// The token loop of a decoder that prefilled its own session(s): `score` turns the current rows into one
/// scores row, then the processors and `choose`; `next` feeds the chosen token (the step index is the
/// token's) and returns the next rows. Stops as `ResponseAccumulator` says (EOS, stop string, limit).
func decodeTokens<Rows>(_ context: DecodingContext, session: MeteredSession, first: Rows, processors: [any LogitsProcessor],
                        score: (Rows, Int, inout DecodeTrace) throws -> [Float], choose: ([Float], Int) -> Int,
                        next: (Int, Int) throws -> Rows) throws -> DecodeResult {
    var trace = DecodeTrace()
    guard context.limits.maxNewTokens > 0 else {
        return DecodeResult(tokens: [], text: "", stopReason: .maxNewTokens, meter: session.meter)
    }
    var rows = first
    var response = ResponseAccumulator(context: context)
    while true {
        let step = response.tokens.count
        var scores = try score(rows, step, &trace)
        context.onScores?(step, scores)
        for p in processors { p.process(&scores, context: response.logitsContext) }
        let token = choose(scores, step)
        if try response.commit(token) { break }
        rows = try next(token, step)
    }
    return response.result(meter: session.meter, trace: trace)
}

/// The sampling parameters PAI, VISTA and SID share (temperature, top-k, top-p, repetition penalty, `sample`,
/// greedy by default), each default with the method's own source.
func samplingSpecs(temperature: String, topK: String, topP: String, sample: (help: String, source: String)) -> [ParameterSpec] {
    [
        ParameterSpec("temperature", .double(1e-6...100), default: .double(1.0), help: "Divide the scores by T before sampling.",
                      source: temperature),
        ParameterSpec("top_k", .int(0...Int(Int32.max)), default: .int(0), help: "Keep the k best scores (0 = all).", source: topK),
        ParameterSpec("top_p", .double(0...1), default: .double(1.0), help: "Nucleus filter when sampling (1 = off).", source: topP),
        repetitionPenaltySpec,
        ParameterSpec("sample", .bool, default: .bool(false), help: sample.help, source: sample.source),
    ]
}

/// The recorded parameters of PAI and SID: the sampling ones, β, `sample`, and `extra`.
func cutoffParameters(_ sampling: SamplingDecoder, beta: Double, sample: Bool,
                      _ extra: [String: ParameterValue] = [:]) -> DecoderParameters {
    var values = sampling.parameters.values.merging(extra) { $1 }
    values["beta"] = .double(beta)
    values["sample"] = .bool(sample)
    return DecoderParameters(values)
}
