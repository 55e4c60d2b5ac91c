import Foundation
import MirageDecoding

/// A detected summary token: a response column whose OPERA column score kept winning.
public struct SummaryToken: Codable, Sendable, Equatable {
    /// Response index of the summary token.
    public var column: Int
    /// The response step (row) at which the trigger fired for it.
    public var step: Int
    public init(column: Int, step: Int) { self.column = column; self.step = step }
}

/// The detector's output for one response.
public struct SummaryDetection: Codable, Sendable, Equatable {
    /// Detected columns in order of detection (each column once, at its first trigger).
    public var tokens: [SummaryToken]
    /// The argmax location of every step (OPERA's `hist_loc` for one beam).
    public var locations: [Int]
    /// The maximum column score of every step.
    public var maxScores: [Float]

    /// Columns only.
    public var columns: [Int] { tokens.map(\.column) }
}

/// OPERA's over-trust test replayed on a recorded response (reference-opera-chair-pope.md §1.4–1.5).
///
/// At step i (rows 0...i of the map, row i playing the candidate's part) the column scores
/// `1e-7·Π_{k=j}^{i} σ·W[k][j]` are computed over the window's columns; the step's location is the first
/// argmax. The trigger fires when the current location has been the location **more than** `threshold`
/// times: in the whole history (`.historyCount`, what the published code does) or in the trailing run of
/// consecutive steps (`.consecutive`, the paper's wording). A firing location below `minimumLocation` is
/// ignored, as OPERA never rolls back to the first 10 positions. There is no rollback here, so each column is
/// reported once, at the first step it fires.
public struct SummaryTokenDetector: Sendable, Equatable {
    public enum Rule: String, Sendable, CaseIterable, Codable {
        /// `count(history == location) > r`: the published `opera_beam_search`.
        case historyCount = "history"
        /// The location was the argmax at more than r consecutive steps, ending at the current one.
        case consecutive
    }

    /// Columns competing for the maximum: the last `window` response columns (nil: the whole response, as the
    /// reference code; the paper's k is not a parameter there).
    public var window: Int?
    /// σ, `scale_factor` (paper and eval scripts: 50).
    public var scale: Float
    /// r, `threshold` (paper and eval scripts: 15; the trigger is `> r`).
    public var threshold: Int
    /// Locations below this are never reported (OPERA: 10, `if loc_global < 10: no rollback`).
    public var minimumLocation: Int
    public var rule: Rule
    /// Store scores as Float16 as the reference does (saturation to +inf makes ties, won by the first column).
    public var fp16Scores: Bool

    public init(window: Int? = nil, scale: Float = 50, threshold: Int = 15, minimumLocation: Int = 10,
                rule: Rule = .historyCount, fp16Scores: Bool = true) throws {
        if let window, window < 1 { throw AnalysisError.invalidParameter("--window must be at least 1 (got \(window)); omit it for the whole response") }
        guard scale > 0, scale.isFinite else { throw AnalysisError.invalidParameter("--scale must be a positive number (got \(scale)); OPERA uses 50") }
        guard threshold >= 0 else { throw AnalysisError.invalidParameter("--threshold must be ≥ 0 (got \(threshold)); OPERA uses 15") }
        guard minimumLocation >= 0 else { throw AnalysisError.invalidParameter("--minimum-location must be ≥ 0 (got \(minimumLocation)); OPERA uses 10") }
        self.window = window
        self.scale = scale
        self.threshold = threshold
        self.minimumLocation = minimumLocation
        self.rule = rule
        self.fp16Scores = fp16Scores
    }

    public func detect(_ map: AttentionMap) -> SummaryDetection {
        var detection = SummaryDetection(tokens: [], locations: [], maxScores: [])
        var products: [Float]? = nil
        var counts: [Int: Int] = [:]
        var run = 0
        var detected = Set<Int>()
        for i in 0..<map.count {
            let first = window.map { max(0, i + 1 - $0) } ?? 0
            let score = OperaColumnScore(parent: products, responseColumns: map.row(i), rowSum: map.rowTotal[i],
                                         scale: scale, fp16Scores: fp16Scores, firstColumn: first)
            products = score.products
            let location = score.argmax
            run = detection.locations.last == location ? run + 1 : 1
            detection.locations.append(location)
            detection.maxScores.append(score.maxScore)
            counts[location, default: 0] += 1
            let hits = rule == .historyCount ? counts[location]! : run
            if hits > threshold, location >= minimumLocation, detected.insert(location).inserted {
                detection.tokens.append(SummaryToken(column: location, step: i))
            }
        }
        return detection
    }
}
