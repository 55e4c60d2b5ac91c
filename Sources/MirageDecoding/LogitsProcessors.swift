import Foundation

/// What a logits processor may look at for one row.
public struct LogitsContext: Sendable {
    /// The row's token ids so far: the prompt's token items, then the generated tokens (transformers'
    /// `input_ids`; embedding rows have no id and are not in it).
    public var tokens: [Int]
    /// Number of tokens generated so far on this row.
    public var generated: Int

    public init(tokens: [Int], generated: Int) {
        self.tokens = tokens
        self.generated = generated
    }
}

/// Edits one row of scores in place (logits for greedy/sampling, log-probabilities in beam search, as
/// transformers applies its processors after `log_softmax` there).
public protocol LogitsProcessor: Sendable {
    func process(_ scores: inout [Float], context: LogitsContext)
}

/// transformers' `RepetitionPenaltyLogitsProcessor` (CTRL, Keskar et al. 2019): every token present in
/// `context.tokens` gets `s < 0 ? s·θ : s/θ`.
public struct RepetitionPenalty: LogitsProcessor {
    public var penalty: Float
    public init(_ penalty: Float) { self.penalty = penalty }

    public func process(_ scores: inout [Float], context: LogitsContext) {
        var seen = Set<Int>()
        for t in context.tokens where seen.insert(t).inserted && scores.indices.contains(t) {
            let s = scores[t]
            scores[t] = s < 0 ? s * penalty : s / penalty
        }
    }
}

/// transformers' `MinNewTokensLengthLogitsProcessor`: EOS tokens get −∞ while fewer than `minNewTokens`
/// tokens were generated.
public struct MinNewTokens: LogitsProcessor {
    public var minNewTokens: Int
    public var eosTokenIDs: Set<Int>
    public init(_ minNewTokens: Int, eosTokenIDs: Set<Int>) {
        self.minNewTokens = minNewTokens
        self.eosTokenIDs = eosTokenIDs
    }

    public func process(_ scores: inout [Float], context: LogitsContext) {
        guard context.generated < minNewTokens else { return }
        for t in eosTokenIDs where scores.indices.contains(t) { scores[t] = -.infinity }
    }
}

/// transformers' `TemperatureLogitsWarper`: scores / T.
public struct Temperature: LogitsProcessor {
    public var temperature: Float
    public init(_ temperature: Float) { self.temperature = temperature }
    public func process(_ scores: inout [Float], context: LogitsContext) {
        for i in scores.indices { scores[i] /= temperature }
    }
}

/// transformers' `TopKLogitsWarper`: scores below the k-th largest become −∞ (ties with it are kept).
public struct TopK: LogitsProcessor {
    public var k: Int
    public init(_ k: Int) { self.k = k }
    public func process(_ scores: inout [Float], context: LogitsContext) {
        let k = min(max(k, 1), scores.count)
        guard k < scores.count else { return }
        let threshold = scores.sorted(by: >)[k - 1]
        for i in scores.indices where scores[i] < threshold { scores[i] = -.infinity }
    }
}

/// transformers' `TopPLogitsWarper` (nucleus, Holtzman et al. 2020): sort ascending, drop the tokens whose
/// cumulative probability is ≤ 1 − p, always keep the most likely one.
public struct TopP: LogitsProcessor {
    public var p: Float
    public init(_ p: Float) { self.p = p }
    public func process(_ scores: inout [Float], context: LogitsContext) {
        guard p < 1 else { return }
        // Ascending by score; equal scores by index (a stable order).
        let order = scores.indices.sorted { scores[$0] < scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
        let probabilities = softmax(scores)
        var cumulative: Float = 0
        for (rank, i) in order.enumerated() where rank < order.count - 1 {
            cumulative += probabilities[i]
            if cumulative <= 1 - p { scores[i] = -.infinity } else { break }
        }
    }
}

/// Softmax in Float with the maximum subtracted (−∞ scores get 0).
public func softmax(_ scores: [Float]) -> [Float] {
    let m = scores.max() ?? 0
    guard m > -.infinity else { return [Float](repeating: 0, count: scores.count) }
    var e = scores.map { $0 == -.infinity ? 0 : Float(Foundation.exp(Double($0 - m))) }
    let sum = e.reduce(0, +)
    for i in e.indices { e[i] /= sum }
    return e
}

/// log_softmax as torch computes it: s − max − log Σ exp(s − max).
public func logSoftmax(_ scores: ArraySlice<Float>) -> [Float] {
    let m = scores.max() ?? 0
    var sum: Double = 0
    for s in scores { sum += Foundation.exp(Double(s - m)) }
    let lse = Float(Foundation.log(sum))
    return scores.map { $0 - m - lse }
}

/// The chosen token of a categorical draw: the first index whose cumulative weight exceeds `u · total`
/// (weights in index order, accumulated in Double). `u` is in [0, 1).
public func sampleIndex(weights: [Float], u: Double) -> Int {
    var total: Double = 0
    for w in weights { total += Double(w) }
    let target = u * total
    var cumulative: Double = 0
    var last = 0
    for (i, w) in weights.enumerated() where w > 0 {
        cumulative += Double(w)
        last = i
        if cumulative > target { return i }
    }
    return last
}
