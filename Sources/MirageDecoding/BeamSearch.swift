import Foundation
import MirageEngine

/// Which transformers beam search to reproduce. Both keep B running beams, take the top
/// `max(2, 1 + #EOS) · B` continuations of (beam score + log-softmax), finish a hypothesis on an EOS
/// ranked < B, and normalise finished scores by `length ** length_penalty`. They differ in details:
///
/// - `transformers4` (`BeamSearchScorer`, 4.29, the version OPERA, VCD and LLaVA ship): the length is the
///   whole `input_ids` row without the EOS; `is_done` compares the worst kept hypothesis with
///   `max candidate score / (row length + 1) ** lp`; at the end the open beams are added too; among equal
///   scores the hypothesis added last wins; the EOS is appended when the result is shorter than max_length.
/// - `transformers437` (`BeamSearchScorer` of 4.37, the version PAI and VISTA pin): as 4.29 except that every
///   length counts generated tokens only (`generated_len = cur_len − decoder_prompt_len`,
///   generation/beam_search.py): a hypothesis finished by an EOS is normalised by its generated tokens with the
///   EOS, `is_done` uses `best candidate / (generated + 1) ** lp` (with `never`: `max_new_tokens ** lp`), and the
///   open beams at max_length their generated tokens.
/// - `transformers5` (the vectorised `_beam_search` of transformers ≥ 4.50, verified against 5.24): the
///   length is the number of generated tokens including the EOS; the heuristic uses the best *running*
///   beam over the generated length; at max_length the top B continuations are finished whatever they are.
public enum BeamSemantics: String, Sendable, CaseIterable {
    case transformers4 = "transformers-4"
    case transformers437 = "transformers-4.37"
    case transformers5 = "transformers-5"
}

/// transformers' `early_stopping`: `false` (heuristic), `true`, `"never"`.
public enum EarlyStopping: String, Sendable, CaseIterable {
    case heuristic = "false", always = "true", never = "never"
}

/// One continuation of a beam.
public struct BeamCandidate: Sendable, Equatable {
    public var beam: Int
    public var token: Int
    /// Beam score + processed log-probability of `token`.
    public var score: Float
    public init(beam: Int, token: Int, score: Float) {
        self.beam = beam
        self.token = token
        self.score = score
    }
}

/// A finished hypothesis.
public struct BeamHypothesis: Sendable, Equatable {
    /// Generated tokens (the EOS that ended it included, if any).
    public var tokens: [Int]
    /// Sum of log-probabilities (the beam score when it finished).
    public var sumLogProbs: Float
    /// Length-normalised score the hypotheses are ranked by.
    public var score: Double
}

/// Beam search bookkeeping as a value: copy it to snapshot (OPERA's rollback restores a copy).
/// Drive it with `candidates(logProbs:)` → `advance(_:)` per step; the session follows `parents`.
public struct BeamSearchState: Sendable {
    public let numBeams: Int
    public let lengthPenalty: Double
    public let earlyStopping: EarlyStopping
    public let semantics: BeamSemantics
    public let eosTokenIDs: Set<Int>
    /// Length of transformers' `input_ids` before generation (transformers-4 normalises by the whole row).
    public let inputLength: Int
    public let maxNewTokens: Int

    /// Generated tokens of each running beam.
    public private(set) var beams: [[Int]]
    /// Running beam scores (sum of log-probabilities); beams 1... start at −1e9 so step 0 expands beam 0.
    public private(set) var scores: [Float]
    public private(set) var finished: [BeamHypothesis] = []
    /// No more steps are needed.
    public private(set) var isDone = false
    /// transformers-5's `is_early_stop_heuristic_unsatisfied`.
    private var improvementPossible = true
    /// transformers-4's worst kept score (1e9 while empty).
    private var worstScore: Double = 1e9

    public init(numBeams: Int, lengthPenalty: Double = 1, earlyStopping: EarlyStopping = .heuristic,
                semantics: BeamSemantics, eosTokenIDs: Set<Int>, inputLength: Int, maxNewTokens: Int) {
        self.numBeams = numBeams
        self.lengthPenalty = lengthPenalty
        self.earlyStopping = earlyStopping
        self.semantics = semantics
        self.eosTokenIDs = eosTokenIDs
        self.inputLength = inputLength
        self.maxNewTokens = maxNewTokens
        beams = Array(repeating: [], count: numBeams)
        scores = [0] + Array(repeating: -1e9, count: numBeams - 1)
    }

    /// Tokens generated so far (the same for every running beam).
    public var generatedCount: Int { beams[0].count }

    /// How many continuations a step ranks.
    public var candidateCount: Int { max(2, 1 + eosTokenIDs.count) * numBeams }

