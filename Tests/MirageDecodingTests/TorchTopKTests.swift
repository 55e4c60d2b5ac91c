import Foundation
@testable import MirageDecoding
import Testing

/// `TorchTopK` against orders torch 2.13.0's CPU `torch.topk(x, k)` returned (recorded from Python; rows of ties,
/// where the order is the partial-sort algorithm's, not the index order).
@Suite struct TorchTopKTests {
    @Test func tiesComeOutInTorchsOrder() {
        // PAI's first beam step on the tiny LLaVA-1.5 (pai-beam.json case 0): beam 0 keeps two tokens after the
        // cut-off, beams 1–4 start at −1e9 (absorbing their log-probabilities), everything else is −∞.
        var first = [Float](repeating: -.infinity, count: 2400)
        first[58] = -0.9813532829284668
        first[403] = -3.1982953548431396
        for i in [538, 883, 1018, 1363, 1498, 1843, 1978, 2323] { first[i] = -1e9 }
        #expect(TorchTopK.largest(first, k: 10) == [58, 403, 1363, 1018, 883, 1498, 1843, 1978, 2323, 538])
        // torch.topk(torch.zeros(640), 10)
        #expect(TorchTopK.largest([Float](repeating: 0, count: 640), k: 10) == [8, 9, 4, 7, 5, 3, 1, 0, 2, 6])
        // torch.topk(torch.tensor([i % 3 for i in range(1280)]), 12)
        #expect(TorchTopK.largest((0..<1280).map { Float($0 % 3) }, k: 12) == [8, 20, 26, 14, 11, 29, 23, 32, 5, 35, 17, 2])
    }

    @Test func distinctValuesAreSortedDescending() {
        let values: [Float] = (0..<1000).map { Float(($0 * 7919) % 1000) }
        #expect(TorchTopK.largest(values, k: 8) == (0..<8).map { v in values.firstIndex(of: Float(999 - v))! })
    }
}
