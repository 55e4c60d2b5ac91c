import Foundation
import MirageEngine

/// The prompt as OPERA needs it: the rows fed to the model plus where the image sits.
public struct OperaPrompt: Sendable {
    /// Rows fed to the model (token ids and embedding rows). The response starts at `items.count`.
    public var items: [PromptItem]
    /// Image rows in attention coordinates, inclusive (`key_position["image_start"]...["image_end"]`).
    public var imageSpan: ClosedRange<Int>
    /// The `input_ids` transformers holds before the response: what the repetition penalty sees.
    public var inputIDs: [Int]
    /// `len(input_ids)` before the response: the length offset of beam-score normalisation. For prompts
    /// given as embeddings transformers 4.29.2 uses a dummy `[BOS]` (1); for LLaVA the prompt ids with the
    /// image placeholder counted once.
    public var lengthOffset: Int

    public init(items: [PromptItem], imageSpan: ClosedRange<Int>, inputIDs: [Int], lengthOffset: Int? = nil) {
        self.items = items
        self.imageSpan = imageSpan
        self.inputIDs = inputIDs
        self.lengthOffset = lengthOffset ?? inputIDs.count
    }

    /// Response start (`key_position["response_start"]`): the prompt length.
    public var responseStart: Int { items.count }
}

/// One rollback, with the fields of the golden cases' `rollbacks[]`.
public struct OperaRollback: Sendable, Equatable, Codable {
    /// Loop iteration at which the trigger fired.
    public var iteration: Int
    /// Window size n (= response length + 1) when it fired.
    public var responseLength: Int
    /// The summary location (the global mode of the column-score argmax).
    public var summaryLocation: Int
    /// The response position re-decided.
    public var position: Int
    /// Rollbacks at `position` so far, this one included.
    public var timesAtPosition: Int
    /// (beam, token) pairs rejected at `position` in this rollback.
    public var rejectedPairs: Int
}

/// One loop iteration with a non-zero column penalty (n > 10).
public struct OperaPenaltyStep: Sendable, Equatable, Codable {
    public var iteration: Int
    /// Window size n (response length + 1).
    public var responseLength: Int
    /// The global summary location (response index) of this step.
    public var summaryLocation: Int
    /// The largest penalty applied to any candidate (may be +inf in `reference` mode: fp16 saturation).
    public var maxPenalty: Float
}

/// What an OPERA run returns (before conversion to the common `DecodeResult`).
public struct OperaOutcome: Sendable {
    /// Iterations whose candidates received a non-zero column penalty.
    public var penalties: [OperaPenaltyStep] = []
    /// Generated tokens, with the EOS appended when the best hypothesis ended by it (transformers' finalize).
    public var tokens: [Int]
    public var endedWithEOS: Bool
    /// The best hypothesis' normalised score (`sequences_scores`).
    public var score: Double
    public var rollbacks: [OperaRollback]
    /// Loop iterations (more than the tokens when rollbacks happened).
    public var iterations: Int
    /// Summary counts: triggers, suppressions, infinite penalties, degenerate beams, NaN steps.
    public var counters: [String: Double]
    public var passes = 0
    public var prefillRows = 0
    public var decodeRows = 0
    public var prefillNanoseconds: UInt64 = 0
    public var decodeNanoseconds: UInt64 = 0
}

/// A response row of one beam lineage: the running column products of the attention window.
///
/// `products[j] = Π_{k=j}^{i} σ·W[k][j]` for the row's response index i, where W is the last layer's
/// max-over-heads attention, each row divided by its sum over all keys. The reference recomputes the
/// whole window every step; the products of a lineage only ever gain one factor per row, so each new row
/// costs O(n).
final class OperaRow {
    let parent: OperaRow?
    let products: [Float]
    init(parent: OperaRow?, products: [Float]) {
        self.parent = parent
        self.products = products
    }
}

