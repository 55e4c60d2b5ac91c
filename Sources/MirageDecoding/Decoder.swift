// MirageDecoding: decoding methods (greedy, sampling, beam search, OPERA, VCD, DoLa, ...) behind one
// `Decoder` protocol, driving MirageEngine sessions. See docs/decoders.md.
import Foundation
import MirageEngine
import MirageTokenizers

/// A decoding method with fixed parameters. `decode` runs one item (one prompt) from scratch.
///
/// Every method of docs/peers-and-decoders.md §2 fits this shape:
/// - extra conditionings (noised image, text-only prompt, other instruction) are `DecodingContext.branches`,
///   each prefilled into its own session with `context.makeSession(branch:)` and fed the same tokens;
/// - per-step hooks (attention readout, early-exit layers, attention-score edits) are the `ForwardOptions`
///   the decoder passes to `MeteredSession.forward`/`step`, or a `StepHook` for decoders that take one;
/// - logits processors are `LogitsProcessor` values applied to one row at a time;
/// - beam-like search keeps its bookkeeping in `BeamSearchState` (a value: copying it is a snapshot) and
///   rolls the cache back with `Session.truncate`.
public protocol Decoder: Sendable {
    /// The registry name (`mirage generate --decoder NAME`).
    var name: String { get }
    /// Every parameter with its effective value (defaults included): what the run store records.
    var parameters: DecoderParameters { get }
    /// The branch prompts, engine hooks and sequences per step it needs (`DecoderInputs`): the runner and
    /// `mirage generate` build the branches, the memory and cost estimates count the sequences. Default: none,
    /// one sequence.
    var inputs: DecoderInputs { get }
    func decode(_ context: DecodingContext) throws -> DecodeResult
}

extension Decoder {
    public var inputs: DecoderInputs { DecoderInputs() }
}

/// Where the parts of a prompt sit, as the prompt builder (text template + vision) laid them out.
public struct PromptLayout: Sendable, Equatable {
    /// The rows fed to the model: token ids and embedding rows (image features) in order.
    public var items: [PromptItem]
    /// Positions of the image rows in `items`, if the prompt has an image.
    public var imageSpan: Range<Int>?

    /// The ids transformers' `input_ids` holds for this prompt (what repetition penalty sees and what
    /// transformers-4 beam search counts in its length normalisation). `nil`: the token items.
    /// An `inputs_embeds` prompt under transformers 4 is `[bos]` (its dummy BOS); under transformers 5 `[]`.
    public var inputIDs: [Int]?

    /// The prompt's shared prefix: its first `prefixLength` rows are always prefilled as a chunk of their own,
    /// before the rest, by decoders that prefill with `DecodingContext.prefilledSession` (so a prefix taken
    /// from a `PromptPrefixCache` gives the same numbers as one computed for the item). The runner sets it to
    /// the end of the image (everything before the per-item text). `nil`: one chunk.
    public var prefixLength: Int?

    /// The image span OPERA's reference code uses when it differs from `imageSpan` (the prompt builder states it:
    /// `MultimodalPrompt.operaImageSpan`); OPERA in reference mode takes it, clean mode the real `imageSpan`.
    public var operaImageSpan: Range<Int>?

    public init(items: [PromptItem], imageSpan: Range<Int>? = nil, inputIDs: [Int]? = nil, prefixLength: Int? = nil) {
        self.items = items
        self.imageSpan = imageSpan
        self.inputIDs = inputIDs
        self.prefixLength = prefixLength
    }

    public init(tokens: [Int]) { self.init(items: tokens.map { .token($0) }) }

    /// Position of the first generated token (the response starts right after the prompt).
    public var responseStart: Int { items.count }

    /// `inputIDs`, or the token ids among the prompt's items (embedding rows skipped).
    public var tokenIDs: [Int] {
        inputIDs ?? items.compactMap { if case let .token(t) = $0 { return t } else { return nil } }
    }
}

/// When generation stops: transformers' `max_new_tokens`, `min_new_tokens`, `eos_token_id`, `stop_strings`.
public struct GenerationLimits: Sendable, Equatable {
    public var maxNewTokens: Int
    /// EOS tokens are masked (score −∞) until this many tokens exist (transformers' MinNewTokensLengthLogitsProcessor).
    public var minNewTokens: Int
    public var eosTokenIDs: Set<Int>
    /// Generation stops once the decoded response contains one of these (the token completing it is kept).
    /// Needs `DecodingContext.tokenizer`.
    public var stopStrings: [String]

