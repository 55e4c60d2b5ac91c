import Foundation

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

/// A POPE answer as the chosen parser read it.
public enum PopeAnswer: String, Codable, Sendable, CaseIterable { case yes, no, unknown }

public struct PopeItemScore: Codable, Hashable, Sendable {
    public var label: PopeAnswer
    public var parsed: PopeAnswer
    public init(label: PopeAnswer, parsed: PopeAnswer) { self.label = label; self.parsed = parsed }
    public var isCorrect: Bool { label == parsed }
}

public enum ItemScore: Hashable, Sendable {
    case chair(ChairItemScore)
    case pope(PopeItemScore)
}