/// OPERA (Huang et al., CVPR 2024) as a beam search over one `Session`.
///
/// Differences from the reference that do not change decisions (only the last bits of the floats):
/// - the candidate forwards of all beams run in one pass, and the chosen candidate's cache and logits are
///   kept, so the reference's next "main" forward is not repeated (C·B rows per step instead of (C+1)·B);
/// - only the last layer's max-over-heads attention rows are read, and column products are incremental;
/// - a rollback forks the live beam sharing the longest prefix, truncates its cache and re-feeds the rest,
///   instead of re-prefilling prompt and response from scratch.
final class OperaSearch {
    let model: LanguageModel
    let params: OperaParameters
    let prompt: OperaPrompt
    let eos: Set<Int>
    let pad: Int
    let V: Int, R: Int, B: Int, C: Int
    let session: Session
    /// Rows of the prompt already in the session (a shared prefix, see `DecodingContext.prefixSession`) and
    /// the meter of their prefill.
    let prefilledRows: Int
    let prefixMeter: ForwardMeter

    /// Called after every rollback's cache restore with the restored slot tokens and the logits of the
    /// re-decided position (tests compare them with a fresh run of the shorter prefix).
    var onRollback: ((Session, [[Int]], [[Float]]) -> Void)?

    // Live state, one entry per beam slot.
    private var tokens: [[Int]]
    private var rows: [OperaRow?]
    private var logits: [[Float]]
    private var beamScores: [Float]
    private var scorer: OperaBeamScorer
    private var lastChoice: [OperaBeamScorer.Choice]?

    private struct Snapshot {
        var tokens: [[Int]]
        var rows: [OperaRow?]
        var scorer: OperaBeamScorer
        var beamScores: [Float]
        var previousChoice: [OperaBeamScorer.Choice]?
        var lineageLocations: [[Int]] = []
    }
    private var history: [Snapshot] = []
    /// reference: `hist_loc`, one `[B]` entry per step, indexed by slot. clean: one history per lineage.
    private var stepLocations: [[Int]] = []
    private var lineageLocations: [[Int]]
    private var rollbackCount: [Int]
    private var rejects: [[Int]]

    private var outcome = OperaOutcome(tokens: [], endedWithEOS: false, score: 0, rollbacks: [], iterations: 0, counters: [:])

    init(model: LanguageModel, prompt: OperaPrompt, params: OperaParameters, eos: Set<Int>, pad: Int, blockSize: Int = 16,
         prefix: (session: MeteredSession, length: Int)? = nil) throws {
        let V = model.config.vocabSize
        try params.validate(vocabSize: V)
        guard !prompt.items.isEmpty else { throw OperaError.invalidLayout("the prompt is empty") }
        guard prompt.imageSpan.lowerBound >= 0, prompt.imageSpan.upperBound < prompt.items.count else {
            throw OperaError.invalidLayout("image span \(prompt.imageSpan) lies outside the prompt's \(prompt.items.count) rows")
        }
        guard prompt.lengthOffset >= 0 else {
            throw OperaError.invalidLayout("the length offset (len(input_ids) before the response) cannot be negative")
        }
        self.model = model
        self.params = params
        self.prompt = prompt
        self.eos = eos
        self.pad = pad
        self.V = V
        R = prompt.items.count
        B = params.numBeams
        C = params.candidates
        if let prefix, prefix.length > 0 {
            guard prefix.length < R, prefix.session.session.count == 1, prefix.session.session.length(of: 0) == prefix.length else {
                throw OperaError.invalidLayout("a prefilled prefix of \(prefix.length) rows does not fit the prompt's \(R) rows")
            }
            session = prefix.session.session
            prefilledRows = prefix.length
            prefixMeter = prefix.session.meter
        } else {
            session = model.makeSession(blockSize: blockSize)
            prefilledRows = 0
            prefixMeter = ForwardMeter()
        }
        tokens = Array(repeating: [], count: B)
        rows = Array(repeating: nil, count: B)
        logits = []
        beamScores = [0] + Array(repeating: -1e9, count: B - 1)
        scorer = OperaBeamScorer(numBeams: B, lengthPenalty: params.lengthPenalty, lengthOffset: prompt.lengthOffset)
        lineageLocations = Array(repeating: [], count: B)
        rollbackCount = Array(repeating: 0, count: params.historyCap)
        rejects = Array(repeating: [], count: params.historyCap)
    }

    // MARK: Metered passes