    public init(maxNewTokens: Int = 128, minNewTokens: Int = 0, eosTokenIDs: Set<Int> = [], stopStrings: [String] = []) {
        self.maxNewTokens = maxNewTokens
        self.minNewTokens = minNewTokens
        self.eosTokenIDs = eosTokenIDs
        self.stopStrings = stopStrings
    }
}

/// Everything a decoder needs for one item.
public struct DecodingContext {
    public let model: LanguageModel
    /// The conditioned prompt (the one the response belongs to).
    public var prompt: PromptLayout
    /// Extra conditionings fed the same generated tokens, by role: `"contrast"` (VCD's noised image,
    /// ICD's disturbed instruction), `"unconditional"` (text-only prompt for PAI / M3ID), ...
    public var branches: [String: PromptLayout]
    public var limits: GenerationLimits
    /// Turns tokens into text (result text, stop strings). Without it `DecodeResult.text` is empty.
    public var tokenizer: Tokenizer?
    /// The item's random stream (sampling decoders); derive it from the run seed and the item id.
    public var randomKey: RandomKey
    /// KV cache block size of the sessions the decoder makes.
    public var blockSize: Int
    /// Called with each token as soon as it is final, by decoders that commit tokens one at a time
    /// (greedy, sampling, the contrastive decoders); used to stream text to a terminal. Search decoders
    /// (beam, OPERA) only know their tokens at the end and do not call it.
    public var onToken: ((Int) -> Void)?
    /// Called with each step's scores before the logits processors (the raw logits for greedy and sampling, the
    /// method's combined scores for the contrastive and post-OPERA decoders), by the decoders that commit one
    /// token at a time; tests use it to see that a method's branches and hooks changed the scores.
    public var onScores: ((_ step: Int, _ scores: [Float]) -> Void)?
    /// Prompt prefixes kept between items (see `prefilledSession`); `nil`: every prefix is computed.
    public var prefixCache: PromptPrefixCache?

    public init(model: LanguageModel, prompt: PromptLayout, branches: [String: PromptLayout] = [:],
                limits: GenerationLimits? = nil, tokenizer: Tokenizer? = nil,
                randomKey: RandomKey = RandomKey(seed: 0), blockSize: Int = 16) {
        self.model = model
        self.prompt = prompt
        self.branches = branches
        self.limits = limits ?? GenerationLimits(eosTokenIDs: Set(model.eosTokenIDs))
        self.tokenizer = tokenizer
        self.randomKey = randomKey
        self.blockSize = blockSize
    }

    /// A new metered session holding no sequence yet prefilled; call `prefill` on it.
    public func makeSession() -> MeteredSession {
        MeteredSession(model.makeSession(blockSize: blockSize))
    }

    /// A metered session with the whole prompt prefilled in its fixed chunks: the shared prefix
    /// (`prompt.prefixLength` rows, no logits), then the rest with `options`; returns the last chunk's output.
    /// The chunks do not depend on the cache, so a prefix forked from `prefixCache` holds exactly the numbers
    /// the item would have computed, and the output is bit-identical with and without the cache.
    public func prefilledSession(options: ForwardOptions = ForwardOptions()) throws -> (MeteredSession, ForwardOutput) {
        let (session, done) = try prefixSession()
        return (session, try session.prefill(Array(prompt.items[done...]), options: options))
    }

    /// A metered session holding the prompt's shared prefix (its first chunk), and that chunk's length; with
    /// no prefix (`prefixLength` nil, 0 or the whole prompt) an empty session and 0. Decoders that run their
    /// own first pass append `prompt.items[length...]` to sequence 0.
    public func prefixSession() throws -> (MeteredSession, length: Int) {
        let items = prompt.items
        guard !items.isEmpty else { throw DecodingError.emptyPrompt }
        guard let p = prompt.prefixLength, p > 0, p < items.count else { return (makeSession(), 0) }
        if let prefixCache {
            return (try prefixCache.session(prefix: items[..<p], model: model, blockSize: blockSize), p)
        }
        let session = makeSession()
        try session.prefill(Array(items[..<p]), options: ForwardOptions(logits: .none))
        return (session, p)
    }

    /// The prompt of a branch, or an error naming the branches the caller gave.
    public func branch(_ role: String) throws -> PromptLayout {
        guard let layout = branches[role] else {
            throw DecodingError.missingBranch(role: role, available: branches.keys.sorted())
        }
        return layout
    }

    /// The decoded response text (special tokens skipped), or "" without a tokenizer.
    public func text(of tokens: [Int]) -> String {
        tokenizer?.decode(tokens, skipSpecialTokens: true) ?? ""
    }
}

