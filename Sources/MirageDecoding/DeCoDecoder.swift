import Foundation
import MirageEngine

/// DeCo, dynamic correction decoding (Wang et al., "MLLM Can See? Dynamic Correction Decoding for
/// Hallucination Mitigation", ICLR 2025; zjunlp/Deco): the final layer proposes candidate tokens (its top
/// `threshold_top_k`, cut where their cumulative probability reaches `threshold_top_p`); among the anchor
/// layers `start_layer..<end_layer` (early exits: final norm, then the LM head) the one giving a candidate
/// the highest probability `p_max` is chosen; the scores are `z_final + α·p_max·z_anchor` on the candidates
/// (−∞ elsewhere), then the processors and the choice (greedy by default, as the paper's scripts). One pass
/// per token: the anchors are hidden states of the same pass.
///
/// Follows zjunlp/Deco @ fee8d75 transformers/generation/utils.py `deco_greedy_search` / `deco_sample_search`
/// and transformers/models/llama/modeling_llama.py (early exits through `model.norm`); verified against it
/// token for token and per-step scores (`DeCoGoldenTests`). The paper's Eq. (early layer "mixed into" the
/// final logits with a dynamically scaled weight) is what the code computes, so there is one mode.
public struct DeCoDecoder: Decoder {
    public static let alpha = Parameter<Double>(
        "alpha", .double(0...100), default: 0.6, help: "Anchor strength: z_final + α·p_max·z_anchor.",
        source: "zjunlp/Deco chair_llava.py, pope_llava.py, amber_llava.py, mme_llava.py --alpha 0.6 (README's table says 0.5)")
    public static let candidateTopP = Parameter<Double>(
        "threshold_top_p", .double(0...1), default: 0.9,
        help: "Candidates: the final layer's top tokens up to cumulative probability ≥ this (within threshold_top_k).",
        source: "zjunlp/Deco chair_llava.py --threshold_top_p 0.9")
    public static let candidateTopK = Parameter<Int>(
        "threshold_top_k", .int(1...Int(Int32.max)), default: 20, help: "At most this many candidate tokens.",
        source: "zjunlp/Deco chair_llava.py --threshold_top_k 20")
    public static let startLayer = Parameter<Int>(
        "start_layer", .int(0...4096), default: 20,
        help: "First anchor layer (transformers' numbering: 0 = embeddings, i = output of layer i).",
        source: "zjunlp/Deco chair_llava.py --start_layer 20 (of 32 layers, LLaVA-1.5-7B)")
    public static let endLayer = Parameter<Int>(
        "end_layer", .int(1...4097), default: 29, help: "End of the anchor layers (exclusive): early_exit_layers = start..<end.",
        source: "zjunlp/Deco chair_llava.py --end_layer 29")
    public static let sample = Parameter<Bool>(
        "sample", .bool, default: false,
        help: "Sample from the DeCo scores (the AMBER/MME scripts' temperature 1) or take the best (the CHAIR/POPE scripts).",
        source: "zjunlp/Deco chair_llava.py/pope_llava.py --temperature -1 (do_sample False)")
    public static let numBeams = Parameter<Int>(
        "num_beams", .int(1...64), default: 1,
        help: "Beam search over the DeCo scores with this many beams (1 = one sequence, greedy or sampled): every beam's row is scored as above, then log-softmax and transformers 4.31's beam scorer (length penalty 1, early stopping false).",
        source: "zjunlp/Deco chair_llava.py --num_beams 1 (generate routes num_beams > 1 to deco_beam_search)")

    public let parameters: DecoderParameters
    public let name = "deco"

    public init(_ parameters: DecoderParameters) { self.parameters = parameters }

    public var inputs: DecoderInputs {
        DecoderInputs(hooks: [.hiddenStates(layers: .layers(Array(parameters[Self.startLayer]..<max(parameters[Self.startLayer],
                                                                                                        parameters[Self.endLayer]))))],
                      beams: parameters[Self.numBeams])
    }

    public static let descriptor = DecoderDescriptor(
        name: "deco",
        summary: "DeCo: the preceding layer that best supports the final layer's candidates is mixed into the final logits.",
        parameters: [alpha.spec, candidateTopP.spec, candidateTopK.spec, startLayer.spec, endLayer.spec,
                     ContrastSampling.temperature.spec, ContrastSampling.topK.spec, ContrastSampling.topP.spec,
                     ContrastSampling.repetitionPenalty.spec, sample.spec, numBeams.spec],
        presets: [
            DecoderPreset("deco-paper", ["alpha": .double(0.6), "threshold_top_p": .double(0.9), "threshold_top_k": .int(20),
                                         "start_layer": .int(20), "end_layer": .int(29), "sample": .bool(false)],
                          source: "zjunlp/Deco chair_llava.py and pope_llava.py defaults (greedy, LLaVA-1.5-7B)"),
            DecoderPreset("deco-sampling", ["sample": .bool(true), "temperature": .double(1)],
                          source: "zjunlp/Deco amber_llava.py and mme_llava.py --temperature 1.0 (do_sample True)"),
            DecoderPreset("deco-beam", ["num_beams": .int(5), "sample": .bool(false)],
                          source: "zjunlp/Deco deco_beam_search (generate with num_beams > 1; 5 as the beam baseline of OPERA's comparison)"),
        ],
        make: { DeCoDecoder($0) })

