import Foundation

/// The finished-hypothesis bookkeeping of transformers 4.29.2's `BeamSearchScorer` for one batch item,
/// as OPERA's reference code drives it (shikiw/OPERA, `transformers-4.29.2/src/transformers/generation/beam_search.py`
/// of the vendored tree, called from `opera_beam_search` in `generation/utils.py`).
///
/// - scores are Python floats (Double): `sum_logprobs / len(hyp) ** length_penalty`, where `len(hyp)` is
///   the whole `input_ids` row (`lengthOffset` entries before the response plus the generated tokens);
/// - a hypothesis heap of `numBeams` entries; `worstScore` starts at 1e9;
/// - `isDone` with `early_stopping=False`: `worst ≥ best_running / cur_len ** length_penalty`.
///
/// A class on purpose: OPERA's reference restores the snapshot *object* on rollback (it is mutated
/// afterwards), which `reference` mode reproduces; `clean` mode restores a copy.
final class OperaBeamScorer {
    struct Hypothesis {
        var score: Double
        /// Generated tokens only (the `lengthOffset` prefix is common to all rows).
        var tokens: [Int]
    }

    /// One new beam slot chosen by `process`.
    struct Choice: Equatable {
        var source: Int
        var token: Int
        var score: Float
    }

    let numBeams: Int
    let lengthPenalty: Double
    let lengthOffset: Int
    private(set) var hypotheses: [Hypothesis] = []
    private(set) var worstScore: Double = 1e9
    private(set) var isDone = false

    init(numBeams: Int, lengthPenalty: Double, lengthOffset: Int) {
        self.numBeams = numBeams
        self.lengthPenalty = lengthPenalty
        self.lengthOffset = lengthOffset
    }

    func copy() -> OperaBeamScorer {
        let c = OperaBeamScorer(numBeams: numBeams, lengthPenalty: lengthPenalty, lengthOffset: lengthOffset)
        c.hypotheses = hypotheses
        c.worstScore = worstScore
        c.isDone = isDone
        return c
    }

    private func normalised(_ sum: Double, generated: Int) -> Double {
        sum / pow(Double(lengthOffset + generated), lengthPenalty)
    }

    /// `BeamHypotheses.add`.
    func add(_ tokens: [Int], sumLogprobs: Double) {
        let score = normalised(sumLogprobs, generated: tokens.count)
        guard hypotheses.count < numBeams || score > worstScore else { return }
        hypotheses.append(Hypothesis(score: score, tokens: tokens))
        if hypotheses.count > numBeams {
            // Python sorts (score, index) tuples: the lowest score goes, the lower index first among equals.
            let order = hypotheses.indices.sorted { a, b in
                pythonLess(hypotheses[a].score, hypotheses[b].score)
                    || (!pythonLess(hypotheses[b].score, hypotheses[a].score) && a < b)
            }
            let secondLowest = hypotheses[order[1]].score
            hypotheses.remove(at: order[0])
            worstScore = secondLowest
        } else {
            // Python's min(score, worst): keeps the first argument unless the second is smaller.
            worstScore = worstScore < score ? worstScore : score
        }
    }

    /// `BeamHypotheses.is_done` with `early_stopping=False`.
    private func hypothesesDone(bestSum: Double, curLen: Int) -> Bool {
        guard hypotheses.count >= numBeams else { return false }
        let current = bestSum / pow(Double(curLen), lengthPenalty)
        return worstScore >= current
    }

    /// `BeamSearchScorer.process` for batch size 1.
    /// - `top`: the `2·numBeams` best `(flat index, score)` pairs over `numBeams × vocab`, in rank order.
    /// - `slotTokens`: the generated tokens of every current slot (what `input_ids[i]` holds after the prefix).
    /// - `curLen`: `input_ids` length + 1, as 4.29.2 passes it to `is_done`.
    func process(top: [(index: Int, value: Float)], vocab: Int, eos: Set<Int>, pad: Int,
                 slotTokens: [[Int]], curLen: Int) -> [Choice] {
        if isDone {
            return Array(repeating: Choice(source: 0, token: pad, score: 0), count: numBeams)
        }
        var chosen: [Choice] = []
        for (rank, entry) in top.enumerated() {
            let source = entry.index / vocab, token = entry.index % vocab
            if eos.contains(token) {
                if rank >= numBeams { continue }
                add(slotTokens[source], sumLogprobs: Double(entry.value))
            } else {
                chosen.append(Choice(source: source, token: token, score: entry.value))
            }
            if chosen.count == numBeams { break }
        }
        precondition(chosen.count == numBeams, "beam step: fewer than \(numBeams) non-EOS continuations among the top \(top.count)")
        let best = torchMax(top.map { $0.value })
        isDone = isDone || hypothesesDone(bestSum: Double(best), curLen: curLen)
        return chosen
    }

    /// `BeamSearchScorer.finalize` for batch size 1, one returned sequence: adds the open beams unless the
    /// search is done, then takes the last of the stably sorted hypotheses.
    func finalize(slotTokens: [[Int]], beamScores: [Float]) -> Hypothesis {
        if !isDone {
            for (tokens, score) in zip(slotTokens, beamScores) { add(tokens, sumLogprobs: Double(score)) }
        }
        // Python's sorted is stable; `pop()` takes the last, so among equal scores the one added last wins.
        let sorted = hypotheses.enumerated().sorted { a, b in
            pythonLess(a.element.score, b.element.score)
                || (!pythonLess(b.element.score, a.element.score) && a.offset < b.offset)
        }
        return sorted.last!.element
    }
}

/// Python's `<` on floats (False whenever NaN is involved), used where Python sorts.
@inline(__always) func pythonLess(_ a: Double, _ b: Double) -> Bool { a < b }

/// `torch.max` of a vector: NaN if any element is NaN.
func torchMax(_ values: [Float]) -> Float {
    var best = -Float.infinity
    for v in values {
        if v.isNaN { return v }
        if v > best { best = v }
    }
    return best
}
