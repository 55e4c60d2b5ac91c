import Foundation

/// Which OPERA behaviour to run. Recorded with every run.
public enum OperaMode: String, Sendable, Codable, CaseIterable {
    /// Every behaviour of the published implementation (shikiw/OPERA @ 61426ef, `opera_beam_search`),
    /// bugs included: fp16 column-score store with its saturation, whole-history location count per beam
    /// *slot*, reject lists that are never cleared, the restored beam scorer being the snapshot object.
    case reference
    /// The same method with those bugs fixed: float32 column scores, location history per beam lineage,
    /// reject lists of later positions cleared on rollback, scorer snapshots restored as copies, and
    /// `penalty_weights = 0` meaning no penalty (no `0 · inf = NaN`).
    case clean
}

/// OPERA's hyperparameters. Defaults are the paper's and the eval scripts' (σ = 50, r = 15, N_can = 5,
/// α = 1, 5 beams; OPERA paper §4.1 and shikiw/OPERA chair_eval.py / pope_eval.py).
public struct OperaParameters: Sendable, Equatable {
    public var mode: OperaMode = .reference
    public var numBeams = 5
    public var maxNewTokens = 512
    /// σ (`scale_factor`): attention weights are multiplied by it before the column products.
    public var scaleFactor: Float = 50
    /// r (`threshold`): a rollback fires when every beam's location history holds the current location
    /// more than r times.
    public var threshold = 15
    /// N_can (`num_attn_candidates`): top-k raw-logit candidates per beam; also β, the most rollbacks per
    /// position, as in the published code.
    public var candidates = 5
    /// α (`penalty_weights`).
    public var penaltyWeight: Float = 1
    /// transformers' `repetition_penalty` applied to log-softmax scores (InstructBLIP's wrapper uses 1.5).
    public var repetitionPenalty: Float = 1
    /// transformers' `length_penalty` (beam scores are divided by `len(input_ids row) ** length_penalty`).
    public var lengthPenalty: Double = 1
    /// `window_size` of `opera_beam_search`: caps the snapshot history and the per-position tables.
    public var historyCap = 512

    public init(mode: OperaMode = .reference, numBeams: Int = 5, maxNewTokens: Int = 512, scaleFactor: Float = 50,
                threshold: Int = 15, candidates: Int = 5, penaltyWeight: Float = 1, repetitionPenalty: Float = 1,
                lengthPenalty: Double = 1, historyCap: Int = 512) {
        self.mode = mode
        self.numBeams = numBeams
        self.maxNewTokens = maxNewTokens
        self.scaleFactor = scaleFactor
        self.threshold = threshold
        self.candidates = candidates
        self.penaltyWeight = penaltyWeight
        self.repetitionPenalty = repetitionPenalty
        self.lengthPenalty = lengthPenalty
        self.historyCap = historyCap
    }

    /// Checks the values; the error says which one to change.
    public func validate(vocabSize: Int) throws {
        func bad(_ name: String, _ value: String, _ expected: String) -> OperaError {
            .invalidParameter(name: name, value: value, expected: expected)
        }
        guard numBeams >= 2 else { throw bad("beams", "\(numBeams)", "at least 2 (OPERA is a beam search; use greedy for 1 beam)") }
        guard maxNewTokens >= 1 else { throw bad("max-new-tokens", "\(maxNewTokens)", "at least 1") }
        guard candidates >= 1, candidates <= vocabSize else { throw bad("candidates", "\(candidates)", "1...\(vocabSize)") }
        guard vocabSize >= 2 else { throw bad("beams", "\(numBeams)", "a vocabulary of at least 2 tokens (the beam step takes the top 2·beams)") }
        guard threshold >= 0 else { throw bad("threshold", "\(threshold)", "0 or more") }
        guard scaleFactor.isFinite, scaleFactor > 0 else { throw bad("scale-factor", "\(scaleFactor)", "a positive number") }
        guard penaltyWeight.isFinite else { throw bad("penalty-weight", "\(penaltyWeight)", "a finite number") }
        guard repetitionPenalty.isFinite, repetitionPenalty > 0 else {
            throw bad("repetition-penalty", "\(repetitionPenalty)", "a positive number (1 = off)")
        }
        guard historyCap >= 2 else { throw bad("history-cap", "\(historyCap)", "at least 2") }
    }
}

/// Errors of OPERA runs; each says what to do.
public enum OperaError: Error, CustomStringConvertible, Equatable {
    case invalidParameter(name: String, value: String, expected: String)
    case invalidLayout(String)

    public var description: String {
        switch self {
        case let .invalidParameter(name, value, expected):
            return "opera: \(name)=\(value) is not valid; expected \(expected)"
        case let .invalidLayout(message):
            return "opera: \(message)"
        }
    }
}
