import Foundation
import MirageMetrics
import MirageStore
import MirageText

/// An object mention located in the response: the response token it starts in.
public struct LocatedMention: Codable, Sendable, Equatable {
    public var word: String
    public var hallucinated: Bool
    /// Response token index of the mention's first character.
    public var token: Int
    /// The mention's characters in the caption (Unicode scalar offsets), when known.
    public var captionRange: Range<Int>?
    public init(word: String, hallucinated: Bool, token: Int, captionRange: Range<Int>? = nil) {
        self.word = word; self.hallucinated = hallucinated; self.token = token; self.captionRange = captionRange
    }
}

/// One response ready for the analysis: its sub-sentences and mentions in response-token coordinates, and
/// the summary tokens detected on its attention map.
public struct OvertrustItem: Codable, Sendable, Equatable {
    public var key: String
    /// First response token of every sub-sentence, in order.
    public var sentenceStarts: [Int]
    /// CHAIR's mentions, in caption order.
    public var mentions: [LocatedMention]
    /// Mentions whose CHAIR token could not be found in the response text (left out of every count).
    public var unmappedMentions: Int
    /// Whether CHAIR found any hallucinated mention (mapped or not).
    public var hallucinated: Bool
    public var summary: [SummaryToken]

    public init(key: String, sentenceStarts: [Int], mentions: [LocatedMention], unmappedMentions: Int = 0,
                hallucinated: Bool? = nil, summary: [SummaryToken]) {
        self.key = key
        self.sentenceStarts = sentenceStarts
        self.mentions = mentions
        self.unmappedMentions = unmappedMentions
        self.hallucinated = hallucinated ?? mentions.contains(where: \.hallucinated)
        self.summary = summary
    }
}

/// Sub-sentences with the same number of summary tokens before them (the paper's Figure 2 b/c).
public struct OvertrustGroup: Codable, Sendable, Equatable {
    public var summaryTokens: Int
    public var subSentences = 0
    public var hallucinatedSubSentences = 0
    public var mentions = 0
    public var hallucinatedMentions = 0
    /// Sub-sentences with ≥ 1 hallucinated mention / sub-sentences.
    public var chairS: Double { subSentences == 0 ? .nan : Double(hallucinatedSubSentences) / Double(subSentences) }
    /// Hallucinated mentions / mentions (NaN without mentions).
    public var chairI: Double { mentions == 0 ? .nan : Double(hallucinatedMentions) / Double(mentions) }

    private enum CodingKeys: String, CodingKey {
        case summaryTokens, subSentences, hallucinatedSubSentences, mentions, hallucinatedMentions, chairS, chairI
    }
    public init(summaryTokens: Int) { self.summaryTokens = summaryTokens }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        summaryTokens = try c.decode(Int.self, forKey: .summaryTokens)
        subSentences = try c.decode(Int.self, forKey: .subSentences)
        hallucinatedSubSentences = try c.decode(Int.self, forKey: .hallucinatedSubSentences)
        mentions = try c.decode(Int.self, forKey: .mentions)
        hallucinatedMentions = try c.decode(Int.self, forKey: .hallucinatedMentions)
    }
    /// Writes the counts and the two ratios (`chairS`, `chairI`).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(summaryTokens, forKey: .summaryTokens)
        try c.encode(subSentences, forKey: .subSentences)
        try c.encode(hallucinatedSubSentences, forKey: .hallucinatedSubSentences)
        try c.encode(mentions, forKey: .mentions)
        try c.encode(hallucinatedMentions, forKey: .hallucinatedMentions)
        try c.encode(chairS, forKey: .chairS)
        try c.encode(chairI, forKey: .chairI)
    }
}

/// The analysis of one run.
public struct OvertrustReport: Codable, Sendable, Equatable {
    /// Groups by summary-token count, ascending; counts with no sub-sentence are absent.
    public var groups: [OvertrustGroup] = []
    public var responses = 0
    public var hallucinatedResponses = 0
    /// Hallucinated responses with a summary token detected (trigger step) before their first hallucinated word.
    public var hallucinatedWithOvertrustBefore = 0
    /// Hallucinated responses with a summary token detected anywhere.
    public var hallucinatedWithOvertrust = 0
    public var cleanResponses = 0
    /// Responses without hallucination with a summary token detected anywhere.
    public var cleanWithOvertrust = 0
    /// Hallucinated responses whose hallucinated mentions could not be located (not in the "before" share).
    public var hallucinatedUnlocated = 0
    public var unmappedMentions = 0

