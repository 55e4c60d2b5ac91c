import Foundation
import MirageData

/// A parsed yes/no answer.
public enum POPEPrediction: String, Sendable, Hashable, Codable {
    case yes, no, unknown
}

/// How free-text answers become yes/no. Selectable by name and recorded with every score.
public enum POPEAnswerParser: String, Sendable, Hashable, Codable, CaseIterable {
    /// OPERA's `pope_eval.py` `recorder`, applied to the whole answer: delete every "." and ",", split on
    /// single spaces; "no" if a token is exactly `No`, `not`, `no` or `NO`, or ends with `n't`; otherwise
    /// "yes" (empty or unrelated answers count as yes).
    case opera
    /// RUCAIBox/POPE `evaluate.py`: keep the text before the first "." (when there is one), delete ",",
    /// split on single spaces; "no" if a token is exactly `No`, `not` or `no`; otherwise "yes".
    case pope
    /// Explicit yes/no: the first run of letters in the answer, case-folded, must be `yes` or `no`;
    /// anything else (empty, "There is…", "Not sure") is `unknown` and counts as wrong.
    case strict

    public var summary: String {
        switch self {
        case .opera: return "whole answer; no if a token is No/not/no/NO or ends in n't (OPERA pope_eval.py)"
        case .pope: return "first sentence; no if a token is No/not/no (POPE evaluate.py)"
        case .strict: return "first word must be yes or no, otherwise unknown"
        }
    }

    public func parse(_ answer: String) -> POPEPrediction {
        switch self {
        case .opera:
            let cleaned = answer.replacingOccurrences(of: ".", with: "").replacingOccurrences(of: ",", with: "")
            let words = cleaned.split(separator: " ", omittingEmptySubsequences: false)
            let negative: Set<Substring> = ["No", "not", "no", "NO"]
            if words.contains(where: { negative.contains($0) || $0.hasSuffix("n't") }) { return .no }
            return .yes
        case .pope:
            var text = Substring(answer)
            if let dot = text.firstIndex(of: ".") { text = text[..<dot] }
            let cleaned = text.replacingOccurrences(of: ",", with: "")
            let words = cleaned.split(separator: " ", omittingEmptySubsequences: false)
            let negative: Set<Substring> = ["No", "not", "no"]
            return words.contains(where: { negative.contains($0) }) ? .no : .yes
        case .strict:
            guard let start = answer.firstIndex(where: { $0.isLetter }) else { return .unknown }
            let word = answer[start...].prefix { $0.isLetter }.lowercased()
            if word == "yes" { return .yes }
            if word == "no" { return .no }
            return .unknown
        }
    }
}

/// Confusion counts with positive = "yes".
public struct POPEConfusion: Sendable, Hashable, Codable {
    public var truePositive = 0, falsePositive = 0, trueNegative = 0, falseNegative = 0
    /// Unknown predictions on questions labelled yes / no (strict parser only).
    public var unknownOnYes = 0, unknownOnNo = 0

    public init() {}

    public var total: Int { truePositive + falsePositive + trueNegative + falseNegative + unknownOnYes + unknownOnNo }

    public mutating func add(label: POPELabel, prediction: POPEPrediction) {
        switch (label, prediction) {
        case (.yes, .yes): truePositive += 1
        case (.no, .yes): falsePositive += 1
        case (.no, .no): trueNegative += 1
        case (.yes, .no): falseNegative += 1
        case (.yes, .unknown): unknownOnYes += 1
        case (.no, .unknown): unknownOnNo += 1
        }
    }
}

/// POPE metrics for one split. Ratios whose denominator is zero are NaN ("undefined" when printed):
/// the reference divides without a guard and would raise ZeroDivisionError.
///
/// With unknowns (strict parser): accuracy = (TP+TN)/N, so unknowns are wrong; recall = TP/#labelled yes,
/// so an unknown on a yes question is a miss; precision = TP/(TP+FP) over answered-yes only;
/// yes-ratio = #predicted yes / N. Without unknowns these are exactly the reference formulas.
public struct POPEMetrics: Sendable, Hashable, Codable {
    public var parser: POPEAnswerParser
    public var confusion: POPEConfusion

    public init(parser: POPEAnswerParser, confusion: POPEConfusion) {
        self.parser = parser; self.confusion = confusion
    }

    public var count: Int { confusion.total }
    public var accuracy: Double { ratio(confusion.truePositive + confusion.trueNegative, count) }
    public var precision: Double { ratio(confusion.truePositive, confusion.truePositive + confusion.falsePositive) }
    public var recall: Double {
        ratio(confusion.truePositive, confusion.truePositive + confusion.falseNegative + confusion.unknownOnYes)
    }
    /// 2PR/(P+R); NaN when P or R is undefined or both are 0.
    public var f1: Double {
        let p = precision, r = recall
        return (p.isNaN || r.isNaN || p + r == 0) ? .nan : 2 * p * r / (p + r)
    }
    public var yesRatio: Double { ratio(confusion.truePositive + confusion.falsePositive, count) }
    public var unknownRate: Double { ratio(confusion.unknownOnYes + confusion.unknownOnNo, count) }

