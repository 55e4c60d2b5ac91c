import Foundation
import MirageEngine
import MirageTokenizers

/// The loop greedy and sampling share: prefill, then one token per pass until EOS, a stop string or
/// `maxNewTokens`. `choose` gets the processed scores of the step and returns the token.
func decodeOneSequence(_ context: DecodingContext, processors: [any LogitsProcessor], hook: (any StepHook)? = nil,
                       choose: (inout [Float], Int) -> Int) throws -> DecodeResult {
    let limits = context.limits
    var trace = DecodeTrace()
    var hook = hook
    guard limits.maxNewTokens > 0 else {
        return DecodeResult(tokens: [], text: "", stopReason: .maxNewTokens, meter: ForwardMeter())
    }
    let prefilled = try context.prefilledSession(options: hook?.options(step: 0, base: ForwardOptions()) ?? ForwardOptions())
    let session = prefilled.0
    var out = prefilled.1
    hook?.observe(step: 0, output: out, trace: &trace)
    var response = ResponseAccumulator(context: context)
    while true {
        var scores = Array(out.logits(0))
        let step = response.tokens.count
        context.onScores?(step, scores)
        for p in processors { p.process(&scores, context: response.logitsContext) }
        let token = choose(&scores, step)
        if try response.commit(token) { break }
        out = try session.step([token], options: hook?.options(step: step + 1, base: ForwardOptions()) ?? ForwardOptions())
        hook?.observe(step: step + 1, output: out, trace: &trace)
    }
    return response.result(meter: session.meter, trace: trace)
}

/// The response of a one-token-per-step decoder as it grows: commits each token (history for the
/// logits processors, the context's `onToken` callback) and decides when to stop (EOS, a stop string,
/// `maxNewTokens`). Greedy, sampling and the contrastive decoders share it, so they stop alike.
struct ResponseAccumulator {
    let context: DecodingContext
    private let stops: StopStringMatcher
    private var history: [Int]
    private(set) var tokens: [Int] = []
    private(set) var reason = StopReason.maxNewTokens

    init(context: DecodingContext) {
        self.context = context
        stops = StopStringMatcher(context: context)
        history = context.prompt.tokenIDs
    }

    /// What the logits processors see before the next token is chosen.
    var logitsContext: LogitsContext { LogitsContext(tokens: history, generated: tokens.count) }

    /// Appends `token`; returns true when decoding must stop after it.
    mutating func commit(_ token: Int) throws -> Bool {
        tokens.append(token)
        history.append(token)
        context.onToken?(token)
        if context.limits.eosTokenIDs.contains(token) { reason = .eos; return true }
        if try stops.matches(tokens) { reason = .stopString; return true }
        return tokens.count >= context.limits.maxNewTokens
    }

    func result(meter: ForwardMeter, trace: DecodeTrace) -> DecodeResult {
        DecodeResult(tokens: tokens, text: context.text(of: tokens), stopReason: reason, meter: meter, trace: trace)
    }
}

/// Checks the decoded response against the context's stop strings.
struct StopStringMatcher {
    let strings: [String]
    let tokenizer: Tokenizer?

    init(context: DecodingContext) {
        strings = context.limits.stopStrings.filter { !$0.isEmpty }
        tokenizer = context.tokenizer
    }

    func matches(_ tokens: [Int]) throws -> Bool {
        guard !strings.isEmpty else { return false }
        guard let tokenizer else { throw DecodingError.needsTokenizer("stopping on stop strings") }
        let text = tokenizer.decode(tokens, skipSpecialTokens: false)
        return strings.contains { text.contains($0) }
    }
}

/// The processors transformers puts before the choice, in its order: repetition penalty, min new tokens.
func standardProcessors(repetitionPenalty: Double, limits: GenerationLimits) -> [any LogitsProcessor] {
    var list: [any LogitsProcessor] = []
    if repetitionPenalty != 1 { list.append(RepetitionPenalty(Float(repetitionPenalty))) }
    if limits.minNewTokens > 0 { list.append(MinNewTokens(limits.minNewTokens, eosTokenIDs: limits.eosTokenIDs)) }
    return list
}

let repetitionPenaltySpec = ParameterSpec(
    "repetition_penalty", .double(0.01...100), default: .double(1.0),
    help: "CTRL penalty on every token already in the row (prompt ids + generated): s<0 ? s·θ : s/θ. 1 = off.",
    source: "transformers GenerationConfig default (1.0)")