    /// The best `candidateCount` continuations: `logProbs[b]` is beam b's processed log-softmax row; ties go
    /// to the lower flat index (beam · vocab + token), as torch.topk on these inputs. Under `transformers437`
    /// equal scores come out in torch.topk's own order (`TorchTopK`): PAI's −∞ cut-off leaves so few tokens
    /// that the first step's dummy beams (score −1e9, which absorbs any log-probability in float32) fill the
    /// remaining places with equal scores, and which of them take which place decides the history of the
    /// text-only rows PAI never reorders.
    public func candidates(logProbs: [[Float]]) -> [BeamCandidate] {
        let k = candidateCount
        if semantics == .transformers437, let vocab = logProbs.first?.count, k * 64 <= vocab * logProbs.count {
            var flat: [Float] = []
            flat.reserveCapacity(vocab * logProbs.count)
            for (b, row) in logProbs.enumerated() { flat += row.map { $0 + scores[b] } }
            return TorchTopK.largest(flat, k: k).map { BeamCandidate(beam: $0 / vocab, token: $0 % vocab, score: flat[$0]) }
        }
        var best: [BeamCandidate] = []
        best.reserveCapacity(k + 1)
        for (b, row) in logProbs.enumerated() {
            let base = scores[b]
            for (t, lp) in row.enumerated() {
                let s = lp + base
                if best.count == k, !(s > best[k - 1].score) { continue }
                var i = best.count
                while i > 0 && s > best[i - 1].score { i -= 1 }
                best.insert(BeamCandidate(beam: b, token: t, score: s), at: i)
                if best.count > k { best.removeLast() }
            }
        }
        return best
    }

    /// Applies one step's ranked candidates. Returns, for each new running beam, its parent beam (reorder the
    /// session with it, then step with `lastTokens`). After `isDone`, call `best()`.
    @discardableResult
    public mutating func advance(_ candidates: [BeamCandidate]) -> [Int] {
        switch semantics {
        case .transformers4, .transformers437: return advance4(candidates)
        case .transformers5: return advance5(candidates)
        }
    }

    /// The token each running beam appended last.
    public var lastTokens: [Int] { beams.map { $0.last ?? 0 } }

    private func normalised(_ sum: Float, length: Int) -> Double {
        Double(sum) / Foundation.pow(Double(length), lengthPenalty)
    }

    // MARK: transformers 4 (BeamSearchScorer)

    private mutating func add4(_ tokens: [Int], sum: Float, rowLength: Int) {
        let score = normalised(sum, length: rowLength)
        guard finished.count < numBeams || score > worstScore else { return }
        finished.append(BeamHypothesis(tokens: tokens, sumLogProbs: sum, score: score))
        if finished.count > numBeams {
            // Drop the lowest score (the first of equal lowest, as Python's sorted over (score, index)).
            let sorted = finished.indices.sorted { (finished[$0].score, $0) < (finished[$1].score, $1) }
            finished.remove(at: sorted[0])
            worstScore = finished.map(\.score).min()!
        } else {
            worstScore = min(score, worstScore)
        }
    }

    /// The lengths `BeamSearchScorer` normalises by before this step's token: 4.29 counts the whole
    /// `input_ids` row (`inputLength` + generated), 4.37 only the generated tokens (its `decoder_prompt_len`
    /// is subtracted); `eosLength` is a hypothesis finished by an EOS now (4.29: the row without the EOS, 4.37:
    /// the generated tokens with it), `nextLength` the `cur_len` of `is_done` and `maxLength` its `never` bound.
    private var lengths: (eos: Int, next: Int, max: Int, offset: Int) {
        let offset = semantics == .transformers437 ? 0 : inputLength
        let row = offset + generatedCount
        return (semantics == .transformers437 ? row + 1 : row, row + 1, offset + maxNewTokens, offset)
    }

    private mutating func advance4(_ candidates: [BeamCandidate]) -> [Int] {
        let (eosLength, nextLength, maxLength, offset) = lengths
        var parents: [Int] = [], nextBeams: [[Int]] = [], nextScores: [Float] = []
        for (rank, c) in candidates.enumerated() {
            if eosTokenIDs.contains(c.token) {
                if rank >= numBeams { continue }
                add4(beams[c.beam] + [c.token], sum: c.score, rowLength: eosLength)
            } else {
                parents.append(c.beam)
                nextBeams.append(beams[c.beam] + [c.token])
                nextScores.append(c.score)
            }
            if parents.count == numBeams { break }
        }
        // is_done(best candidate score, cur_len = input_ids length + 1).
        if finished.count >= numBeams {
            switch earlyStopping {
            case .always: isDone = true
            case .heuristic:
                if worstScore >= normalised(candidates[0].score, length: nextLength) { isDone = true }
            case .never:
                let length = lengthPenalty > 0 ? maxLength : nextLength
                if worstScore >= normalised(candidates[0].score, length: length) { isDone = true }
            }
        }
        beams = nextBeams
        scores = nextScores
        if isDone { return parents }
        if generatedCount >= maxNewTokens {
            // finalize: the open beams join the hypotheses.
            for (b, tokens) in beams.enumerated() { add4(tokens, sum: scores[b], rowLength: offset + tokens.count) }
            isDone = true
        }
        return parents
    }

