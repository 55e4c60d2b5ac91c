import Foundation
import MirageMetrics
import Testing
@testable import MirageAnalysis
import MirageStore
import MirageText

@Suite struct OvertrustAnalysisTests {
    /// Four responses with known groups (worked out by hand in the comments).
    @Test func groupsSubSentencesBySummaryTokensBefore() {
        let items = [
            // A: sentences at 0, 10, 20; summary columns 5 (step 20) and 15 (step 30).
            // S0: k=0, token 2 ok. S1: k=1 (5), token 12 hallucinated. S2: k=2 (5, 15), 22 hallucinated + 25 ok.
            // First hallucinated word at 12; no detection before step 12.
            OvertrustItem(key: "A", sentenceStarts: [0, 10, 20],
                          mentions: [.init(word: "dog", hallucinated: false, token: 2), .init(word: "cat", hallucinated: true, token: 12),
                                     .init(word: "bus", hallucinated: true, token: 22), .init(word: "car", hallucinated: false, token: 25)],
                          summary: [SummaryToken(column: 5, step: 20), SummaryToken(column: 15, step: 30)]),
            // B: S0 k=0 no mention; S1 (8) k=1 (3), token 9 hallucinated; detected at step 6 < 9.
            OvertrustItem(key: "B", sentenceStarts: [0, 8], mentions: [.init(word: "cup", hallucinated: true, token: 9)],
                          summary: [SummaryToken(column: 3, step: 6)]),
            // C: one sentence, k=0, one correct mention, no summary token.
            OvertrustItem(key: "C", sentenceStarts: [0], mentions: [.init(word: "man", hallucinated: false, token: 1)], summary: []),
            // D: clean, S1 (5) k=1 (2), correct mention at 6; over-trust shown.
            OvertrustItem(key: "D", sentenceStarts: [0, 5], mentions: [.init(word: "tie", hallucinated: false, token: 6)],
                          summary: [SummaryToken(column: 2, step: 4)]),
        ]
        let r = OvertrustAnalysis.analyze(items)
        #expect(r.groups.map(\.summaryTokens) == [0, 1, 2])
        #expect(r.groups.map(\.subSentences) == [4, 3, 1])
        #expect(r.groups.map(\.hallucinatedSubSentences) == [0, 2, 1])
        #expect(r.groups.map(\.mentions) == [2, 3, 2])
        #expect(r.groups.map(\.hallucinatedMentions) == [0, 2, 1])
        #expect(r.groups.map(\.chairS) == [0, 2.0 / 3.0, 1])
        #expect(r.groups.map(\.chairI) == [0, 2.0 / 3.0, 0.5])
        #expect(r.responses == 4 && r.hallucinatedResponses == 2 && r.cleanResponses == 2)
        #expect(r.hallucinatedWithOvertrustBefore == 1 && r.hallucinatedWithOvertrust == 2 && r.cleanWithOvertrust == 1)
        #expect(r.shareHallucinatedBefore == 0.5 && r.shareHallucinated == 1 && r.shareClean == 0.5)
    }

    @Test func alignerMapsChairTokensAndSentencesToResponseTokens() throws {
        // Response pieces with a leading space (stripped in the stored caption) and an EOS adding no text.
        let pieces = [" A", " dog", " sits", ".", " A", " \"cat\"", " runs", ".", ""]
        let map = try AttentionMap(tokens: Array(0..<9), pieces: pieces, imageMass: Array(repeating: 0, count: 9),
                                   promptMass: Array(repeating: 0, count: 9), rowTotal: Array(repeating: 1, count: 9),
                                   response: Array(repeating: 0, count: 45))
        let caption = "A dog sits. A \"cat\" runs."
        let aligner = CaptionAligner(tokenizer: WordTokenizer(punkt: PunktParameters()))
        // word_tokenize: a dog sits . a `` cat '' runs .  → dog = 1, cat = 6
        #expect(aligner.tokenizer.tokenizeLowercased(caption) == ["a", "dog", "sits", ".", "a", "``", "cat", "''", "runs", "."])
        let item = aligner.item(key: "1", caption: caption,
                                mentions: [ObjectMention(word: "dog", node: "dog", position: 1, hallucinated: false),
                                           ObjectMention(word: "cat", node: "cat", position: 6, hallucinated: true),
                                           ObjectMention(word: "cow", node: "cow", position: 40, hallucinated: true)],
                                map: map, summary: [])
        #expect(item.sentenceStarts == [0, 4])
        #expect(item.mentions == [LocatedMention(word: "dog", hallucinated: false, token: 1, captionRange: 2..<5),
                                  LocatedMention(word: "cat", hallucinated: true, token: 5, captionRange: 15..<18)])
        #expect(item.unmappedMentions == 1 && item.hallucinated)
    }

    /// Captions and attention maps together: 40 tokens, two sentences (tokens 0–19 and 20–39), summary
    /// column 12 (detected at step 27). Sentence 1 has 0 summary tokens before it and a hallucinated "dog";
    /// sentence 2 has 1 and holds a hallucinated "bird" and a correct "cat".
    @Test func endToEndOnHandMadeMapAndCaption() throws {
        var map = try oneSummaryColumn()
        map.pieces = (0..<40).map { i in
            let word = i == 19 ? "dog." : i == 25 ? "bird" : i == 39 ? "cat." : "w\(i)"
            return i == 0 ? word : " " + word
        }
        let caption = map.text
        let words = WordTokenizer(punkt: PunktParameters()).tokenizeLowercased(caption)
        let dog = words.firstIndex(of: "dog")!, bird = words.firstIndex(of: "bird")!, cat = words.firstIndex(of: "cat")!
        #expect((dog, bird, cat) == (19, 26, 40))
        let detection = try SummaryTokenDetector().detect(map)
        let item = CaptionAligner(tokenizer: WordTokenizer(punkt: PunktParameters())).item(
            key: "x", caption: caption,
            mentions: [ObjectMention(word: "dog", node: "dog", position: dog, hallucinated: true),
                       ObjectMention(word: "bird", node: "bird", position: bird, hallucinated: true),
                       ObjectMention(word: "cat", node: "cat", position: cat, hallucinated: false)],
            map: map, summary: detection.tokens)
        #expect(item.sentenceStarts == [0, 20])
        #expect(item.mentions.map(\.token) == [19, 25, 39])
        let r = OvertrustAnalysis.analyze([item])
        #expect(r.groups.map(\.summaryTokens) == [0, 1])
        #expect(r.groups.map(\.chairS) == [1, 1])
        #expect(r.groups.map(\.chairI) == [1, 0.5])
        #expect(r.hallucinatedWithOvertrustBefore == 0 && r.hallucinatedWithOvertrust == 1)   // step 27 > token 19
    }
}
