import Foundation
import MirageEngine

/// OPERA (Huang et al., "OPERA: Alleviating Hallucination in Multi-Modal Large Language Models via
/// Over-Trust Penalty and Retrospection-Allocation", CVPR 2024) behind the `Decoder` protocol.
///
/// The image span and the response start come from the prompt the engine built
/// (`DecodingContext.prompt.imageSpan`, `.responseStart`); there is no hand-entered `key_position`.
/// See docs/opera.md for the algorithm, the two modes and the golden parity.
public struct OperaDecoder: Decoder {
    public var options: OperaParameters
    public let name = "opera"

    public init(_ options: OperaParameters = OperaParameters()) { self.options = options }

    public var parameters: DecoderParameters {
        DecoderParameters([
            "mode": .string(options.mode.rawValue),
            "num_beams": .int(options.numBeams),
            "scale_factor": .double(Double(options.scaleFactor)),
            "threshold": .int(options.threshold),
            "num_attn_candidates": .int(options.candidates),
            "penalty_weights": .double(Double(options.penaltyWeight)),
            "repetition_penalty": .double(Double(options.repetitionPenalty)),
            "length_penalty": .double(options.lengthPenalty),
            "window_size": .int(options.historyCap),
        ])
    }

    /// Beams, the last layer's attention over the image and response keys, and OPERA ÷ beam search with the
    /// same beams: 1.84–1.94 measured by `mirage-bench decoders` (README, "Performance"); 1.9 is used.
    public var inputs: DecoderInputs {
        DecoderInputs(hooks: [.attentionProbabilities(layers: .perModel(rule: "the last layer"), keys: .all)],
                      beams: options.numBeams, stepFactor: 1.9)
    }

    static let paperSource = "OPERA paper §4.1 and shikiw/OPERA chair_eval.py/pope_eval.py (σ=50, r=15, N_can=5, α=1, 5 beams)"

    public static let descriptor = DecoderDescriptor(
        name: "opera",
        summary: "OPERA: beam search with an over-trust penalty on attention-column 'summary' patterns and retrospective rollback.",
        parameters: [
            ParameterSpec("mode", .choice(OperaMode.allCases.map(\.rawValue)), default: .string("reference"),
                          help: "reference: the published code's behaviour, bugs included (fp16 score saturation, per-slot location history, stale reject lists, shared scorer snapshot); clean: those fixed (docs/opera.md).",
                          source: "shikiw/OPERA @ 61426ef opera_beam_search"),
            ParameterSpec("num_beams", .int(2...64), default: .int(5), help: "Beams (N_beam).", source: paperSource),
            ParameterSpec("scale_factor", .double(1e-6...1e6), default: .double(50),
                          help: "σ: attention weights are scaled by σ before the column products.", source: paperSource),
            ParameterSpec("threshold", .int(0...100_000), default: .int(15),
                          help: "r: roll back when every beam's location history holds the current summary location more than r times.",
                          source: paperSource),
            ParameterSpec("num_attn_candidates", .int(1...1000), default: .int(5),
                          help: "N_can: top-k raw-logit candidates per beam; also the most rollbacks per position (β), as in the code.",
                          source: paperSource),
            ParameterSpec("penalty_weights", .double(-1e6...1e6), default: .double(1),
                          help: "α: weight of the penalty subtracted from the candidate logits.", source: paperSource),
            ParameterSpec("repetition_penalty", .double(0.01...100), default: .double(1),
                          help: "transformers' repetition penalty on log-softmax scores (OPERA's InstructBLIP wrapper uses 1.5).",
                          source: "transformers GenerationConfig default"),
            ParameterSpec("length_penalty", .double(-10...10), default: .double(1),
                          help: "Finished beam scores are sum / len(input_ids row)^lp.", source: "transformers GenerationConfig default"),
            ParameterSpec("window_size", .int(2...1_000_000), default: .int(512),
                          help: "History cap of the reference (`window_size`): snapshots kept and rollback table size.",
                          source: "opera_beam_search signature default"),
        ],
        presets: [
            DecoderPreset("opera-paper", ["num_beams": .int(5), "scale_factor": .double(50), "threshold": .int(15),
                                          "num_attn_candidates": .int(5), "penalty_weights": .double(1)],
                          source: paperSource),
            DecoderPreset("opera-efficient", ["threshold": .int(25), "num_attn_candidates": .int(1)],
                          source: "shikiw/OPERA README, 'efficient version' (threshold 25, 1 candidate)"),
            DecoderPreset("opera-instructblip", ["repetition_penalty": .double(1.5)],
                          source: "OPERA blip2_vicuna_instruct.py wrapper default repetition_penalty=1.5"),
            DecoderPreset("opera-clean", ["mode": .string("clean")],
                          source: "Mirage: the paper's defaults with the reference code's bugs fixed"),
        ],
        make: { p in
            OperaDecoder(OperaParameters(
                mode: OperaMode(rawValue: p.string("mode"))!, numBeams: p.int("num_beams"),
                scaleFactor: Float(p.double("scale_factor")), threshold: p.int("threshold"),
                candidates: p.int("num_attn_candidates"), penaltyWeight: Float(p.double("penalty_weights")),
                repetitionPenalty: Float(p.double("repetition_penalty")), lengthPenalty: p.double("length_penalty"),
                historyCap: p.int("window_size")))
        })

