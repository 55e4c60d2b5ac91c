import Foundation
import Testing
import MirageData
@testable import MirageMetrics

@Suite struct POPEScoringTests {
    /// Ten hand-made questions and answers; every expected value below was computed by hand.
    static let labels: [POPELabel] = [.yes, .no, .yes, .no, .yes, .no, .yes, .no, .yes, .no]
    static let answerFile = #"""
    {"question_id": 1, "answer": "Yes, there is a dog in the image."}
    {"question_id": 2, "answer": "No, there is no cat."}
    {"question_id": 3, "answer": "There isn't a car."}
    {"question_id": 4, "answer": "NO"}
    {"question_id": 5, "answer": "Yes. But there is no bench."}
    {"question_id": 6, "answer": "Yes"}
    {"question_id": 7, "answer": ""}
    {"question_id": 8, "answer": "No\nthere is a cat"}
    {"question_id": 9, "answer": "yes"}
    {"question_id": 10, "text": "Not at all."}
    """#

    static func questions() -> [POPEQuestion] {
        labels.enumerated().map { POPEQuestion(questionID: $0.offset + 1, image: "x.jpg", text: "q", label: $0.element) }
    }

    static func answers() throws -> [String] {
        try POPEAnswerReader.parse(Data(answerFile.utf8)).map(\.answer)
    }

    @Test func answerFileParses() throws {
        let a = try POPEAnswerReader.parse(Data(Self.answerFile.utf8))
        #expect(a.count == 10)
        #expect(a[7].answer == "No\nthere is a cat")
        #expect(a.map(\.questionID) == Array(1...10))
    }

    @Test func operaParserMetrics() throws {
        let m = try POPEScorer.score(questions: Self.questions(), answers: Self.answers(), parser: .opera)
        #expect(POPEScorer.predictions(try Self.answers(), parser: .opera)
                == [.yes, .no, .no, .no, .no, .yes, .yes, .yes, .yes, .yes])
        #expect(m.confusion.truePositive == 3 && m.confusion.falseNegative == 2)
        #expect(m.confusion.trueNegative == 2 && m.confusion.falsePositive == 3)
        #expect(m.accuracy == 0.5)
        #expect(m.precision == 0.5)
        #expect(m.recall == 0.6)
        #expect(abs(m.f1 - 6.0 / 11.0) < 1e-12)
        #expect(m.yesRatio == 0.6)
        #expect(m.unknownRate == 0)
    }

    @Test func averageF1OverSplits() throws {
        let opera = try POPEScorer.score(questions: Self.questions(), answers: Self.answers(), parser: .opera)
        let pope = try POPEScorer.score(questions: Self.questions(), answers: Self.answers(), parser: .pope)
        #expect(abs(POPEMetrics.averageF1([opera, pope]) - (6.0 / 11.0 + 10.0 / 14.0) / 2) < 1e-12)
        #expect(POPEMetrics.percent(0.71428, digits: 1) == "71.4")
    }

    @Test func popeParserMetrics() throws {
        let m = try POPEScorer.score(questions: Self.questions(), answers: Self.answers(), parser: .pope)
        #expect(POPEScorer.predictions(try Self.answers(), parser: .pope)
                == [.yes, .no, .yes, .yes, .yes, .yes, .yes, .yes, .yes, .yes])
        #expect(m.accuracy == 0.6)
        #expect(abs(m.precision - 5.0 / 9.0) < 1e-12)
        #expect(m.recall == 1)
        #expect(abs(m.f1 - 10.0 / 14.0) < 1e-12)
        #expect(m.yesRatio == 0.9)
    }

    @Test func strictParserMetrics() throws {
        let m = try POPEScorer.score(questions: Self.questions(), answers: Self.answers(), parser: .strict)
        #expect(POPEScorer.predictions(try Self.answers(), parser: .strict)
                == [.yes, .no, .unknown, .no, .yes, .yes, .unknown, .no, .yes, .unknown])
        #expect(m.confusion.unknownOnYes == 2 && m.confusion.unknownOnNo == 1)
        #expect(m.accuracy == 0.6)
        #expect(m.precision == 0.75)
        #expect(m.recall == 0.6)
        #expect(abs(m.f1 - 2.0 / 3.0) < 1e-12)
        #expect(m.yesRatio == 0.4)
        #expect(abs(m.unknownRate - 0.3) < 1e-12)
    }

    /// Each rule where the parsers disagree, isolated.
    @Test func parsersDifferExactlyWhereTheirRulesDiffer() {
        func all(_ s: String) -> [POPEPrediction] { POPEAnswerParser.allCases.map { $0.parse(s) } }  // opera, pope, strict
        #expect(all("NO") == [.no, .yes, .no])                              // NO: only OPERA's list has it
        #expect(all("It isn't there") == [.no, .yes, .unknown])              // n't suffix: OPERA only
        #expect(all("Yes. There is no cat") == [.no, .yes, .yes])            // POPE reads the first sentence only
        #expect(all("Yes, but not in front") == [.no, .no, .yes])            // strict reads the first word only
        #expect(all("No\nthere is one") == [.yes, .yes, .no])                // token glued to a newline
        #expect(all("Not really") == [.yes, .yes, .unknown])                 // capital "Not" is in no list
        #expect(all("") == [.yes, .yes, .unknown])                          // empty answer
        #expect(all("no!") == [.yes, .yes, .no])                             // punctuation other than . and ,
        #expect(all("No, there is not.") == [.no, .no, .no])
        #expect(all("Yes, there is a dog.") == [.yes, .yes, .yes])
    }

    @Test func undefinedRatiosAreNaN() throws {
        let q = [POPEQuestion(questionID: 1, image: "a", text: "t", label: .no)]
        let m = try POPEScorer.score(questions: q, answers: ["No"], parser: .opera)
        #expect(m.precision.isNaN)    // no yes predictions
        #expect(m.recall.isNaN)       // no yes labels
        #expect(m.f1.isNaN)
        #expect(m.accuracy == 1)
        #expect(POPEMetrics.percent(m.f1) == "undefined")
        #expect(POPEMetrics.averageF1([m]).isNaN && POPEMetrics.averageF1([]).isNaN)
        let empty = POPEMetrics(parser: .opera, confusion: POPEConfusion())
        #expect(empty.accuracy.isNaN && empty.yesRatio.isNaN)
        #expect(throws: POPEScoringError.self) { try POPEScorer.score(questions: q, answers: [], parser: .opera) }
    }

    @Test func mcnemarExactAndChiSquare() throws {
        // n = 13 < 25: p = 2 * (C(13,0)+C(13,1)+C(13,2)+C(13,3)) / 2^13 = 2 * 378 / 8192.
        let exact = McNemarTest(onlyFirstCorrect: 3, onlySecondCorrect: 10)
        #expect(exact.method == .exactBinomial)
        #expect(abs(exact.pValue - 0.09228515625) < 1e-12)
        // n = 24: p = 2 * sum_{i<=7} C(24,i) / 2^24 = 0.06391465663909912.
        #expect(abs(McNemarTest(onlyFirstCorrect: 17, onlySecondCorrect: 7).pValue - 0.06391465663909912) < 1e-12)
        // n = 60: chi2 = (|40-20|-1)^2/60 = 6.01666..., p = erfc(sqrt(chi2/2)) = 0.01417138825401233.
        let chi = McNemarTest(onlyFirstCorrect: 40, onlySecondCorrect: 20)
        #expect(chi.method == .chiSquareCorrected)
        #expect(abs(chi.statistic! - 361.0 / 60.0) < 1e-12)
        #expect(abs(chi.pValue - 0.01417138825401233) < 1e-12)
        #expect(McNemarTest(onlyFirstCorrect: 0, onlySecondCorrect: 0).pValue == 1)
        #expect(McNemarTest(onlyFirstCorrect: 5, onlySecondCorrect: 5).pValue == 1)

        let labels: [POPELabel] = [.yes, .no, .yes, .no]
        let t = try McNemarTest(labels: labels, first: [.yes, .no, .unknown, .yes], second: [.no, .no, .yes, .yes])
        #expect(t.onlyFirstCorrect == 1 && t.onlySecondCorrect == 1)
    }
}
