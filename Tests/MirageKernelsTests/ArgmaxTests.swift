import Testing
@testable import MirageKernels

/// The vector argmax against the scalar scan it replaces (first maximum wins, NaNs skipped).
@Suite struct ArgmaxTests {
    func scalar(_ x: [Float]) -> Int {
        var best = 0
        var bestValue = -Float.infinity
        for i in x.indices where x[i] > bestValue {
            best = i
            bestValue = x[i]
        }
        return best
    }

    func vector(_ x: [Float]) -> Int { x.withUnsafeBufferPointer { Kernels.argmax($0.baseAddress!, count: $0.count) } }

    @Test func matchesScalarScanOnRandomData() {
        var random = SeededRandom(seed: 7)
        for count in [1, 7, 16, 17, 33, 100, 151_936] {
            // Few distinct values, so ties across and within vectors are common.
            let x = (0..<count).map { _ in Float(Int.random(in: -5...5, using: &random)) }
            #expect(vector(x) == scalar(x), "count \(count)")
        }
    }

    @Test func tiesNaNsAndInfinities() {
        let cases: [[Float]] = [
            [3, 1, 3], [.nan, 2, 2], [.nan, .nan], [-.infinity, -.infinity], [-.infinity, .nan, -1],
            Array(repeating: 1, count: 40) + [2] + Array(repeating: 2, count: 20),
            Array(repeating: .nan, count: 33) + [0], [.infinity] + Array(repeating: 0, count: 31) + [.infinity],
        ]
        for x in cases { #expect(vector(x) == scalar(x), "\(x)") }
    }
}