    /// The prompt layout in OPERA's terms. transformers' `input_ids` before the response: `layout.inputIDs`
    /// when the prompt builder states it (its length is the length offset); otherwise, for a prompt of
    /// token ids with an image (LLaVA) the ids with the image placeholder counted once, and for a prompt made
    /// only of embedding rows (MiniGPT-4, InstructBLIP, the golden cases) the dummy `[BOS]`.
    /// `reference`: take `layout.operaImageSpan` (the span the family's OPERA wrapper computes) when the prompt
    /// builder states one; otherwise, and in clean mode, the image rows' own span.
    public static func operaPrompt(_ layout: PromptLayout, bos: Int?, reference: Bool = true) throws -> OperaPrompt {
        guard let span = (reference ? layout.operaImageSpan : nil) ?? layout.imageSpan, !span.isEmpty else {
            throw OperaError.invalidLayout("the prompt has no image span; OPERA needs one (build the prompt with an image, or give image_positions_inclusive in the --embeds file)")
        }
        let image = span.lowerBound...(span.upperBound - 1)
        if let ids = layout.inputIDs {
            // Empty for an embeddings prompt of a model without BOS (transformers 5's convention).
            return OperaPrompt(items: layout.items, imageSpan: image, inputIDs: ids, lengthOffset: ids.count)
        }
        let ids = layout.tokenIDs
        if ids.isEmpty {
            return OperaPrompt(items: layout.items, imageSpan: image, inputIDs: bos.map { [$0] } ?? [], lengthOffset: 1)
        }
        return OperaPrompt(items: layout.items, imageSpan: image, inputIDs: ids, lengthOffset: ids.count + 1)
    }

    public func decode(_ context: DecodingContext) throws -> DecodeResult {
        let prompt = try Self.operaPrompt(context.prompt, bos: context.model.bosTokenID, reference: options.mode == .reference)
        var options = self.options
        options.maxNewTokens = context.limits.maxNewTokens
        let pad = context.model.generationConfig?.padTokenID ?? 0
        let prefix = try context.prefixSession()
        let outcome = try OperaSearch(model: context.model, prompt: prompt, params: options,
                                      eos: context.limits.eosTokenIDs, pad: pad, blockSize: context.blockSize,
                                      prefix: prefix).run()
        var meter = ForwardMeter()
        meter.passes = outcome.passes
        meter.prefillRows = outcome.prefillRows
        meter.decodeRows = outcome.decodeRows
        meter.prefillNanoseconds = outcome.prefillNanoseconds
        meter.decodeNanoseconds = outcome.decodeNanoseconds
        var trace = DecodeTrace(counters: outcome.counters)
        trace.counters["best-score"] = outcome.score
        for p in outcome.penalties {
            trace.record(TraceEvent(step: p.iteration, kind: "penalty", position: p.summaryLocation,
                                    value: p.maxPenalty.isFinite ? Double(p.maxPenalty) : nil,
                                    detail: p.maxPenalty.isFinite ? nil : "n=\(p.responseLength) saturated (inf)"))
        }
        for r in outcome.rollbacks {
            trace.record(TraceEvent(step: r.iteration, kind: "rollback", position: r.position,
                                    value: Double(r.timesAtPosition),
                                    detail: "n=\(r.responseLength) summary=\(r.summaryLocation) rejected=\(r.rejectedPairs)"))
        }
        let reason: StopReason = outcome.endedWithEOS ? .eos : .maxNewTokens
        return DecodeResult(tokens: outcome.tokens, text: context.text(of: outcome.tokens), stopReason: reason,
                            meter: meter, trace: trace)
    }
}