/// Greedy decoding: transformers' `generate(do_sample=False, num_beams=1)`; ties go to the lowest id.
public struct GreedyDecoder: Decoder {
    public var repetitionPenalty: Double
    public let name = "greedy"

    public init(repetitionPenalty: Double = 1) { self.repetitionPenalty = repetitionPenalty }

    public var parameters: DecoderParameters { DecoderParameters(["repetition_penalty": .double(repetitionPenalty)]) }

    public static let descriptor = DecoderDescriptor(
        name: "greedy", summary: "The most likely token at every step (transformers do_sample=False, num_beams=1).",
        parameters: [repetitionPenaltySpec],
        presets: [DecoderPreset("dola-code-penalty", ["repetition_penalty": .double(1.2)],
                                source: "DoLa tfqa_eval.py --repetition_penalty 1.2 (greedy with the same penalty)")],
        make: { GreedyDecoder(repetitionPenalty: $0.double("repetition_penalty")) })

    public func decode(_ context: DecodingContext) throws -> DecodeResult {
        try decodeOneSequence(context, processors: standardProcessors(repetitionPenalty: repetitionPenalty, limits: context.limits)) {
            scores, _ in argmax(scores)
        }
    }
}

/// Multinomial sampling after temperature, top-k and top-p (transformers' warper order), with the
/// context's counter-based random stream: draw `step` of an item is the same whatever ran before.
public struct SamplingDecoder: Decoder {
    public var temperature: Double
    /// 0 = no top-k filter.
    public var topK: Int
    public var topP: Double
    public var repetitionPenalty: Double
    public let name = "sample"

    public init(temperature: Double = 1, topK: Int = 0, topP: Double = 1, repetitionPenalty: Double = 1) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.repetitionPenalty = repetitionPenalty
    }

    public var parameters: DecoderParameters {
        DecoderParameters(["temperature": .double(temperature), "top_k": .int(topK), "top_p": .double(topP),
                           "repetition_penalty": .double(repetitionPenalty)])
    }

    public static let descriptor = DecoderDescriptor(
        name: "sample",
        summary: "Sampling with temperature, top-k, top-p (nucleus). Defaults are VCD's 'regular decoding' baseline: direct sampling.",
        parameters: [
            ParameterSpec("temperature", .double(1e-6...100), default: .double(1.0), help: "Divide the logits by T before sampling.",
                          source: "VCD object_hallucination_vqa_llava.py (T=1)"),
            ParameterSpec("top_k", .int(0...Int(Int32.max)), default: .int(0), help: "Keep the k most likely tokens (0 = all).",
                          source: "VCD object_hallucination_vqa_llava.py (top_k=None)"),
            ParameterSpec("top_p", .double(0...1), default: .double(1.0), help: "Keep the smallest set with probability mass ≥ p (1 = all).",
                          source: "VCD object_hallucination_vqa_llava.py (top_p=1)"),
            repetitionPenaltySpec,
        ],
        presets: [
            DecoderPreset("vcd-regular", ["temperature": .double(1), "top_k": .int(0), "top_p": .double(1)],
                          source: "VCD paper's 'regular decoding' = direct sampling (VCD issues #4, #15)"),
            DecoderPreset("nucleus-0.9", ["top_p": .double(0.9)], source: "Holtzman et al. 2020, top-p 0.9"),
        ],
        make: { p in
            SamplingDecoder(temperature: p.double("temperature"), topK: p.int("top_k"), topP: p.double("top_p"),
                            repetitionPenalty: p.double("repetition_penalty"))
        })

    /// Processors in transformers' order: penalty, min-new-tokens, then temperature, top-k, top-p.
    func processors(_ limits: GenerationLimits) -> [any LogitsProcessor] {
        var list = standardProcessors(repetitionPenalty: repetitionPenalty, limits: limits)
        if temperature != 1 { list.append(Temperature(Float(temperature))) }
        if topK > 0 { list.append(TopK(topK)) }
        if topP < 1 { list.append(TopP(Float(topP))) }
        return list
    }

    public func decode(_ context: DecodingContext) throws -> DecodeResult {
        let key = context.randomKey
        return try decodeOneSequence(context, processors: processors(context.limits)) { scores, step in
            sampleIndex(weights: softmax(scores), u: key.uniform(step: step))
        }
    }
}
