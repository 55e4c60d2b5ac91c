import Foundation
import Testing
@testable import MirageMetrics

private func totals(hallucinated: Int, mentions: Int) -> ChairTotals {
    var t = ChairTotals()
    t.captions = 1
    t.hallucinatedCaptions = hallucinated > 0 ? 1 : 0
    t.mentions = mentions
    t.hallucinatedMentions = hallucinated
    return t
}

@Test func bootstrapIntervalIsExactWhenEveryImageHasTheSameDelta() {
    // Every image: the method hallucinates 1 of 2 mentions, the baseline 0 of 2. Any resample gives
    // ΔCHAIR_S = 1 and ΔCHAIR_I = 0.5, so the interval collapses to those values.
    let method = Dictionary(uniqueKeysWithValues: (1...20).map { ($0, totals(hallucinated: 1, mentions: 2)) })
    let baseline = Dictionary(uniqueKeysWithValues: (1...20).map { ($0, totals(hallucinated: 0, mentions: 2)) })
    let r = PairedBootstrap.chairDelta(method: method, baseline: baseline, samples: 200, seed: 7)
    #expect(r.sharedImages == 20)
    #expect(r.chairS == BootstrapInterval(lower: 1, upper: 1))
    #expect(r.chairI == BootstrapInterval(lower: 0.5, upper: 0.5))
}

@Test func bootstrapUsesOnlySharedImagesAndIsSeeded() {
    var method: [Int: ChairTotals] = [:], baseline: [Int: ChairTotals] = [:]
    for i in 1...50 {
        method[i] = totals(hallucinated: i % 3 == 0 ? 1 : 0, mentions: 3)
        baseline[i + 25] = totals(hallucinated: i % 2 == 0 ? 1 : 0, mentions: 3)
    }
    let a = PairedBootstrap.chairDelta(method: method, baseline: baseline, samples: 500, seed: 1)
    let b = PairedBootstrap.chairDelta(method: method, baseline: baseline, samples: 500, seed: 1)
    let c = PairedBootstrap.chairDelta(method: method, baseline: baseline, samples: 500, seed: 2)
    #expect(a.sharedImages == 25)
    #expect(a == b)
    #expect(a.chairS != c.chairS)
    let iv = try! #require(a.chairS)
    #expect(iv.lower <= iv.upper && iv.lower >= -1 && iv.upper <= 1)
}

@Test func quantileInterpolatesLinearlyBetweenOrderStatistics() {
    // numpy.quantile([0, 1, 2, 3], 0.25) = 0.75; 0.975 → 2.925.
    #expect(PairedBootstrap.quantile([0, 1, 2, 3], 0.25) == 0.75)
    #expect(abs(PairedBootstrap.quantile([0, 1, 2, 3], 0.975) - 2.925) < 1e-12)
    #expect(PairedBootstrap.quantile([5], 0.5) == 5)
}
