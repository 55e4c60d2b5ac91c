import Foundation
import Testing
@testable import MirageAnalysis
import MirageDecoding

/// A hand-made map whose rows sum to 1 over all keys: `w(i, j)` gives the normalised response entries and
/// the rest of each row sits on the prompt.
func handMadeMap(_ n: Int, _ w: (Int, Int) -> Float) throws -> AttentionMap {
    var response: [Float] = [], prompt: [Float] = []
    for i in 0..<n {
        var s: Float = 0
        for j in 0...i { let v = w(i, j); response.append(v); s += v }
        precondition(s <= 1, "row \(i) sums to more than 1")
        prompt.append(1 - s)
    }
    return try AttentionMap(tokens: Array(0..<n), pieces: Array(repeating: "x", count: n),
                            imageMass: Array(repeating: 0, count: n), promptMass: prompt,
                            rowTotal: Array(repeating: 1, count: n), response: response)
}

/// Column 12 is a summary token: every row from 12 on gives it 0.1 (σ·W = 5 per row); everything else 0.01
/// (σ·W = 0.5, so older columns fade and the diagonal wins).
func oneSummaryColumn(_ n: Int = 40, column c: Int = 12) throws -> AttentionMap {
    try handMadeMap(n) { i, j in j == c && i >= c ? 0.1 : 0.01 }
}

@Suite struct SummaryTokenDetectorTests {
    @Test func columnScoreMatchesDirectProducts() throws {
        // Independent check of the incremental products: Π_{k=j}^{i} σ·W[k][j] computed directly.
        let map = try handMadeMap(12) { i, j in Float((i * 7 + j * 3) % 11 + 1) / 100 }
        var products: [Float]? = nil
        for i in 0..<map.count {
            let s = OperaColumnScore(parent: products, responseColumns: map.row(i), rowSum: map.rowTotal[i],
                                     scale: 50, fp16Scores: false)
            products = s.products
            var best: Float = -1, bestJ = -1
            for j in 0...i {
                var p: Float = 1
                for k in j...i { p *= 50 * map.normalised(row: k, column: j) }
                #expect(abs(s.products[j] - p) <= 1e-5 * abs(p))
                if 1e-7 * p > best { best = 1e-7 * p; bestJ = j }
            }
            #expect(s.argmax == bestJ)
        }
    }

    @Test func detectsTheKnownColumnAtTheSixteenthWin() throws {
        // Column 12 wins from step 12 on; its 16th win (count > 15) is step 27.
        let detection = try SummaryTokenDetector().detect(try oneSummaryColumn())
        #expect(detection.tokens == [SummaryToken(column: 12, step: 27)])
        #expect(Array(detection.locations[0..<12]) == Array(0..<12))      // before it: the diagonal
        #expect(detection.locations[12...].allSatisfy { $0 == 12 })
        let consecutive = try SummaryTokenDetector(rule: .consecutive).detect(try oneSummaryColumn())
        #expect(consecutive.tokens == [SummaryToken(column: 12, step: 27)])
        let clean = try SummaryTokenDetector(fp16Scores: false).detect(try oneSummaryColumn())
        #expect(clean.tokens == detection.tokens)
    }

    @Test func thresholdIsStrictlyGreater() throws {
        // 28 wins (steps 12...39): threshold 27 fires on the last step, 28 never.
        #expect(try SummaryTokenDetector(threshold: 27).detect(try oneSummaryColumn()).tokens == [SummaryToken(column: 12, step: 39)])
        #expect(try SummaryTokenDetector(threshold: 28).detect(try oneSummaryColumn()).tokens.isEmpty)
    }