    private func pass(_ batch: [SequenceInput], options: ForwardOptions, prefill: Bool = false) throws -> ForwardOutput {
        let start = DispatchTime.now().uptimeNanoseconds
        let out = try session.forward(batch, options: options)
        let elapsed = DispatchTime.now().uptimeNanoseconds - start
        let n = batch.reduce(0) { $0 + $1.items.count }
        outcome.passes += 1
        if prefill {
            outcome.prefillRows += n
            outcome.prefillNanoseconds += elapsed
        } else {
            outcome.decodeRows += n
            outcome.decodeNanoseconds += elapsed
        }
        return out
    }

    private func count(_ name: String, _ by: Double = 1) { outcome.counters[name, default: 0] += by }

    // MARK: Run

    func run() throws -> OperaOutcome {
        let runStart = DispatchTime.now().uptimeNanoseconds
        let first = try pass([SequenceInput(sequence: 0, items: Array(prompt.items[prefilledRows...]))], options: ForwardOptions(),
                             prefill: true)
        let firstLogits = Array(first.logits(0))
        for _ in 1..<B { session.fork(0) }
        logits = Array(repeating: firstLogits, count: B)

        var iteration = 0
        let attention = ForwardOptions(logits: .lastOfEachSequence, lastLayerAttention: true)
        let candidateOptions = ForwardOptions(logits: .none, lastLayerAttention: true,
                                              hiddenStateLayers: [model.config.numLayers])
        while true {
            let s = tokens[0].count
            let n = s + 1
            var snapshot = Snapshot(tokens: tokens, rows: rows, scorer: scorer.copy(), beamScores: beamScores,
                                    previousChoice: lastChoice)

            // Candidates: the top-C raw logits of every beam, all B·C of them in one pass.
            let candidates = logits.map { topK($0[...], C) }
            var batch: [SequenceInput] = []
            for b in 0..<B {
                for c in 0..<C {
                    batch.append(SequenceInput(sequence: session.fork(b), items: [.token(candidates[b][c].index)]))
                }
            }
            // Logits are needed only for the B candidates the beam step keeps: take the last hidden states
            // and run the final norm + LM head on those rows afterwards (the LM head is a quarter of a
            // small model's weights).
            let out = try pass(batch, options: candidateOptions)
            let candidateHidden = out.hiddenStates[model.config.numLayers]!
            var candidateRows: [OperaRow] = []
            var penalised = Array(repeating: [Float](repeating: 0, count: C), count: B)
            var locPerBeam = [Int](repeating: 0, count: B)
            var infinite = false, notANumber = false
            var largestPenalty: Float = 0
            for b in 0..<B {
                var argmaxes: [Int] = []
                var degenerate = true
                for c in 0..<C {
                    let k = b * C + c
                    let stats = columnStats(maxOverHeads: out.attention[k].maxOverHeads, parent: rows[b])
                    candidateRows.append(OperaRow(parent: rows[b], products: stats.products))
                    argmaxes.append(stats.argmax)
                    let raw = candidates[b][c].value
                    let value: Float
                    if n <= 10 {
                        // First ten positions: a bonus equal to the candidate's attention mass on the image.
                        value = raw - params.penaltyWeight * (-stats.imageMass)
                    } else if params.mode == .reference {
                        // `penalty_weights * penalty` keeps the fp16 dtype of the score buffer.
                        value = raw - Float(Float16(params.penaltyWeight * stats.maxScore))
                    } else {
                        value = params.penaltyWeight == 0 ? raw : raw - params.penaltyWeight * stats.maxScore
                    }
                    penalised[b][c] = value
                    if n > 10, raw - value > largestPenalty { largestPenalty = raw - value }
                    if value == -.infinity { infinite = true } else { degenerate = false }
                    if value.isNaN { notANumber = true }
                }
                if degenerate { count("degenerate-beam-steps") }
                locPerBeam[b] = torchMode(argmaxes)
            }
            if infinite { count("infinite-penalty-steps") }
            if notANumber { count("nan-steps") }
            let location = torchMode(locPerBeam)
            if largestPenalty > 0 {
                outcome.penalties.append(OperaPenaltyStep(iteration: iteration, responseLength: n,
                                                          summaryLocation: location, maxPenalty: largestPenalty))
            }
            if params.mode == .reference {
                stepLocations.append(locPerBeam)
            } else {
                for b in 0..<B { lineageLocations[b].append(locPerBeam[b]) }
                snapshot.lineageLocations = lineageLocations
            }
            if history.count >= params.historyCap { history.removeFirst() }
            history.append(snapshot)

            // Rollback, or the candidate-restricted distribution.
            var stepLogits: [[Float]]
            var fromCandidates = false
            if let rolled = try rollbackIfTriggered(n: n, location: location, iteration: iteration) {
                stepLogits = rolled
            } else {
                fromCandidates = true
                stepLogits = (0..<B).map { b in
                    var row = [Float](repeating: -999, count: V)
                    for c in 0..<C { row[candidates[b][c].index] = penalised[b][c] }
                    return row
                }
            }

            // Beam step (transformers 4.29.2): log-softmax, processors, + beam scores, top 2B, scorer.
            var flat = [Float](); flat.reserveCapacity(B * V)
            for b in 0..<B {
                var row = logSoftmaxPropagatingNaN(stepLogits[b])
                if params.repetitionPenalty != 1 {
                    for t in Set(prompt.inputIDs + tokens[b]) where t >= 0 && t < V {
                        let v = row[t]
                        row[t] = v < 0 ? v * params.repetitionPenalty : v / params.repetitionPenalty
                    }
                }
                let add = beamScores[b]
                for i in 0..<V { row[i] += add }
                flat += row
            }
            let top = topK(flat[...], 2 * B)
            let responseLength = tokens[0].count
            let choices = scorer.process(top: top, vocab: V, eos: eos, pad: pad, slotTokens: tokens,
                                         curLen: prompt.lengthOffset + responseLength + 1)
            iteration += 1

            // New slots: a chosen candidate keeps its cache, logits and row; anything else is fed now.
            let previousRows = rows
            tokens = choices.map { tokens[$0.source] + [$0.token] }
            beamScores = choices.map(\.score)
            lastChoice = choices
            if params.mode == .clean {
                lineageLocations = choices.map { lineageLocations[$0.source] }
            }
            let stop = scorer.isDone || tokens[0].count >= params.maxNewTokens
            if stop { break }
            var order: [Int] = []
            var feed: [Int] = []
            var newRows = [OperaRow?](repeating: nil, count: B)
            var newLogits = [[Float]](repeating: [], count: B)
            var kept: [(slot: Int, row: Int)] = []
            for (j, choice) in choices.enumerated() {
                if fromCandidates, let c = candidates[choice.source].firstIndex(where: { $0.index == choice.token }) {
                    let k = choice.source * C + c
                    order.append(B + k)
                    newRows[j] = candidateRows[k]
                    kept.append((j, k))
                } else {
                    order.append(choice.source)
                    feed.append(j)
                }
            }
            session.reorder(order)
            if !kept.isEmpty {
                let H = model.config.hiddenSize
                var hidden = [Float](); hidden.reserveCapacity(kept.count * H)
                for (_, k) in kept { hidden += candidateHidden[(k * H)..<((k + 1) * H)] }
                let lm = model.earlyExitLogits(hidden, rows: kept.count, applyFinalNorm: true)
                for (i, (j, _)) in kept.enumerated() { newLogits[j] = Array(lm[(i * V)..<((i + 1) * V)]) }
            }
            if !feed.isEmpty {
                let fed = try pass(feed.map { SequenceInput(sequence: $0, items: [.token(choices[$0].token)]) },
                                   options: attention)
                for (k, j) in feed.enumerated() {
                    let parent = previousRows[choices[j].source]
                    let stats = columnStats(maxOverHeads: fed.attention[k].maxOverHeads, parent: parent)
                    newRows[j] = OperaRow(parent: parent, products: stats.products)
                    newLogits[j] = Array(fed.logits(k))
                }
            }
            rows = newRows
            logits = newLogits
        }
        outcome.iterations = iteration
        let best = scorer.finalize(slotTokens: tokens, beamScores: beamScores)
        outcome.score = best.score
        outcome.tokens = best.tokens
        let maxLength = prompt.lengthOffset + params.maxNewTokens
        if prompt.lengthOffset + best.tokens.count < maxLength, let e = eos.min() {
            outcome.tokens.append(e)
            outcome.endedWithEOS = true
        }
        outcome.counters["rollbacks"] = Double(outcome.rollbacks.count)
        outcome.counters["iterations"] = Double(iteration)
        // Decode time is wall time after the prefill: passes plus the search's own bookkeeping.
        let wall = DispatchTime.now().uptimeNanoseconds - runStart
        outcome.counters["forward-seconds"] = Double(outcome.decodeNanoseconds) / 1e9
        outcome.decodeNanoseconds = wall > outcome.prefillNanoseconds ? wall - outcome.prefillNanoseconds : 0
        // The shared prefix's prefill (if this item computed it) counts as this item's prefill.
        outcome.passes += prefixMeter.passes
        outcome.prefillRows += prefixMeter.prefillRows
        outcome.prefillNanoseconds += prefixMeter.prefillNanoseconds
        return outcome
    }