    /// The anchor layers for a model with `modelLayers` decoder layers.
    public func anchorLayers(modelLayers L: Int) throws -> [Int] {
        let (start, end) = (parameters[Self.startLayer], parameters[Self.endLayer])
        guard start < end, end <= L else { throw DeCoError.layers(start: start, end: end, modelLayers: L) }
        return Array(start..<end)
    }

    public func decode(_ context: DecodingContext) throws -> DecodeResult {
        let model = context.model
        let layers = try anchorLayers(modelLayers: model.config.numLayers)
        let (alpha, topP, topK) = (parameters[Self.alpha], parameters[Self.candidateTopP], parameters[Self.candidateTopK])
        let beams = parameters[Self.numBeams]
        if beams > 1 {
            guard !parameters[Self.sample] else { throw DeCoError.beamWithSampling(beams: beams) }
            let limits = context.limits
            let state = BeamSearchState(numBeams: beams, semantics: .transformers4, eosTokenIDs: limits.eosTokenIDs,
                                        inputLength: context.prompt.tokenIDs.count, maxNewTokens: limits.maxNewTokens)
            let processors = standardProcessors(repetitionPenalty: parameters[ContrastSampling.repetitionPenalty], limits: limits)
            return try beamSearch(context, state: state, processors: processors,
                                  options: ForwardOptions(hiddenStateLayers: layers)) { out, i, trace in
                let anchors = earlyExits(out, row: out.logitRows[i], layers: layers, model: model, finalNorm: true)
                let s = Self.scores(final: out.logits(i), anchors: anchors, alpha: alpha, topP: topP, topK: topK)
                trace.count("rows")
                trace.count("anchor-layer-\(layers[s.anchor])")
                return s.scores
            }
        }
        return try decodeContrastive(context, branches: [], options: ForwardOptions(hiddenStateLayers: layers),
                                     processors: ContrastSampling.processors(parameters, limits: context.limits),
                                     score: { rows, step, trace in
            let anchors = earlyExits(rows, layers: layers, model: model, finalNorm: true)
            let s = Self.scores(final: rows.logits[0], anchors: anchors, alpha: alpha, topP: topP, topK: topK)
            trace.count("steps")
            trace.count("candidates", by: Double(s.candidates))
            trace.count("anchor-layer-\(layers[s.anchor])")
            trace.record(TraceEvent(step: step, kind: "anchor-layer", position: layers[s.anchor], value: Double(s.weight)))
            return s.scores
        }, choose: ContrastSampling.choice(parameters, key: context.randomKey))
    }

    /// One step of DeCo: candidates from the final logits `z`, the anchor (index into `anchors`) whose
    /// softmax gives a candidate the highest probability (first in layer-major, candidate-rank order on
    /// ties, as torch.argmax of the flattened layers × candidates), and `z + (α·p_max)·z_anchor` on the
    /// candidates, −∞ elsewhere. `weight` is α·p_max.
    public static func scores(final z: ArraySlice<Float>, anchors: [ArraySlice<Float>], alpha: Double, topP: Double,
                              topK: Int) -> (scores: [Float], anchor: Int, candidates: Int, weight: Float) {
        let final = Array(z)
        let p = softmax(final)
        // torch.topk: descending probability (ties to the lower id here).
        let ranked = p.indices.sorted { p[$0] != p[$1] ? p[$0] > p[$1] : $0 < $1 }.prefix(min(topK, p.count))
        // torch.searchsorted(cumsum, top_p, right=False) + 1, capped at k: the shortest prefix whose
        // cumulative probability reaches top_p (CPU cumsum accumulates f32 in double, then rounds).
        var cumulative: Double = 0
        var count = ranked.count
        for (i, t) in ranked.enumerated() {
            cumulative += Double(p[t])
            if Float(cumulative) >= Float(topP) { count = i + 1; break }
        }
        let candidates = Array(ranked.prefix(count))
        var best = (anchor: 0, probability: -Float.infinity)
        for (j, logits) in anchors.enumerated() {
            let q = softmax(Array(logits))
            for t in candidates where q[t] > best.probability { best = (j, q[t]) }
        }
        let weight = Float(alpha * Double(best.probability))
        let anchor = anchors[best.anchor]
        var scores = [Float](repeating: -.infinity, count: final.count)
        for t in candidates { scores[t] = final[t] + weight * anchor[anchor.startIndex + t] }
        return (scores, best.anchor, candidates.count, weight)
    }
}

public enum DeCoError: Error, CustomStringConvertible, Equatable {
    case layers(start: Int, end: Int, modelLayers: Int)
    case beamWithSampling(beams: Int)

    public var description: String {
        switch self {
        case let .layers(start, end, L):
            return "DeCo anchor layers \(start)..<\(end) do not fit a model with \(L) layers; set start_layer < end_layer ≤ \(L) "
                + "(the paper uses 20..<29 of 32 layers: about \(L * 20 / 32)..<\(L * 29 / 32) here)"
        case let .beamWithSampling(beams):
            return "DeCo with num_beams \(beams) searches over the scores and cannot also sample; set sample=false "
                + "(deco_beam_search is deterministic) or num_beams=1 to sample"
        }
    }
}