    // MARK: transformers 5 (vectorised _beam_search)

    private mutating func advance5(_ candidates: [BeamCandidate]) -> [Int] {
        let generated = generatedCount + 1  // cur_len + 1 − prompt length
        let atMax = generated >= maxNewTokens
        let hits = candidates.map { eosTokenIDs.contains($0.token) || atMax }
        // Running beams: top B with finished continuations pushed down by 1e9 (stable order).
        var pushed: [(i: Int, s: Float)] = []
        for (i, c) in candidates.enumerated() { pushed.append((i, hits[i] ? c.score - 1e9 : c.score)) }
        let ranked = pushed.sorted { a, b in a.s > b.s || (a.s == b.s && a.i < b.i) }.prefix(numBeams)
        // Finished: continuations ranked < B that hit a stopping criterion.
        let full = finished.count == numBeams
        if improvementPossible && !(full && earlyStopping == .always) {
            var merged = finished
            for (rank, c) in candidates.enumerated() where rank < numBeams && hits[rank] {
                let divisor = Float(Foundation.pow(Double(generated), lengthPenalty))
                merged.append(BeamHypothesis(tokens: beams[c.beam] + [c.token], sumLogProbs: c.score,
                                             score: Double(c.score / divisor)))
            }
            let order = merged.indices.sorted { a, b in
                merged[a].score > merged[b].score || (merged[a].score == merged[b].score && a < b)
            }
            finished = order.prefix(numBeams).map { merged[$0] }
        }
        let parents = ranked.map { candidates[$0.i].beam }
        beams = ranked.map { beams[candidates[$0.i].beam] + [candidates[$0.i].token] }
        scores = ranked.map { $0.s }
        // Early-stop heuristic with the new length.
        let bestLength = earlyStopping == .never && lengthPenalty > 0 ? maxNewTokens : generated
        let bestRunning = Double(scores[0] / Float(Foundation.pow(Double(bestLength), lengthPenalty)))
        let worstFinished = finished.count == numBeams ? finished.map(\.score).min()! : -1e9
        improvementPossible = improvementPossible && bestRunning > worstFinished
        let allFinished = finished.count == numBeams && earlyStopping == .always
        if !improvementPossible || allFinished || hits.allSatisfy({ $0 }) { isDone = true }
        return parents
    }

    /// The winning hypothesis (call when `isDone`).
    public func best() -> BeamHypothesis? {
        switch semantics {
        case .transformers4, .transformers437:
            // Python's stable sort by score, then pop(): among equal scores the last added wins.
            var bestIndex: Int?
            for (i, h) in finished.enumerated() where bestIndex == nil || h.score >= finished[bestIndex!].score { bestIndex = i }
            return bestIndex.map { finished[$0] }
        case .transformers5:
            return finished.first
        }
    }
}

/// Beam search: transformers' `generate(num_beams=B, do_sample=False)`.
public struct BeamSearchDecoder: Decoder {
    public var numBeams: Int
    public var lengthPenalty: Double
    public var earlyStopping: EarlyStopping
    public var semantics: BeamSemantics
    public var repetitionPenalty: Double
    public let name = "beam"

    public init(numBeams: Int = 5, lengthPenalty: Double = 1, earlyStopping: EarlyStopping = .heuristic,
                semantics: BeamSemantics = .transformers4, repetitionPenalty: Double = 1) {
        self.numBeams = numBeams
        self.lengthPenalty = lengthPenalty
        self.earlyStopping = earlyStopping
        self.semantics = semantics
        self.repetitionPenalty = repetitionPenalty
    }

    public var parameters: DecoderParameters {
        DecoderParameters(["num_beams": .int(numBeams), "length_penalty": .double(lengthPenalty),
                           "early_stopping": .string(earlyStopping.rawValue), "semantics": .string(semantics.rawValue),
                           "repetition_penalty": .double(repetitionPenalty)])
    }

    public var inputs: DecoderInputs { DecoderInputs(beams: numBeams) }

