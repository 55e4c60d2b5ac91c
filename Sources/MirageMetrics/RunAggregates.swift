import Foundation
import MirageData

/// Additive CHAIR counts (MirageMetrics' `ChairCounts`) over a set of captions; every run-level CHAIR figure
/// is a ratio of two of them, so a run, the images two runs share, or a bootstrap resample are all scored the
/// same way. Definitions follow OPERA's `chair.py` (see docs/store.md).
public typealias ChairTotals = ChairCounts

extension ChairCounts {
    /// The counts of one stored caption score.
    public init(_ score: ChairItemScore) {
        self.init()
        captions = 1
        hallucinatedMentions = score.hallucinatedCount
        hallucinatedCaptions = hallucinatedMentions > 0 ? 1 : 0
        mentions = score.mentions.count
        recalledObjects = score.recalled.count
        groundTruthObjects = Set(score.groundTruth).count
        distinctMentions = score.distinctMentioned.count
        words = score.wordCount
    }

    public static func + (a: ChairCounts, b: ChairCounts) -> ChairCounts {
        var r = a
        r.captions += b.captions
        r.hallucinatedCaptions += b.hallucinatedCaptions
        r.mentions += b.mentions
        r.hallucinatedMentions += b.hallucinatedMentions
        r.recalledObjects += b.recalledObjects
        r.groundTruthObjects += b.groundTruthObjects
        r.distinctMentions += b.distinctMentions
        r.words += b.words
        return r
    }

    public var chairS: Double { ratio(hallucinatedCaptions, captions) }
    public var chairI: Double { ratio(hallucinatedMentions, mentions) }
    public var recall: Double { ratio(recalledObjects, groundTruthObjects) }
    /// OPERA's Len: `0.01 * words / captions` (printed ×100, it reads as the mean word count).
    public var length: Double { captions == 0 ? .nan : 0.01 * Double(words) / Double(captions) }
    /// PAI's object precision: distinct correct objects / distinct mentioned objects, summed over captions.
    public var objectPrecision: Double { ratio(recalledObjects, distinctMentions) }
    public var objectF1: Double {
        let p = objectPrecision, r = recall
        return p + r > 0 ? 2 * p * r / (p + r) : .nan
    }

    /// CHAIR totals per image id of scored captions (repeated captions of one image are summed; failed and
    /// unscored items and items without an image are left out).
    public static func byImage(_ items: [(imageID: Int?, score: ItemScore?)]) -> [Int: ChairTotals] {
        var out: [Int: ChairTotals] = [:]
        for item in items {
            guard case .chair(let s)? = item.score, let image = item.imageID else { continue }
            out[image] = (out[image] ?? ChairTotals()) + ChairTotals(s)
        }
        return out
    }

    /// The values stored in `run_metrics` (fractions; NaN where undefined).
    public var stored: [String: Double] {
        ["chair_s": chairS, "chair_i": chairI, "recall": recall, "len": length,
         "object_precision": objectPrecision, "object_recall": recall, "object_f1": objectF1,
         "items": Double(captions)]
    }
}

extension POPEConfusion {
    public init(_ s: PopeItemScore) {
        self.init()
        add(label: s.label, prediction: s.parsed)
    }

    public static func + (a: POPEConfusion, b: POPEConfusion) -> POPEConfusion {
        var r = a
        r.truePositive += b.truePositive; r.falsePositive += b.falsePositive
        r.trueNegative += b.trueNegative; r.falseNegative += b.falseNegative
        r.unknownOnYes += b.unknownOnYes; r.unknownOnNo += b.unknownOnNo
        return r
    }
}

extension POPEMetrics {
    /// The values stored in `run_metrics` (fractions; NaN where undefined).
    public var stored: [String: Double] {
        ["accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1, "yes_ratio": yesRatio,
         "unknown": Double(confusion.unknownOnYes + confusion.unknownOnNo), "items": Double(count)]
    }
}

/// a / b, NaN when b is zero (shown as "n/a"; the references would divide by zero there).
@inline(__always) private func ratio(_ a: Int, _ b: Int) -> Double { b == 0 ? .nan : Double(a) / Double(b) }

/// Run-level metrics from item scores: what `run_metrics` stores for a run. Failed and unscored items are
/// left out of the ratios and counted as `failed_items`.
public enum RunMetrics {
    /// CHAIR over the scored captions of a run.
    public static func chair(_ scores: [ChairItemScore], failedItems: Int) -> [String: Double] {
        var out = scores.reduce(ChairTotals()) { $0 + ChairTotals($1) }.stored
        out["failed_items"] = Double(failedItems)
        return out
    }

    /// POPE over the scored answers of a run, read with the run's answer parser.
    public static func pope(_ scores: [PopeItemScore], parser: POPEAnswerParser, failedItems: Int) -> [String: Double] {
        var out = POPEMetrics(parser: parser, confusion: scores.reduce(POPEConfusion()) { $0 + POPEConfusion($1) }).stored
        out["failed_items"] = Double(failedItems)
        return out
    }
}