    public var shareHallucinatedBefore: Double { ratio(hallucinatedWithOvertrustBefore, hallucinatedResponses - hallucinatedUnlocated) }
    public var shareHallucinated: Double { ratio(hallucinatedWithOvertrust, hallucinatedResponses) }
    public var shareClean: Double { ratio(cleanWithOvertrust, cleanResponses) }
    private func ratio(_ a: Int, _ b: Int) -> Double { b == 0 ? .nan : Double(a) / Double(b) }
}

/// OPERA's over-trust analysis (docs/overtrust.md):
/// (a) every sub-sentence is assigned the number of summary tokens located before its first token, and
/// CHAIR_S / CHAIR_I are computed per count; (b) the share of hallucinated responses whose attention showed a
/// summary token before the first hallucinated word, against the share of clean responses that show one at all.
public enum OvertrustAnalysis {
    public static func analyze(_ items: [OvertrustItem]) -> OvertrustReport {
        var report = OvertrustReport()
        var groups: [Int: OvertrustGroup] = [:]
        for item in items {
            let columns = item.summary.map(\.column)
            for (s, start) in item.sentenceStarts.enumerated() {
                let end = s + 1 < item.sentenceStarts.count ? item.sentenceStarts[s + 1] : Int.max
                let k = columns.filter { $0 < start }.count
                var g = groups[k] ?? OvertrustGroup(summaryTokens: k)
                let inside = item.mentions.filter { $0.token >= start && $0.token < end }
                let bad = inside.filter(\.hallucinated).count
                g.subSentences += 1
                g.mentions += inside.count
                g.hallucinatedMentions += bad
                if bad > 0 { g.hallucinatedSubSentences += 1 }
                groups[k] = g
            }
            report.responses += 1
            report.unmappedMentions += item.unmappedMentions
            if item.hallucinated {
                report.hallucinatedResponses += 1
                if !item.summary.isEmpty { report.hallucinatedWithOvertrust += 1 }
                if let first = item.mentions.first(where: \.hallucinated)?.token {
                    if item.summary.contains(where: { $0.step < first }) { report.hallucinatedWithOvertrustBefore += 1 }
                } else {
                    report.hallucinatedUnlocated += 1
                }
            } else {
                report.cleanResponses += 1
                if !item.summary.isEmpty { report.cleanWithOvertrust += 1 }
            }
        }
        report.groups = groups.keys.sorted().map { groups[$0]! }
        return report
    }
}

/// Puts a caption's CHAIR mentions and sentences into response-token coordinates.
///
/// CHAIR's mention positions index `word_tokenize(caption.lower())`. The word tokens are found in the
/// lower-cased caption left to right (Treebank's `` and '' stand for a `"`), giving each a character
/// offset; the caption is found in the response text (`AttentionMap.text`, the decoded tokens), and the
/// token whose piece covers that character is the mention's token. Sub-sentences are Punkt's sentences of
/// the lower-cased caption (the split CHAIR's tokenizer makes), each starting at the token of its first
/// character.
public struct CaptionAligner: Sendable {
    public let tokenizer: WordTokenizer
    public init(tokenizer: WordTokenizer) { self.tokenizer = tokenizer }

    /// Each mention's characters in the caption (Unicode scalar offsets), nil where its word token was not
    /// found; a merged mention ("hot dog") spans as many word tokens as it has words.
    public func mentionRanges(caption: String, mentions: [ObjectMention]) -> [Range<Int>?] {
        mentionRanges(caption: caption, lowercased: tokenizer.lowercasedSentenceSpans(caption).scalars, mentions: mentions)
    }

    private func mentionRanges(caption: String, lowercased: [Unicode.Scalar], mentions: [ObjectMention]) -> [Range<Int>?] {
        let words = tokenizer.tokenizeLowercased(caption)
        let offsets = Self.offsets(of: words, in: lowercased)
        return mentions.map { m in
            guard m.position < words.count, let start = offsets[m.position] else { return nil }
            let last = min(words.count - 1, m.position + max(0, m.word.split(separator: " ").count - 1))
            guard let end = offsets[last] else { return start..<(start + words[m.position].unicodeScalars.count) }
            return start..<max(start, end + words[last].unicodeScalars.count)
        }
    }