    public static let descriptor = DecoderDescriptor(
        name: "beam",
        summary: "Beam search over B hypotheses by summed log-probability, transformers' semantics (4.29 scorer by default).",
        parameters: [
            ParameterSpec("num_beams", .int(1...64), default: .int(5), help: "Hypotheses kept per step.",
                          source: "OPERA paper / chair_eval.py beam baseline (5)"),
            ParameterSpec("length_penalty", .double(-10...10), default: .double(1.0),
                          help: "Finished scores are sum / length^lp.", source: "transformers GenerationConfig default"),
            ParameterSpec("early_stopping", .choice(EarlyStopping.allCases.map(\.rawValue)), default: .string("false"),
                          help: "false: stop when no running beam can beat the worst kept (heuristic); true: when B are finished; never: canonical.",
                          source: "transformers GenerationConfig default (False)"),
            ParameterSpec("semantics", .choice(BeamSemantics.allCases.map(\.rawValue)), default: .string("transformers-4"),
                          help: "Reproduce transformers 4.29's BeamSearchScorer (OPERA/LLaVA code), 4.37's (PAI/VISTA code: lengths count generated tokens only) or transformers 5's beam search.",
                          source: "OPERA ships transformers 4.29.2"),
            repetitionPenaltySpec,
        ],
        presets: [
            DecoderPreset("opera-baseline", ["num_beams": .int(5), "semantics": .string("transformers-4")],
                          source: "OPERA paper, beam search baseline (beam 5, transformers 4.29.2)"),
            DecoderPreset("halc-baseline", ["num_beams": .int(3), "semantics": .string("transformers-4")],
                          source: "HALC caption_generation.py -b 3"),
            DecoderPreset("transformers-4.37", ["semantics": .string("transformers-4.37")],
                          source: "transformers 4.37.0 generate(num_beams=5), the version PAI's and VISTA's environment.yml pin"),
            DecoderPreset("transformers-5", ["semantics": .string("transformers-5")],
                          source: "transformers 5.24 generate(num_beams=5)"),
        ],
        make: { p in
            BeamSearchDecoder(numBeams: p.int("num_beams"), lengthPenalty: p.double("length_penalty"),
                              earlyStopping: EarlyStopping(rawValue: p.string("early_stopping"))!,
                              semantics: BeamSemantics(rawValue: p.string("semantics"))!,
                              repetitionPenalty: p.double("repetition_penalty"))
        })

    public func decode(_ context: DecodingContext) throws -> DecodeResult {
        let limits = context.limits
        let state = BeamSearchState(numBeams: numBeams, lengthPenalty: lengthPenalty, earlyStopping: earlyStopping,
                                    semantics: semantics, eosTokenIDs: limits.eosTokenIDs,
                                    inputLength: context.prompt.tokenIDs.count, maxNewTokens: limits.maxNewTokens)
        return try beamSearch(context, state: state,
                              processors: standardProcessors(repetitionPenalty: repetitionPenalty, limits: limits)) { out, i, _ in
            Array(out.logits(i))
        }
    }
}

