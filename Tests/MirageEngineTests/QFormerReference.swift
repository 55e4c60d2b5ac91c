import Foundation
import MirageKernels
@testable import MirageEngine

/// The Q-Former's per-layer reference schedule, test code only: `QFormerScheduleTests` checks the engine's
/// batched `QFormer.run` against it bit for bit.
extension QFormer {
    /// The former schedule, layer by layer (each cross-attention layer projects the image rows to its keys and
    /// values itself; q, k, v each multiply their input separately; attention one scalar dot product at a time):
    /// the reference the batched `run` is checked against bit for bit.
    func runPerLayer(queries: [Float], queryCount: Int, textIDs: [Int] = [], image: [Float], imageRows: Int,
                     profile: QFormerProfile? = nil) throws -> [Float] {
        let h = config.hiddenSize, t = textIDs.count
        var x = try embed(queries: queries, queryCount: queryCount, textIDs: textIDs, image: image, imageRows: imageRows,
                          profile: profile)
        for layer in layers {
            let attended = attentionBlock(layer.selfAttention, x, rows: queryCount + t, keys: x, keyRows: queryCount + t,
                                          keyWidth: h, kind: "self-attention", profile: profile)
            var queryPart = Array(attended[0..<(queryCount * h)])
            if let cross = layer.crossAttention {
                queryPart = attentionBlock(cross, queryPart, rows: queryCount, keys: image, keyRows: imageRows,
                                           keyWidth: config.encoderHiddenSize, kind: "cross-attention", profile: profile)
            }
            let f = config.intermediateSize
            var next = profile.measure("query feed-forward", flops: 4 * Double(queryCount * h * f)) {
                feedForward(layer.queryFeedForward, queryPart, rows: queryCount)
            }
            if t > 0, let text = layer.textFeedForward {
                next += profile.measure("instruction feed-forward", flops: 4 * Double(t * h * f)) {
                    feedForward(text, Array(attended[(queryCount * h)...]), rows: t)
                }
            }
            x = next
        }
        return x
    }

    /// y = LN(dense(MHA(x, keys)) + x), the per-layer schedule (`runPerLayer`).
    func attentionBlock(_ w: QFormerAttentionWeights, _ x: [Float], rows n: Int, keys: [Float], keyRows m: Int,
                        keyWidth: Int, kind: String, profile: QFormerProfile?) -> [Float] {
        let h = config.hiddenSize
        let cross = kind == "cross-attention"
        let q = profile.measure(cross ? "cross-attention query projection" : "self-attention q/k/v",
                                flops: 2 * Double(n * h * h)) { linear(x, rows: n, w.query) }
        let (k, v) = profile.measure(cross ? "image K/V projections (all cross layers)" : "self-attention q/k/v",
                                     flops: 4 * Double(m * keyWidth * h)) {
            (linear(keys, rows: m, w.key), linear(keys, rows: m, w.value))
        }
        var context = [Float](repeating: 0, count: n * h)
        let heads = config.numHeads, d = config.headDim, scale = 1 / Float(d).squareRoot()
        profile.measure("\(kind) softmax(q·kᵀ)·v", flops: 4 * Double(n * m * h)) {
            q.withUnsafeBufferPointer { qb in k.withUnsafeBufferPointer { kb in v.withUnsafeBufferPointer { vb in
                context.withUnsafeMutableBufferPointer { cb in
                    let qp = qb.baseAddress!, kp = kb.baseAddress!, vp = vb.baseAddress!, cp = cb.baseAddress!
                    pool.parallelFor(heads) { head in
                        let scores = UnsafeMutablePointer<Float>.allocate(capacity: m)
                        defer { scores.deallocate() }
                        let off = head * d
                        for r in 0..<n {
                            let qr = qp + r * h + off
                            for c in 0..<m {
                                let kr = kp + c * h + off
                                var dot: Float = 0
                                for j in 0..<d { dot += qr[j] * kr[j] }
                                scores[c] = dot * scale
                            }
                            Kernels.softmax(scores, count: m)
                            let out = cp + r * h + off
                            for j in 0..<d { out[j] = 0 }
                            for c in 0..<m {
                                let p = scores[c], vr = vp + c * h + off
                                for j in 0..<d { out[j] += p * vr[j] }
                            }
                        }
                    }
                }
            }}}
        }
        return profile.measure("\(kind) output dense + LayerNorm", flops: 2 * Double(n * h * h)) {
            outputDense(w, context, rows: n, residual: x)
        }
    }
}
