import Foundation
import MirageData

/// A percentile interval from a paired bootstrap.
public struct BootstrapInterval: Codable, Hashable, Sendable {
    public var lower: Double
    public var upper: Double
    public init(lower: Double, upper: Double) { self.lower = lower; self.upper = upper }
}

/// Paired bootstrap of CHAIR deltas (method − baseline) over the images both runs captioned.
///
/// Resampling unit = image: each replicate draws `n` of the `n` shared images uniformly with replacement
/// (MirageData's SplitMix64, seeded, `uniform(n)`), sums both runs' CHAIR totals over the drawn images and
/// takes the difference of the ratios. The interval is the 2.5th and 97.5th percentile of the replicates
/// (linear interpolation between order statistics, numpy's default "linear" method); replicates whose ratio is
/// undefined (no mention at all) are left out. Deterministic for a given seed.
public enum PairedBootstrap {
    public struct Result: Hashable, Sendable {
        public var sharedImages: Int
        public var chairS: BootstrapInterval?
        public var chairI: BootstrapInterval?
    }

    public static func chairDelta(method: [Int: ChairTotals], baseline: [Int: ChairTotals],
                                  samples: Int, seed: UInt64, level: Double = 0.95) -> Result {
        let shared = Set(method.keys).intersection(baseline.keys).sorted()
        guard !shared.isEmpty, samples > 0 else { return Result(sharedImages: shared.count) }
        let deltas = replicates(method: shared.map { method[$0]! }, baseline: shared.map { baseline[$0]! },
                                zero: ChairTotals(), add: +, samples: samples, seed: seed) { m, b in
            [m.chairS - b.chairS, m.chairI - b.chairI]
        }
        let alpha = (1 - level) / 2
        return Result(sharedImages: shared.count, chairS: interval(deltas[0], alpha), chairI: interval(deltas[1], alpha))
    }

    /// The bootstrap replicates of paired statistics over units (images, questions) that both runs have:
    /// `method[k]` and `baseline[k]` are the two runs' additive totals of unit k. Each of `samples` replicates
    /// draws `n` of the `n` units with replacement (SplitMix64 seeded with `seed`, `uniform(n)`), sums both
    /// runs' totals over the draw and evaluates `statistics` on the two sums. Returns one list per statistic,
    /// NaN replicates (an undefined ratio) left out.
    public static func replicates<T>(method: [T], baseline: [T], zero: T, add: (T, T) -> T, samples: Int, seed: UInt64,
                                     statistics: (T, T) -> [Double]) -> [[Double]] {
        precondition(method.count == baseline.count, "paired units")
        var rng = SplitMix64(seed: seed)
        var out: [[Double]] = []
        let n = method.count
        for _ in 0..<samples where n > 0 {
            var mt = zero, bt = zero
            for _ in 0..<n {
                let k = rng.uniform(n)
                mt = add(mt, method[k]); bt = add(bt, baseline[k])
            }
            let values = statistics(mt, bt)
            if out.isEmpty { out = Array(repeating: [], count: values.count) }
            for (i, v) in values.enumerated() where !v.isNaN { out[i].append(v) }
        }
        return out
    }

    /// The central `level` percentile interval of bootstrap replicates (nil when there are none).
    public static func interval(_ values: [Double], level: Double) -> BootstrapInterval? {
        interval(values, (1 - level) / 2)
    }

    static func interval(_ values: [Double], _ alpha: Double) -> BootstrapInterval? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return BootstrapInterval(lower: quantile(sorted, alpha), upper: quantile(sorted, 1 - alpha))
    }

    /// Linear interpolation between order statistics: position q·(n−1).
    static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        let pos = q * Double(sorted.count - 1)
        let lo = Int(pos.rounded(.down)), hi = min(lo + 1, sorted.count - 1)
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - Double(lo))
    }
}

/// McNemar's test against the baseline (MirageMetrics' `McNemarTest`, first = baseline, second = method) on
/// the questions both runs answered.
public struct McNemarResult: Codable, Hashable, Sendable {
    public var pairs: Int
    public var test: McNemarTest
    public init(pairs: Int, test: McNemarTest) { self.pairs = pairs; self.test = test }
    public var pValue: Double { test.pValue }
}