    // MARK: Column scores

    struct ColumnStats {
        var products: [Float]
        /// Max over columns of the (fp16-stored in reference mode) scores, and its first index.
        var maxScore: Float
        var argmax: Int
        /// The row's normalised attention mass on the image span.
        var imageMass: Float
    }

    /// The window statistics of a new response row whose max-over-heads attention is `m` (keys 0...position).
    func columnStats(maxOverHeads m: [Float], parent: OperaRow?) -> ColumnStats {
        var sum: Float = 0
        for v in m { sum += v }
        let score = OperaColumnScore(parent: parent?.products, responseColumns: m[R...], rowSum: sum,
                                     scale: params.scaleFactor, fp16Scores: params.mode == .reference)
        var mass: Float = 0
        for j in prompt.imageSpan { mass += m[j] / sum }
        return ColumnStats(products: score.products, maxScore: score.maxScore, argmax: score.argmax, imageMass: mass)
    }

    // MARK: Rollback

    /// The published trigger and retrospection (reference-opera-chair-pope.md §1.5). Returns the logits of
    /// the re-decided position with the rejected pairs at −999, or nil for the normal path.
    private func rollbackIfTriggered(n: Int, location: Int, iteration: Int) throws -> [[Float]]? {
        let threshold = params.threshold
        let fires: Bool
        if params.mode == .reference {
            fires = (0..<B).allSatisfy { b in stepLocations.reduce(0) { $0 + ($1[b] == location ? 1 : 0) } > threshold }
        } else {
            fires = lineageLocations.allSatisfy { h in h.reduce(0) { $0 + ($1 == location ? 1 : 0) } > threshold }
        }
        guard fires else { return nil }
        count("triggers")
        guard location >= 10 else { count("suppressed-location-below-10"); return nil }
        var rp = location + 1
        let cap = params.historyCap
        guard rp < cap else { return nil }
        if rollbackCount[rp] >= C {
            rp -= 1
            guard rollbackCount[rp] < C else { count("suppressed-exhausted"); return nil }
        }
        rollbackCount[rp] += 1
        if n - rp > cap + 1 { rp = max(1, n - cap - 1) }

        for j in 0..<max(0, n - rp - 2) {
            history.removeLast()
            if params.mode == .reference {
                stepLocations.removeLast()
                rejects[cap - 1 - j] = []   // the published loop clears from the end of the table
            }
        }
        guard history.count >= 2, let chosen = history[history.count - 1].previousChoice else { return nil }
        let restore = history[history.count - 2]
        let current = tokens
        scorer = params.mode == .reference ? restore.scorer : restore.scorer.copy()
        beamScores = restore.beamScores
        tokens = restore.tokens
        rows = restore.rows
        lastChoice = restore.previousChoice

        // Cache: fork the live beam sharing the longest prefix, truncate, re-feed the rest.
        session.reorder(Array(0..<B))
        var batch: [SequenceInput] = []
        for b in 0..<B {
            let target = tokens[b]
            var best = 0, bestLength = -1
            for (i, have) in current.enumerated() {
                var l = 0
                while l < have.count, l < target.count, have[l] == target[l] { l += 1 }
                if l > bestLength { best = i; bestLength = l }
            }
            let keep = min(bestLength, target.count - 1)
            let idx = session.fork(best)
            if keep >= 0 {
                session.truncate(idx, to: R + keep)
                batch.append(SequenceInput(sequence: idx, items: target[keep...].map { .token($0) }))
            } else {
                session.truncate(idx, to: R - 1)
                batch.append(SequenceInput(sequence: idx, items: [prompt.items[R - 1]]))
            }
        }
        let out = try pass(batch, options: ForwardOptions())
        session.reorder(Array(B..<(2 * B)))
        logits = (0..<B).map { Array(out.logits($0)) }
        onRollback?(session, tokens, logits)

        history.removeLast()
        if params.mode == .reference {
            stepLocations.removeLast()
            if rp + 1 < cap { rejects[rp + 1] = [] }
        } else {
            lineageLocations = restore.lineageLocations
            for p in (rp + 1)..<max(rp + 1, cap) { rejects[p] = [] }
        }

        var result = logits
        for b in 0..<B {
            var low = Float.infinity
            var nan = false
            for v in result[b] { if v.isNaN { nan = true } else if v < low { low = v } }
            let shift: Float = nan ? .nan : 999 + low
            for i in 0..<V { result[b][i] -= shift }
        }
        let pairs = rejects[rp] + chosen.map { $0.source * V + $0.token }
        rejects[rp] = pairs
        for p in pairs { result[p / V][p % V] = -999 }
        outcome.rollbacks.append(OperaRollback(iteration: iteration, responseLength: n, summaryLocation: location,
                                               position: rp, timesAtPosition: rollbackCount[rp], rejectedPairs: pairs.count))
        return result
    }
}