    public func item(key: String, caption: String, mentions: [ObjectMention], map: AttentionMap,
                     summary: [SummaryToken]) -> OvertrustItem {
        let (lower, sentences) = tokenizer.lowercasedSentenceSpans(caption)
        let ranges = mentionRanges(caption: caption, lowercased: lower, mentions: mentions)
        // Where the caption sits in the response text (the stored caption may be stripped).
        let text = Array(map.text.lowercased().unicodeScalars)
        let base = Self.find(lower, in: text, from: 0) ?? Self.find(Array(caption.unicodeScalars), in: Array(map.text.unicodeScalars), from: 0)
        let tokenStarts = map.scalarOffsets
        func token(at offset: Int?) -> Int? {
            guard let offset, let base else { return nil }
            let o = base + offset
            // The token whose piece covers character o, moved back over tokens that add no text of their own
            // (the bytes of a character are held back until the token that completes it).
            guard var t = (0..<map.count).first(where: { tokenStarts[$0 + 1] > o }) else { return nil }
            while t > 0, map.pieces[t - 1].isEmpty { t -= 1 }
            return t
        }
        var located: [LocatedMention] = []
        var unmapped = 0
        for (m, range) in zip(mentions, ranges) {
            if let t = token(at: range?.lowerBound) {
                located.append(LocatedMention(word: m.node, hallucinated: m.hallucinated, token: t, captionRange: range))
            } else {
                unmapped += 1
            }
        }
        var starts: [Int] = []
        for span in sentences where !span.isEmpty {
            var s = span.lowerBound
            while s < span.upperBound, lower[s].properties.isWhitespace { s += 1 }
            if let t = token(at: s), starts.last.map({ t > $0 }) ?? true { starts.append(t) }
        }
        return OvertrustItem(key: key, sentenceStarts: starts, mentions: located, unmappedMentions: unmapped,
                             hallucinated: mentions.contains(where: \.hallucinated), summary: summary)
    }

    /// Scalar offset of every word token in `text`, searched left to right (nil where not found).
    static func offsets(of words: [String], in text: [Unicode.Scalar]) -> [Int?] {
        var cursor = 0
        return words.map { word in
            var options = [Array(word.unicodeScalars)]
            if word == "``" || word == "''" { options.insert(["\""], at: 0) }
            let hits = options.compactMap { o in find(o, in: text, from: cursor).map { (at: $0, length: o.count) } }
            guard let hit = hits.min(by: { $0.at < $1.at }) else { return nil }
            cursor = hit.at + hit.length
            return hit.at
        }
    }

    static func find(_ needle: [Unicode.Scalar], in haystack: [Unicode.Scalar], from start: Int) -> Int? {
        guard !needle.isEmpty, needle.count <= haystack.count - start else { return needle.isEmpty ? start : nil }
        var i = start
        while i + needle.count <= haystack.count {
            if haystack[i] == needle[0] && haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}

/// Reads a stored run's attention maps and CHAIR scores and prepares its `OvertrustItem`s.
public struct OvertrustRunAnalyzer: Sendable {
    public var detector: SummaryTokenDetector
    public var aligner: CaptionAligner

    public init(detector: SummaryTokenDetector, aligner: CaptionAligner) {
        self.detector = detector
        self.aligner = aligner
    }

    /// The run's items that have both recorded attention and a CHAIR score, in item order, and how many items
    /// with attention had no CHAIR score.
    public func items(store: any RunRepository, run: Int64) throws -> (items: [OvertrustItem], unscored: Int) {
        let keys = Set(try store.itemsWithAttention(run: run))
        var items: [OvertrustItem] = [], unscored = 0
        for stored in try store.items(run: run) where keys.contains(stored.item.key) {
            guard case let .chair(score)? = stored.score else { unscored += 1; continue }
            guard let record = try store.attention(run: run, itemKey: stored.item.key) else { continue }
            let map = try AttentionMap(record)
            items.append(aligner.item(key: stored.item.key, caption: stored.item.outputText, mentions: score.mentions,
                                      map: map, summary: detector.detect(map).tokens))
        }
        return (items, unscored)
    }
}
