import Foundation

/// The per-step score rules of the contrastive decoders, as pure functions over one logits row.
/// Each restates the published code's arithmetic in float32 (the sources are named at each function);
/// `Tests/MirageDecodingTests` compares them with torch on hand-made logits.
public enum ContrastiveScores {
    /// The adaptive plausibility constraint (APC) of contrastive decoding, as VCD implements it on raw
    /// logits (`vcd_utils/vcd_sample.py`, "version 2"): a token is plausible when
    /// `z ≥ log(β) + max z` (⇔ `p ≥ β · max p`). β = 0 keeps every token.
    public static func plausibilityThreshold(_ logits: ArraySlice<Float>, beta: Double) -> Float {
        (logits.max() ?? 0) + Float(log(Float(beta)))
    }

    /// One step of a VCD-style combination.
    public struct Contrast: Sendable, Equatable {
        /// `(1 + α)·z − α·z_contrast` on plausible tokens, −∞ elsewhere.
        public var scores: [Float]
        /// Tokens that passed the cut-off.
        public var plausibleCount: Int
        /// True when the cut-off changed the contrast's choice: the argmax of the unmasked combination is
        /// an implausible token (the constraint "bound").
        public var cutoffBound: Bool
    }

    /// VCD (`vcd_utils/vcd_sample.py`): `cutoff = log β + max z`, `diffs = (1+α)·z − α·z'`, then tokens with
    /// `z < cutoff` set to −∞. With `contrast == nil` this is the cut-off alone (cd_rethink's APC control,
    /// whose contrast branch sees the same input, so `diffs = z`).
    public static func vcd(_ logits: ArraySlice<Float>, contrast: ArraySlice<Float>?, alpha: Double, beta: Double) -> Contrast {
        precondition(contrast == nil || contrast!.count == logits.count, "VCD: branch logits differ in width")
        let cutoff = plausibilityThreshold(logits, beta: beta)
        let z = Array(logits)
        let zc = contrast.map(Array.init)
        let a = Float(alpha), a1 = Float(1 + alpha)
        var scores = [Float](repeating: -.infinity, count: z.count)
        var kept = 0
        var bestAll = -Float.infinity, bestAllIndex = 0
        var bestKept = -Float.infinity, bestKeptIndex = 0
        for i in z.indices {
            let d = zc.map { a1 * z[i] - a * $0[i] } ?? z[i]
            if d > bestAll { bestAll = d; bestAllIndex = i }
            guard z[i] >= cutoff else { continue }
            scores[i] = d
            kept += 1
            if d > bestKept { bestKept = d; bestKeptIndex = i }
        }
        return Contrast(scores: scores, plausibleCount: kept, cutoffBound: bestAllIndex != bestKeptIndex)
    }

    /// DoLa's divergence between the mature layer and each candidate premature layer, exactly as
    /// `dola_greedy_decode` computes it (voidism/DoLa, transformers-4.28.1 generation/utils.py):
    /// `M = ½(p_mature + p_j)`, `kl1 = mean_v M·(log M − log p_mature)`, `kl2 = mean_v M·(log M − log p_j)`
    /// (torch's `F.kl_div(log_input, target)` averaged over the vocabulary), `JS_j = ½(kl1 + kl2)`.
    /// Accumulated in Double.
    public static func dolaDivergences(mature: ArraySlice<Float>, premature: [ArraySlice<Float>]) -> [Double] {
        let logP = logSoftmax(mature).map(Double.init)
        let p = logP.map { exp($0) }
        let n = Double(logP.count)
        return premature.map { row in
            let logQ = logSoftmax(row).map(Double.init)
            var kl1 = 0.0, kl2 = 0.0
            for v in logP.indices {
                let m = 0.5 * (p[v] + exp(logQ[v]))
                guard m > 0 else { continue }
                let logM = log(m)
                kl1 += m * (logM - logP[v])
                kl2 += m * (logM - logQ[v])
            }
            return 0.5 * (kl1 / n + kl2 / n)
        }
    }

    /// DoLa's contrast of the mature layer with the chosen premature layer (`dola_greedy_decode`):
    /// with `relativeTop > 0`, `final = log_softmax(mature)` with tokens below `max + log(relativeTop)` set
    /// to −∞ (`relative_top_filter`, min_tokens_to_keep = 1), `base = log_softmax(premature)` set to −1000
    /// where `final` was filtered, score = `final − base`; with `relativeTop == 0` the raw logits are
    /// subtracted. Returns the scores and how many tokens passed the filter.
    public static func dola(mature: ArraySlice<Float>, premature: ArraySlice<Float>, relativeTop: Double) -> (scores: [Float], kept: Int) {
        guard relativeTop > 0 else {
            return (zip(mature, premature).map { $0 - $1 }, mature.count)
        }
        let final = logSoftmax(mature)
        let base = logSoftmax(premature)
        let threshold = min(final.max() ?? 0, (final.max() ?? 0) + Float(log(relativeTop)))
        var kept = 0
        var scores = [Float](repeating: -.infinity, count: final.count)
        for v in final.indices where final[v] >= threshold {
            scores[v] = final[v] - base[v]
            kept += 1
        }
        return (scores, kept)
    }
}
