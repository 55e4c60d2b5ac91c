import Foundation
import MirageData
import MirageMetrics

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
    /// OPERA's Len: `0.01 * words / captions` (printed ×100, it reads as the mean word count).
    public var length: Double { captions == 0 ? .nan : 0.01 * Double(words) / Double(captions) }
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

extension POPEConfusion {
    init(_ s: PopeItemScore) {
        self.init()
        add(label: s.label, prediction: s.parsed)
    }

    static func + (a: POPEConfusion, b: POPEConfusion) -> POPEConfusion {
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
@inline(__always) func ratio(_ a: Int, _ b: Int) -> Double { b == 0 ? .nan : Double(a) / Double(b) }
