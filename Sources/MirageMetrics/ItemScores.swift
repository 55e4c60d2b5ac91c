import Foundation
import MirageData

/// One object word a caption mentions, as CHAIR found it.
public struct ObjectMention: Codable, Hashable, Sendable {
    /// The word(s) as they appear after CHAIR's merging (e.g. "hot dog"), the COCO node word it maps to,
    /// its token position in the caption, and whether the node word is absent from the image's ground truth.
    public var word: String
    public var node: String
    public var position: Int
    public var hallucinated: Bool
    public init(word: String, node: String, position: Int, hallucinated: Bool) {
        self.word = word; self.node = node; self.position = position; self.hallucinated = hallucinated
    }
}

/// CHAIR's verdict on one caption: everything the run-level metrics need, kept per item so that runs can be
/// compared image by image (paired bootstrap).
public struct ChairItemScore: Codable, Hashable, Sendable {
    /// Mentions in caption order, duplicates kept (CHAIR_I counts them).
    public var mentions: [ObjectMention]
    /// The image's ground-truth node words.
    public var groundTruth: [String]
    /// Number of words after CHAIR's two-word merging, punctuation included (OPERA's Len).
    public var wordCount: Int

    public init(mentions: [ObjectMention], groundTruth: [String], wordCount: Int) {
        self.mentions = mentions; self.groundTruth = groundTruth; self.wordCount = wordCount
    }

    public var hallucinatedCount: Int { mentions.filter(\.hallucinated).count }
    /// Distinct mentioned node words that are in the ground truth.
    public var recalled: Set<String> { Set(mentions.filter { !$0.hallucinated }.map(\.node)) }
    public var distinctMentioned: Set<String> { Set(mentions.map(\.node)) }
}

/// A POPE answer: the question's label and the answer as the chosen parser read it.
public struct PopeItemScore: Codable, Hashable, Sendable {
    public var label: POPELabel
    public var parsed: POPEPrediction
    public init(label: POPELabel, parsed: POPEPrediction) { self.label = label; self.parsed = parsed }
    /// "unknown" is never correct.
    public var isCorrect: Bool { parsed.rawValue == label.rawValue }
}

public enum ItemScore: Hashable, Sendable {
    case chair(ChairItemScore)
    case pope(PopeItemScore)
}

extension ChairItemScore {
    /// The stored form of a CHAIR scorer result.
    public init(_ result: ChairCaptionResult) {
        self.init(mentions: result.mentions.map {
            ObjectMention(word: $0.word, node: $0.nodeWord, position: $0.tokenIndex, hallucinated: $0.hallucinated)
        }, groundTruth: result.groundTruth, wordCount: result.words.count)
    }
}