    @Test func historyCountsEveryWinConsecutiveNeedsAnUnbrokenRun() throws {
        // Column 12 (×5 per row) wins steps 12...21; rows 20–22 give it only ×0.05, so column 20 (×5 from row
        // 20) wins step 22 alone; from row 23 column 12 gets ×25 and wins every step again.
        // history: 10 wins + 23...28 → the 16th win is step 28. consecutive: the run restarts at 23 → step 38.
        let map = try handMadeMap(40) { i, j in
            if j == 12 { return i < 12 ? 0.01 : i < 20 ? 0.1 : i < 23 ? 0.001 : 0.5 }
            if j == 20 && i >= 20 { return 0.1 }
            return 0.01
        }
        let history = try SummaryTokenDetector(fp16Scores: false).detect(map)
        #expect(history.locations[22] == 20)
        #expect(Array(history.locations[12...21]) == Array(repeating: 12, count: 10))
        #expect(history.locations[23...].allSatisfy { $0 == 12 })
        #expect(history.tokens == [SummaryToken(column: 12, step: 28)])
        #expect(try SummaryTokenDetector(rule: .consecutive, fp16Scores: false).detect(map).tokens
                == [SummaryToken(column: 12, step: 38)])
    }

    @Test func twoColumnsInTurn() throws {
        // Column 12 until row 29, then it gets nothing (its product drops to 0) and column 30 takes over.
        let map = try handMadeMap(50) { i, j in
            if j == 12 { return i < 12 ? 0.01 : (i < 30 ? 0.1 : 0) }
            if j == 30 && i >= 30 { return 0.1 }
            return 0.01
        }
        #expect(try SummaryTokenDetector().detect(map).tokens
                == [SummaryToken(column: 12, step: 27), SummaryToken(column: 30, step: 45)])
    }

    @Test func tiesGoToTheFirstColumn() throws {
        // Columns 12 and 13 have exactly equal products from row 13 on (1·5·5… and 5·5…): 12 wins every tie.
        let map = try handMadeMap(40) { i, j in
            if j == 12 && i == 12 { return 0.02 }
            if (j == 12 || j == 13) && i >= 13 { return 0.1 }
            return 0.01
        }
        let d = try SummaryTokenDetector(fp16Scores: false).detect(map)
        #expect(d.locations[13...].allSatisfy { $0 == 12 })
        #expect(d.tokens == [SummaryToken(column: 12, step: 27)])
        // Uniform rows with σ·W = 1.5: the oldest column's product is the largest, so location 0 every step.
        let uniform = try handMadeMap(30) { _, _ in 0.03 }
        #expect(try SummaryTokenDetector().detect(uniform).locations.allSatisfy { $0 == 0 })
        #expect(try SummaryTokenDetector().detect(uniform).tokens.isEmpty)     // location 0 < minimum location 10
        #expect(try SummaryTokenDetector(minimumLocation: 0).detect(uniform).tokens == [SummaryToken(column: 0, step: 15)])
    }

    @Test func fp16SaturationTiesGoToTheFirstColumn() throws {
        // Column 13 (σ·W = 20 per row from row 13) beats column 12 (0.5 at row 12, then 20 per row) by a factor
        // of 2 in float32. In fp16 both scores saturate to +inf from row 22 (1e-7·20^10 > 65504) and the tie
        // goes to column 12: its wins are steps 12 and 22..., the 16th is step 36.
        let map = try handMadeMap(40) { i, j in
            if j == 12 && i == 12 { return 0.01 }
            if (j == 12 || j == 13) && i >= 13 { return 0.4 }
            return 0.001
        }
        let reference = try SummaryTokenDetector().detect(map)
        #expect(Array(reference.locations[13...21]) == Array(repeating: 13, count: 9))
        #expect(reference.locations[22...].allSatisfy { $0 == 12 })
        #expect(reference.maxScores[22] == .infinity)
        #expect(reference.tokens == [SummaryToken(column: 12, step: 36)])
        #expect(try SummaryTokenDetector(fp16Scores: false).detect(map).tokens == [SummaryToken(column: 13, step: 28)])
    }

    @Test func windowEdges() throws {
        // Window of 5 columns: column 12 competes in steps 12...16 (5 wins), then leaves the window.
        let map = try oneSummaryColumn()
        #expect(try SummaryTokenDetector(window: 5).detect(map).tokens.isEmpty)
        #expect(try SummaryTokenDetector(window: 5, threshold: 4).detect(map).tokens == [SummaryToken(column: 12, step: 16)])
        #expect(try SummaryTokenDetector(window: 4, threshold: 4).detect(map).tokens.isEmpty)   // 4 wins only
        let d = try SummaryTokenDetector(window: 5).detect(map)
        #expect(Array(d.locations[12...16]) == [12, 12, 12, 12, 12])
        #expect(Array(d.locations[17...]) == Array(17..<40))
    }

    @Test func noColumn() throws {
        let d = try SummaryTokenDetector().detect(try handMadeMap(40) { _, _ in 0.01 })
        #expect(d.tokens.isEmpty)
        #expect(d.locations == Array(0..<40))
    }

    @Test func invalidParametersSayWhatToUse() {
        #expect(throws: AnalysisError.self) { _ = try SummaryTokenDetector(window: 0) }
        #expect(throws: AnalysisError.self) { _ = try SummaryTokenDetector(scale: 0) }
        #expect(throws: AnalysisError.self) { _ = try SummaryTokenDetector(threshold: -1) }
    }
}