// MARK: Helpers with torch's semantics

/// `torch.topk(sorted=True)` with a deterministic order: NaN counts as the largest value, ties go to the
/// lowest index.
func topK(_ values: ArraySlice<Float>, _ k: Int) -> [(index: Int, value: Float)] {
    @inline(__always) func better(_ a: Float, _ b: Float) -> Bool {
        a.isNaN ? !b.isNaN : (!b.isNaN && a > b)
    }
    var result: [(index: Int, value: Float)] = []
    result.reserveCapacity(k + 1)
    let base = values.startIndex
    for i in values.indices {
        let v = values[i]
        if result.count == k, !better(v, result[k - 1].value) { continue }
        var pos = result.count
        while pos > 0, better(v, result[pos - 1].value) { pos -= 1 }
        result.insert((i - base, v), at: pos)
        if result.count > k { result.removeLast() }
    }
    return result
}

/// `torch.mode` on CPU: the most frequent value, the smallest among equally frequent ones.
func torchMode(_ values: [Int]) -> Int {
    var counts: [Int: Int] = [:]
    for v in values { counts[v, default: 0] += 1 }
    return counts.max { a, b in a.value < b.value || (a.value == b.value && a.key > b.key) }!.key
}

/// `log_softmax` over one row in float32 (`x − max − log Σ exp(x − max)`) where, as in torch, one NaN makes
/// the whole row NaN (the reference's `penalty_weights = 0` case relies on it).
func logSoftmaxPropagatingNaN(_ row: [Float]) -> [Float] {
    var mx = -Float.infinity
    for v in row {
        if v.isNaN { return [Float](repeating: .nan, count: row.count) }
        if v > mx { mx = v }
    }
    var sum: Float = 0
    for v in row { sum += expf(v - mx) }
    let lse = logf(sum)
    return row.map { $0 - mx - lse }
}

/// Entry point of the OPERA search for callers that hold the prompt layout themselves (the golden cases,
/// `mirage generate --embeds`); `OperaDecoder` wraps it behind the `Decoder` protocol.
public enum Opera {
    public static func run(model: LanguageModel, prompt: OperaPrompt, parameters: OperaParameters,
                           eosTokenIDs: Set<Int>, padTokenID: Int = 0, blockSize: Int = 16) throws -> OperaOutcome {
        try OperaSearch(model: model, prompt: prompt, params: parameters, eos: eosTokenIDs, pad: padTokenID,
                        blockSize: blockSize).run()
    }
}
