import Foundation
import MirageKernels
import MirageTestSupport
import Testing
@testable import MirageEngine

/// The batched Q-Former schedule (`QFormer.run`: every cross layer's image keys and values in one GEMM, q/k/v from
/// one packing, SIMD attention in the scalar loops' summation order) against the former per-layer schedule
/// (`runPerLayer`, QFormerReference.swift), bit for bit, on shapes that reach each path: head dims 64 (4-accumulator blocks), 16 and 12 (a
/// scalar tail), key counts above and below 64 and not multiples of 16, rows on the decode (≤ 8), mid-n and GEMM
/// (image rows > 128) paths, f32 / f16 / bf16 weights, one and two threads.
@Suite struct QFormerScheduleTests {
    struct Shape: Sendable, CustomStringConvertible {
        var hidden: Int, heads: Int, layers: Int, frequency: Int, encoder: Int
        var queries: Int, text: Int, imageRows: Int, dtype: TensorDType, threads: Int
        var description: String {
            "h\(hidden)/\(heads) heads, \(queries)+\(text) rows, \(imageRows) image rows, \(dtype), \(threads) threads"
        }
    }

    static let shapes = [
        Shape(hidden: 128, heads: 2, layers: 3, frequency: 2, encoder: 48, queries: 12, text: 7, imageRows: 140,
              dtype: .f16, threads: 2),
        Shape(hidden: 36, heads: 3, layers: 2, frequency: 1, encoder: 20, queries: 4, text: 0, imageRows: 9,
              dtype: .bf16, threads: 1),
        Shape(hidden: 32, heads: 2, layers: 2, frequency: 2, encoder: 24, queries: 6, text: 5, imageRows: 70,
              dtype: .f32, threads: 2),
    ]

    static func qformer(_ s: Shape, folder: URL) throws -> QFormer {
        let config = QFormerConfig(hiddenSize: s.hidden, intermediateSize: 3 * s.hidden, numLayers: s.layers,
                                   numHeads: s.heads, crossAttentionFrequency: s.frequency, encoderHiddenSize: s.encoder,
                                   vocabSize: 50, maxPositionEmbeddings: 16)
        let names: QFormerNames = s.text > 0 ? .instructBlip : .blip2
        let tensors = SyntheticBlip2Spec.qformerTensors(config: config, names: names, dtype: s.dtype)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try writeRandomTensors(tensors.entries, path: folder.appendingPathComponent("model.safetensors").path, seed: 7,
                               progress: { _ in })
        return try QFormer(config: config, store: try TensorStore(folder: folder), names: names,
                           pool: WorkerPool(threadCount: s.threads))
    }

    @Test(arguments: shapes)
    func batchedScheduleIsBitIdenticalToPerLayer(_ s: Shape) throws {
        let folder = TestTemporary.url("qformer-schedule")
        defer { try? FileManager.default.removeItem(at: folder) }
        let q = try Self.qformer(s, folder: folder)
        #expect(q.fusedImageKeysValues != nil, "plain-format weights are stacked into one image K/V matrix")
        var random = SplitMix64(seed: 11)
        // Inputs of LayerNorm-like scale, so attention is far from uniform and every product matters.
        let queries = (0..<(s.queries * s.hidden)).map { _ in random.nextSignedUnit() * 2 }
        let image = (0..<(s.imageRows * s.encoder)).map { _ in random.nextSignedUnit() * 3 }
        let ids = (0..<s.text).map { 1 + 7 * $0 % 49 }
        let profile = QFormerProfile()
        let batched = try q.run(queries: queries, queryCount: s.queries, textIDs: ids, image: image, imageRows: s.imageRows,
                                profile: profile)
        let perLayer = try q.runPerLayer(queries: queries, queryCount: s.queries, textIDs: ids, image: image,
                                         imageRows: s.imageRows)
        #expect(batched.count == (s.queries + s.text) * s.hidden)
        #expect(batched.allSatisfy { $0.isFinite })
        let differing = zip(batched, perLayer).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(differing == 0, "\(differing) of \(batched.count) outputs differ from the per-layer schedule")
        // The operations' FLOPs add up to the closed formula.
        let counted = profile.entries.values.reduce(0) { $0 + $1.flops }
        #expect(counted == q.config.flops(queryRows: s.queries, textRows: s.text, imageRows: s.imageRows))
    }

    /// The formula at InstructBLIP-7B's shape, by hand: docs/vision.md's numbers.
    @Test func flopsOfTheSevenBShape() {
        let c = QFormerConfig(encoderHiddenSize: 1408)
        // 12·(8·41·768² + 4·41²·768 + 4·41·768·3072) + 6·(4·32·768² + 4·257·1408·768 + 4·32·257·768)
        #expect(c.flops(queryRows: 32, textRows: 9, imageRows: 257) == 14_300_909_568)
        #expect(c.flops(queryRows: 32, textRows: 0, imageRows: 257) == 12_747_866_112)
    }
}
