import Foundation
import Testing
@testable import MirageKernels

/// The multi-chain attention kernels against float64 references, for key counts that exercise the
/// four-at-a-time path and its tail, and head dims with and without the 64-wide column groups.
@Suite struct AttentionKernelTests {
    @Test(arguments: [16, 64, 80, 128, 24])
    func scaledDotsAndAccumulateRowsMatchFloat64(dim: Int) {
        var random = SeededRandom(seed: UInt64(dim))
        for count in [1, 3, 4, 7, 16] {
            let q = random.floats(dim), rows = random.floats(count * dim), weights = random.floats(count, in: 0...1)
            let scale: Float = 0.125
            var scores = [Float](repeating: .nan, count: count)
            Kernels.scaledDots(q, rows: rows, count: count, dim: dim, scale: scale, into: &scores)
            for j in 0..<count {
                var expected = 0.0
                for d in 0..<dim { expected += Double(q[d]) * Double(rows[j * dim + d]) }
                expected *= Double(scale)
                #expect(abs(Double(scores[j]) - expected) <= 1e-5, "dots dim \(dim) count \(count) key \(j)")
            }
            let q1 = random.floats(dim)
            var pair0 = [Float](repeating: .nan, count: count), pair1 = pair0, single1 = pair0
            Kernels.scaledDots(q, q1, rows: rows, count: count, dim: dim, scale: scale, into: &pair0, &pair1)
            Kernels.scaledDots(q1, rows: rows, count: count, dim: dim, scale: scale, into: &single1)
            #expect(pair0 == scores && pair1 == single1, "two-query dots dim \(dim) count \(count)")
            let start = random.floats(dim)
            var y = start
            Kernels.accumulateRows(weights: weights, rows: rows, count: count, dim: dim, into: &y)
            for d in 0..<dim {
                var expected = Double(start[d])
                for j in 0..<count { expected += Double(weights[j]) * Double(rows[j * dim + d]) }
                #expect(abs(Double(y[d]) - expected) <= 1e-5, "accumulate dim \(dim) count \(count) lane \(d)")
            }
        }
    }

    @Test func sharedRopeAnglesMatchThePerCallRotation() {
        let headDim = 64, half = headDim / 2
        let inverse = (0..<half).map { Float(pow(10_000.0, -2.0 * Double($0) / Double(headDim))) }
        var random = SeededRandom(seed: 9)
        for position in [0, 5, 575] {
            var cosines = [Float](repeating: 0, count: half), sines = cosines
            Kernels.ropeAngles(position: position, inverseFrequencies: inverse, count: half,
                               cosines: &cosines, sines: &sines)
            let original = random.floats(headDim)
            var shared = original, perCall = original
            Kernels.ropeRotateHalf(&shared, headDim: headDim, cosines: cosines, sines: sines)
            for j in 0..<half {
                let angle = Float(position) * inverse[j]
                let a = original[j], b = original[j + half]
                perCall[j] = a * cos(angle) - b * sin(angle)
                perCall[j + half] = b * cos(angle) + a * sin(angle)
            }
            #expect(shared == perCall, "position \(position)")
        }
    }
}
