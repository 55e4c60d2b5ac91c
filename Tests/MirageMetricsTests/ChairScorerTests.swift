import Foundation
import Testing
import MirageMetrics
import MirageText

@Suite struct ChairScorerTests {
    let vocabulary = try! ChairVocabulary(synonymsText: miniSynonyms)
    let truth = ChairGroundTruth(objectsByImage: [1: ["person", "dog"], 2: ["train"], 3: []])

    func scorer(_ options: ChairOptions = ChairOptions(), threads: Int = 2) -> ChairScorer {
        ChairScorer(vocabulary: vocabulary, groundTruth: truth,
                    analyzer: TableAnalyzer(lemmas: ["men": "man", "puppies": "puppy", "dogs": "dog"]),
                    options: options, threads: threads)
    }

    @Test func perCaptionDetail() throws {
        let r = try scorer().score(ChairCaption(imageId: 1, caption: "Two men and puppies near a jet ."))
        #expect(r.analysis.tokens == ["two", "men", "and", "puppies", "near", "a", "jet", "."])
        #expect(r.words == ["two", "man", "and", "puppy", "near", "a", "jet", "."])
        #expect(r.generated == ["person", "dog", "airplane"])
        #expect(r.hallucinated.map(\.nodeWord) == ["airplane"])
        #expect(r.hallucinated.map(\.tokenIndex) == [6])
        #expect(r.mentions.map(\.word) == ["man", "puppy", "jet"])
        #expect(r.groundTruth == ["dog", "person"])
        #expect(r.metrics.chairS == 1)
        #expect(r.metrics.chairI == 1.0 / 3.0)
        #expect(r.metrics.recall == 1.0)
        #expect(r.metrics.precision == 2.0 / 3.0)
        #expect(abs(r.metrics.f1 - 0.8) < 1e-15)
    }

    /// Hand-derived run metrics over three captions.
    @Test(arguments: [1, 2])
    func runMetrics(threads: Int) throws {
        let captions = [
            ChairCaption(imageId: 1, caption: "a dog and a dog ."),          // M=2 H=0 R={dog} words 6
            ChairCaption(imageId: 2, caption: "a passenger train and a man"),  // M=2 H=1 R={train} words 5
            ChairCaption(imageId: 3, caption: "nothing here"),                 // M=0 GT=0 words 2
        ]
        let run = try scorer(threads: threads).score(captions)
        let m = run.metrics
        #expect(run.captions.map(\.imageId) == [1, 2, 3])
        #expect(m.counts.captions == 3)
        #expect(m.counts.mentions == 4)
        #expect(m.counts.hallucinatedMentions == 1)
        #expect(m.counts.groundTruthObjects == 3)
        #expect(m.counts.recalledObjects == 2)
        #expect(m.counts.distinctMentions == 3)
        #expect(m.counts.words == 13)
        #expect(m.chairS == 1.0 / 3.0)
        #expect(m.chairI == 0.25)
        #expect(m.recall == 2.0 / 3.0)
        #expect(m.len == 0.01 * 13.0 / 3.0)
        #expect(m.objectPrecision == 2.0 / 3.0)
        #expect(abs(m.objectF1 - 2.0 / 3.0) < 1e-15)
        #expect(m.referenceReport == "CHAIRs    : 33.3\nCHAIRi    : 25.0\nRecall    : 66.7\nLen       : 4.3")
    }

    @Test func parallelAndSerialAgreeOnALargeRun() throws {
        let captions = (0..<301).map { ChairCaption(imageId: 1 + $0 % 3, caption: "dog \($0) man jet train") }
        #expect(try scorer(threads: 1).score(captions) == scorer(threads: 2).score(captions))
    }

    @Test func truncateIncomplete() throws {
        let options = ChairOptions(truncateIncomplete: true)
        #expect(options.scoredText("A dog. A man on a") == "A dog.")
        #expect(options.scoredText("A dog.") == "A dog.")
        #expect(options.scoredText("A dog. ") == "A dog.")
        #expect(options.scoredText("no period at all") == "")
        #expect(ChairOptions().scoredText("A dog. A man on a") == "A dog. A man on a")
        let r = try scorer(options).score(ChairCaption(imageId: 2, caption: "a train . a dog"))
        #expect(r.scoredText == "a train .")
        #expect(r.generated == ["train"])
        #expect(r.metrics.chairS == 0)
        let empty = try scorer(options).score(ChairCaption(imageId: 2, caption: "a dog"))
        #expect(empty.words.isEmpty && empty.mentions.isEmpty)
    }

    @Test func unknownImageIsATypedErrorNamingTheId() {
        let captions = [ChairCaption(imageId: 1, caption: "dog"), ChairCaption(imageId: 424242, caption: "dog")]
        #expect(throws: ChairError.unknownImage(imageId: 424242, captionIndex: 1)) {
            try scorer().score(captions)
        }
        #expect(ChairError.unknownImage(imageId: 424242, captionIndex: 1).description.contains("424242"))
        #expect(throws: ChairError.unknownImage(imageId: 7, captionIndex: nil)) {
            try scorer().score(ChairCaption(imageId: 7, caption: "dog"))
        }
    }

    @Test func unknownImageScoredLikeTheReferenceWhenAllowed() throws {
        let run = try scorer(ChairOptions(allowUnknownImages: true))
            .score([ChairCaption(imageId: 99, caption: "a dog and a man")])
        #expect(run.captions[0].hallucinated.map(\.nodeWord) == ["dog", "person"])
        #expect(run.captions[0].groundTruth.isEmpty)
        #expect(run.metrics.chairS == 1)
        #expect(run.metrics.recall.isNaN)  // no ground-truth object at all: the reference divides by zero
    }

    @Test func emptyRunIsAnError() {
        #expect(throws: ChairError.noCaptions) { try scorer().score([]) }
    }

    @Test func percentFormatting() {
        #expect(ChairMetrics.percent(0.446) == "44.6")
        #expect(ChairMetrics.percent(0.12701888858472488) == "12.7")
        #expect(ChairMetrics.percent(0.92714) == "92.7")
        #expect(ChairMetrics.percent(Double.nan) == "nan")
    }

    @Test func groundTruthJSON() throws {
        let gt = try ChairGroundTruth(prebuiltJSONData: Data(#"{"9":["bowl","orange"],"25":[]}"#.utf8), source: "t")
        #expect(gt.objects(for: 9) == ["bowl", "orange"])
        #expect(gt.objects(for: 25) == [])
        #expect(gt.objects(for: 1) == nil)
        #expect(String(decoding: gt.prebuiltJSONData(), as: UTF8.self) == #"{"9":["bowl","orange"],"25":[]}"#)
        for bad in [#"{"9": ["bowl""#, #"[1, 2]"#, #"{"x": []}"#, #"{"9": [1]}"#] {
            #expect(throws: ChairError.self) { try ChairGroundTruth(prebuiltJSONData: Data(bad.utf8), source: "t") }
        }
    }
}
