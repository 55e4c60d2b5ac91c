import Foundation

/// Additive CHAIR sums over a set of captions; every run-level CHAIR figure is a ratio of two of them, so a
/// run, a subset of shared images, or a bootstrap resample are all scored the same way.
/// Definitions follow OPERA's `chair.py` (see docs/store.md): CHAIR_S = captions with a hallucination / N,
/// CHAIR_I = hallucinated mentions / mentions (duplicates counted), Recall = distinct correct node words /
/// ground-truth node words (micro), Len = mean word count after merging (punctuation included).
public struct ChairTotals: Hashable, Sendable {
    public var captions = 0
    public var captionsWithHallucination = 0
    public var mentions = 0
    public var hallucinatedMentions = 0
    public var recalledObjects = 0
    public var groundTruthObjects = 0
    public var distinctMentionedObjects = 0
    public var words = 0

    public init() {}

    public init(_ score: ChairItemScore) {
        captions = 1
        let hallucinated = score.hallucinatedCount
        captionsWithHallucination = hallucinated > 0 ? 1 : 0
        mentions = score.mentions.count
        hallucinatedMentions = hallucinated
        recalledObjects = score.recalled.count
        groundTruthObjects = Set(score.groundTruth).count
        distinctMentionedObjects = score.distinctMentioned.count
        words = score.wordCount
    }

    public static func + (a: ChairTotals, b: ChairTotals) -> ChairTotals {
        var r = a
        r.captions += b.captions
        r.captionsWithHallucination += b.captionsWithHallucination
        r.mentions += b.mentions
        r.hallucinatedMentions += b.hallucinatedMentions
        r.recalledObjects += b.recalledObjects
        r.groundTruthObjects += b.groundTruthObjects
        r.distinctMentionedObjects += b.distinctMentionedObjects
        r.words += b.words
        return r
    }

    public var chairS: Double { ratio(captionsWithHallucination, captions) }
    public var chairI: Double { ratio(hallucinatedMentions, mentions) }
    public var recall: Double { ratio(recalledObjects, groundTruthObjects) }
    /// Mean words per caption (OPERA prints `0.01 * mean` times 100, i.e. this value).
    public var length: Double { ratio(words, captions) }
    /// Object-level precision: distinct correct objects / distinct mentioned objects, summed over captions.
    public var objectPrecision: Double { ratio(recalledObjects, distinctMentionedObjects) }
    public var objectRecall: Double { recall }
    public var objectF1: Double {
        let p = objectPrecision, r = objectRecall
        return p + r > 0 ? 2 * p * r / (p + r) : .nan
    }

    public var metrics: [String: Double] {
        ["chair_s": chairS, "chair_i": chairI, "recall": recall, "len": length,
         "object_precision": objectPrecision, "object_recall": objectRecall, "object_f1": objectF1,
         "items": Double(captions)]
    }
}

/// Additive POPE confusion counts with positive = "yes". An answer the parser could not read ("unknown")
/// is wrong whatever the label: it counts as a false negative on a "yes" question and is neither TN nor FP
/// on a "no" question; it is not a "yes" for the yes-ratio.
public struct PopeCounts: Hashable, Sendable {
    public var truePositives = 0, falsePositives = 0, trueNegatives = 0, falseNegatives = 0
    public var unknownOnNo = 0
    public var unknown = 0

    public init() {}
    public init(_ s: PopeItemScore) {
        if s.parsed == .unknown { unknown = 1 }
        switch (s.label, s.parsed) {
        case (.yes, .yes): truePositives = 1
        case (.yes, _): falseNegatives = 1
        case (.no, .yes): falsePositives = 1
        case (.no, .no): trueNegatives = 1
        case (.no, .unknown): unknownOnNo = 1
        case (.unknown, _): break
        }
    }

    public static func + (a: PopeCounts, b: PopeCounts) -> PopeCounts {
        var r = a
        r.truePositives += b.truePositives; r.falsePositives += b.falsePositives
        r.trueNegatives += b.trueNegatives; r.falseNegatives += b.falseNegatives
        r.unknownOnNo += b.unknownOnNo; r.unknown += b.unknown
        return r
    }

    public var total: Int { truePositives + falsePositives + trueNegatives + falseNegatives + unknownOnNo }
    public var accuracy: Double { ratio(truePositives + trueNegatives, total) }
    public var precision: Double { ratio(truePositives, truePositives + falsePositives) }
    public var recall: Double { ratio(truePositives, truePositives + falseNegatives) }
    public var f1: Double {
        let p = precision, r = recall
        return p + r > 0 ? 2 * p * r / (p + r) : .nan
    }
    public var yesRatio: Double { ratio(truePositives + falsePositives, total) }

    public var metrics: [String: Double] {
        ["accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1, "yes_ratio": yesRatio,
         "unknown": Double(unknown), "items": Double(total)]
    }
}

/// a / b, NaN when b is zero (shown as "n/a"; the references would divide by zero there).
@inline(__always) func ratio(_ a: Int, _ b: Int) -> Double { b == 0 ? .nan : Double(a) / Double(b) }