/// The beam loop of `BeamSearchDecoder` and of the decoders that search over their own scores (DeCo with
/// `num_beams` > 1): the prompt is prefilled once (with `options`) and forked B − 1 times (blocks shared);
/// at each step every beam's row of scores, `rowScores(output, i, trace)` for the i-th logit row of the pass
/// (the logits for plain beam search), goes through log-softmax and `processors`, and `state` picks the
/// continuations (`BeamSearchState.candidates` → `advance`); the session is reordered to the parents and
/// stepped with the chosen tokens (with `options`), until the search is done. `logSoftmaxRows` false hands the
/// rows to the processors as they are (PAI: its guidance already works on log-softmaxes and transformers adds
/// its output to the beam scores unnormalised); `companion` is stepped after each choice, before the next rows
/// are scored (PAI's text-only rows), and its meter is added to the result's. `prefilled` is a session whose
/// sequence 0 already holds the whole prompt and that pass's output, for decoders whose edits must reach every
/// prompt row (VISTA's steering; `context.prefilledSession` computes the shared prefix without options).
func beamSearch(_ context: DecodingContext, state initial: BeamSearchState, processors: [any LogitsProcessor],
                options: ForwardOptions = ForwardOptions(), trace initialTrace: DecodeTrace = DecodeTrace(),
                logSoftmaxRows: Bool = true, companion: BeamCompanion? = nil, prefilled: (MeteredSession, ForwardOutput)? = nil,
                rowScores: (_ output: ForwardOutput, _ row: Int, _ trace: inout DecodeTrace) throws -> [Float]) throws -> DecodeResult {
    let limits = context.limits
    let promptIDs = context.prompt.tokenIDs
    var state = initial
    let numBeams = state.numBeams
    guard limits.maxNewTokens > 0 else {
        return DecodeResult(tokens: [], text: "", stopReason: .maxNewTokens, meter: ForwardMeter())
    }
    var trace = initialTrace
    let (session, first) = try prefilled ?? context.prefilledSession(options: options)
    // Every beam starts as the prompt (transformers expands the prompt B times); share its cache.
    var rows = Array(repeating: try rowScores(first, 0, &trace), count: numBeams)
    for _ in 1..<numBeams { session.session.fork(0) }
    while true {
        let logProbs = rows.enumerated().map { b, scores -> [Float] in
            var lp = logSoftmaxRows ? logSoftmax(scores[...]) : scores
            let ctx = LogitsContext(tokens: promptIDs + state.beams[b], generated: state.generatedCount)
            for p in processors { p.process(&lp, context: ctx) }
            return lp
        }
        let parents = state.advance(state.candidates(logProbs: logProbs))
        if state.isDone { break }
        session.session.reorder(parents)
        try companion?.advance(parents, state.lastTokens)
        let out = try session.step(state.lastTokens, options: options)
        rows = try (0..<numBeams).map { try rowScores(out, $0, &trace) }
    }
    trace.counters["finished-hypotheses"] = Double(state.finished.count)
    let meter = session.meter + (companion?.meter() ?? ForwardMeter())
    guard let best = state.best() else {
        return DecodeResult(tokens: [], text: "", stopReason: .searchFinished, meter: meter, trace: trace)
    }
    trace.counters["best-score"] = best.score
    var tokens = best.tokens
    if tokens.count > limits.maxNewTokens { tokens.removeLast(tokens.count - limits.maxNewTokens) }
    let reason: StopReason = tokens.last.map { limits.eosTokenIDs.contains($0) } == true ? .eos : .maxNewTokens
    return DecodeResult(tokens: tokens, text: context.text(of: tokens), stopReason: reason, meter: meter, trace: trace)
}

/// Sequences a beam decoder steps beside its beams (PAI's text-only rows): `advance(parents, tokens)` runs after
/// each step's choice (the beams already reordered to `parents`, `tokens` each beam's new last token).
struct BeamCompanion {
    var advance: (_ parents: [Int], _ tokens: [Int]) throws -> Void
    var meter: () -> ForwardMeter
}

/// torch.topk(largest: true, sorted: true) on the CPU when k · 64 ≤ n (always in beam search, k = 2·B over
/// B · vocab): std::partial_sort of (value, index) pairs compared by value only (PyTorch's TopKImpl.h), i.e.
/// libstdc++'s heap select (make_heap on the first k, each later element that beats the heap's top replaces it)
/// and sort_heap. Equal values come out in the order that leaves them, not by index; reproduced here from the
/// algorithm's description (checked against torch 2.13 on 300 random rows full of ties and −∞). NaN is not
/// handled (beam scores have none).
enum TorchTopK {
    /// The indices of the k largest values, in torch's order.
    static func largest(_ values: [Float], k: Int) -> [Int] {
        guard k > 0, !values.isEmpty else { return [] }
        let k = min(k, values.count)
        var heap = Array(0..<k)
        // comp(a, b): a goes before b, i.e. a's value is larger; the heap's top is the smallest kept value.
        func before(_ a: Int, _ b: Int) -> Bool { values[a] > values[b] }
        func adjust(_ start: Int, _ length: Int, _ value: Int) {
            var hole = start, child = start
            while child < (length - 1) / 2 {
                child = 2 * (child + 1)
                if before(heap[child], heap[child - 1]) { child -= 1 }
                heap[hole] = heap[child]
                hole = child
            }
            if length % 2 == 0 && child == (length - 2) / 2 {
                child = 2 * (child + 1)
                heap[hole] = heap[child - 1]
                hole = child - 1
            }
            var parent = (hole - 1) / 2
            while hole > start && before(heap[parent], value) {
                heap[hole] = heap[parent]
                hole = parent
                parent = (hole - 1) / 2
            }
            heap[hole] = value
        }
        if k >= 2 {
            var parent = (k - 2) / 2
            while true {
                adjust(parent, k, heap[parent])
                if parent == 0 { break }
                parent -= 1
            }
        }
        for i in k..<values.count where before(i, heap[0]) { adjust(0, k, i) }
        var last = k
        while last > 1 {
            last -= 1
            let value = heap[last]
            heap[last] = heap[0]
            adjust(0, last, value)
        }
        return heap
    }
}
