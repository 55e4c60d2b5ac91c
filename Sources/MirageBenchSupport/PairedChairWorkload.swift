import MirageData
import MirageMetrics
import MirageStore

extension BenchmarkSupport {
    /// Per-image CHAIR totals of two runs over the same `images` images (keys 0..<images), as `compare`'s
    /// paired bootstrap takes them: one caption per image, 3–7 object mentions, 0–2 of them hallucinated
    /// (a caption counts as hallucinated when any mention is). Drawn from SplitMix64(`seed`), so every
    /// call with the same arguments returns the same totals.
    public static func pairedChairTotals(images: Int, seed: UInt64 = 1)
        -> (method: [Int: ChairTotals], baseline: [Int: ChairTotals]) {
        var method: [Int: ChairTotals] = [:], baseline: [Int: ChairTotals] = [:]
        var rng = SplitMix64(seed: seed)
        for image in 0..<images {
            var m = ChairTotals(), b = ChairTotals()
            m.captions = 1; b.captions = 1
            m.mentions = 3 + rng.uniform(5); b.mentions = 3 + rng.uniform(5)
            m.hallucinatedMentions = rng.uniform(3); b.hallucinatedMentions = rng.uniform(3)
            m.hallucinatedCaptions = m.hallucinatedMentions > 0 ? 1 : 0
            b.hallucinatedCaptions = b.hallucinatedMentions > 0 ? 1 : 0
            method[image] = m; baseline[image] = b
        }
        return (method, baseline)
    }
}