    func ratio(_ a: Int, _ b: Int) -> Double { b == 0 ? .nan : Double(a) / Double(b) }

    /// The papers' headline number: F1 averaged over the splits (NaN if any split's F1 is undefined).
    public static func averageF1(_ splits: [POPEMetrics]) -> Double {
        splits.isEmpty ? .nan : splits.map(\.f1).reduce(0, +) / Double(splits.count)
    }

    /// "undefined" for NaN, else the value in percent with `digits` decimals.
    public static func percent(_ v: Double, digits: Int = 1) -> String {
        v.isNaN ? "undefined" : String(format: "%.\(digits)f", v * 100)
    }
}

public enum POPEScoringError: Error, CustomStringConvertible {
    case countMismatch(questions: Int, answers: Int)

    public var description: String {
        switch self {
        case .countMismatch(let q, let a):
            return "\(a) answers for \(q) questions: answers are aligned with questions by order (as POPE's evaluate.py does), so both files must have the same number of lines"
        }
    }
}

public enum POPEScorer {
    /// Per-question predictions (aligned by order).
    public static func predictions(_ answers: [String], parser: POPEAnswerParser) -> [POPEPrediction] {
        answers.map(parser.parse)
    }

    /// Scores answers aligned by order with the questions.
    public static func score(questions: [POPEQuestion], answers: [String], parser: POPEAnswerParser) throws -> POPEMetrics {
        guard questions.count == answers.count else {
            throw POPEScoringError.countMismatch(questions: questions.count, answers: answers.count)
        }
        var c = POPEConfusion()
        for (q, a) in zip(questions, answers) { c.add(label: q.label, prediction: parser.parse(a)) }
        return POPEMetrics(parser: parser, confusion: c)
    }
}

/// McNemar's test for two systems answering the same questions.
///
/// Discordant pairs: b = questions A gets right and B wrong, c = the reverse (unknown counts as wrong).
/// - b + c < `exactThreshold` (25): exact two-sided binomial test, p = min(1, 2·P(X ≤ min(b, c))) with
///   X ~ Binomial(b + c, 1/2) (McNemar 1947, Psychometrika 12:153–157; exact form as in e.g.
///   statsmodels' `mcnemar(exact=True)`; the "< 25 discordant pairs" rule is the usual textbook advice,
///   e.g. Rosner, Fundamentals of Biostatistics, §10.4).
/// - otherwise: χ² = (|b − c| − 1)² / (b + c) with Edwards' (1948) continuity correction, 1 degree of
///   freedom, p = erfc(√(χ²/2)).
/// With b + c = 0 the systems never disagree: p = 1.
public struct McNemarTest: Sendable, Hashable, Codable {
    public enum Method: String, Sendable, Codable { case exactBinomial = "exact binomial", chiSquareCorrected = "chi-square (continuity-corrected)" }

    public var onlyFirstCorrect: Int
    public var onlySecondCorrect: Int
    public var method: Method
    /// The χ² statistic (nil for the exact test).
    public var statistic: Double?
    public var pValue: Double

    public static let exactThreshold = 25

    public init(onlyFirstCorrect b: Int, onlySecondCorrect c: Int) {
        onlyFirstCorrect = b
        onlySecondCorrect = c
        let n = b + c
        if n < Self.exactThreshold {
            method = .exactBinomial
            statistic = nil
            if n == 0 { pValue = 1; return }
            // P(X ≤ k) summed in log space for stability.
            let k = min(b, c)
            var tail = 0.0
            for i in 0...k { tail += exp(Self.logChoose(n, i) - Double(n) * log(2.0)) }
            pValue = min(1, 2 * tail)
        } else {
            method = .chiSquareCorrected
            let d = Double(abs(b - c)) - 1
            let chi2 = max(0, d) * max(0, d) / Double(n)
            statistic = chi2
            pValue = erfc((chi2 / 2).squareRoot())
        }
    }

    /// Compares two prediction lists on the same questions.
    public init(labels: [POPELabel], first: [POPEPrediction], second: [POPEPrediction]) throws {
        guard labels.count == first.count, labels.count == second.count else {
            throw POPEScoringError.countMismatch(questions: labels.count, answers: min(first.count, second.count))
        }
        var b = 0, c = 0
        for i in labels.indices {
            let truth: POPEPrediction = labels[i] == .yes ? .yes : .no
            let r1 = first[i] == truth, r2 = second[i] == truth
            if r1 && !r2 { b += 1 } else if !r1 && r2 { c += 1 }
        }
        self.init(onlyFirstCorrect: b, onlySecondCorrect: c)
    }

    static func logChoose(_ n: Int, _ k: Int) -> Double {
        lgamma(Double(n + 1)) - lgamma(Double(k + 1)) - lgamma(Double(n - k + 1))
    }
}