/// Why generation ended.
public enum StopReason: String, Sendable, Codable, Equatable {
    case eos, stopString = "stop-string", maxNewTokens = "max-new-tokens", searchFinished = "search-finished"
}

/// One decision worth inspecting (an OPERA rollback, a VCD cut-off, a DoLa premature layer...).
public struct TraceEvent: Sendable, Codable, Equatable {
    /// Generation step (0 = choosing the first new token).
    public var step: Int
    /// What happened, e.g. "rollback", "penalty", "premature-layer".
    public var kind: String
    /// A sequence position the event refers to (rollback target, summary column...).
    public var position: Int?
    public var token: Int?
    public var value: Double?
    public var detail: String?

    public init(step: Int, kind: String, position: Int? = nil, token: Int? = nil, value: Double? = nil, detail: String? = nil) {
        self.step = step
        self.kind = kind
        self.position = position
        self.token = token
        self.value = value
        self.detail = detail
    }
}

/// A decoder's record of decisions: individual events and summary counters.
public struct DecodeTrace: Sendable, Codable, Equatable {
    public var events: [TraceEvent] = []
    /// Summary numbers by name, e.g. "rollbacks": 3, "cutoff-bound-steps": 17.
    public var counters: [String: Double] = [:]

    public init(events: [TraceEvent] = [], counters: [String: Double] = [:]) {
        self.events = events
        self.counters = counters
    }

    public mutating func record(_ event: TraceEvent) { events.append(event) }
    public mutating func count(_ name: String, by amount: Double = 1) { counters[name, default: 0] += amount }
}

/// What every decoder returns.
public struct DecodeResult: Sendable {
    /// The generated tokens (the EOS token included when it ended generation, as transformers).
    public var tokens: [Int]
    public var text: String
    public var stopReason: StopReason
    /// Forward passes over all sessions (prefills included) and the rows they computed.
    public var forwardPasses: Int
    public var forwardRows: Int
    /// Rows computed after the prefills (beams × steps, plus candidate and branch rows).
    public var decodeRows: Int
    public var prefillSeconds: Double
    public var decodeSeconds: Double
    public var trace: DecodeTrace

    public init(tokens: [Int], text: String, stopReason: StopReason, meter: ForwardMeter, trace: DecodeTrace = DecodeTrace()) {
        self.tokens = tokens
        self.text = text
        self.stopReason = stopReason
        forwardPasses = meter.passes
        forwardRows = meter.prefillRows + meter.decodeRows
        decodeRows = meter.decodeRows
        prefillSeconds = Double(meter.prefillNanoseconds) / 1e9
        decodeSeconds = Double(meter.decodeNanoseconds) / 1e9
        self.trace = trace
    }
}

/// Errors of decoder setup and runs; each says what to do.
public enum DecodingError: Error, CustomStringConvertible, Equatable {
    case unknownDecoder(String, available: [String])
    case unknownPreset(decoder: String, preset: String, available: [String])
    case unknownParameter(decoder: String, parameter: String, available: [String])
    case invalidParameter(decoder: String, parameter: String, value: String, expected: String)
    case missingBranch(role: String, available: [String])
    case emptyPrompt
    case needsTokenizer(String)

    public var description: String {
        switch self {
        case let .unknownDecoder(name, available):
            return "no decoder named '\(name)'; choose one of \(available.joined(separator: ", ")) (`mirage decoders` lists them)"
        case let .unknownPreset(decoder, preset, available):
            return available.isEmpty
                ? "decoder '\(decoder)' has no presets (got --preset \(preset)); set values with --param k=v"
                : "decoder '\(decoder)' has no preset '\(preset)'; choose one of \(available.joined(separator: ", "))"
        case let .unknownParameter(decoder, parameter, available):
            return "decoder '\(decoder)' has no parameter '\(parameter)'; its parameters are \(available.joined(separator: ", "))"
        case let .invalidParameter(decoder, parameter, value, expected):
            return "\(decoder): \(parameter)=\(value) is not valid; expected \(expected)"
        case let .missingBranch(role, available):
            return "this decoder needs a '\(role)' branch prompt (e.g. the noised-image or text-only prompt); "
                + (available.isEmpty ? "none was given" : "given: \(available.joined(separator: ", "))")
        case .emptyPrompt:
            return "the prompt is empty; a decoder needs at least one prompt row"
        case let .needsTokenizer(what):
            return "\(what) needs the model's tokenizer; load it into DecodingContext.tokenizer (model folder with tokenizer.json)"
        }
    }
}
