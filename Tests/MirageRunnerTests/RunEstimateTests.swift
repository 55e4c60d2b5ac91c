import Foundation
import MirageRunner
import MirageTestSupport
import Testing

/// `RunEstimator` (`mirage run --estimate`): what it counts and how the parts relate. Its seconds depend on the
/// machine's speed at the moment, so only structure and ratios that follow from the cost model are checked.
@Suite struct RunEstimateTests {
    @Test func countsItemsAndScalesWithDecodersAndTheCache() throws {
        var (folder, experiment, _, resources) = try RunnerAPITests.setUp(images: TestTemporary.url("no-images").path)
        defer { try? FileManager.default.removeItem(at: folder) }
        experiment.decoders = [DecoderChoice(name: "greedy"), DecoderChoice(name: "beam", overrides: [.init("num_beams", "5")]),
                               DecoderChoice(name: "opera", preset: "opera-paper")]
        var lines: [String] = []
        let cached = try RunEstimator(experiment: experiment, resources: resources).estimate { lines.append($0) }
        #expect(lines.count == 1 && lines[0].contains("measuring"))
        #expect(cached.rows.count == 3)
        for row in cached.rows {
            #expect(row.items == 4 && row.images == 3)   // four POPE questions on three images
            #expect(row.newTokensTypical == 3 && row.newTokensMaximum == 3)
            #expect(row.typicalSeconds > 0 && row.typicalSeconds <= row.maximumSeconds)
        }
        let beam = cached.rows[1], opera = cached.rows[2]
        // OPERA counts 1.9 × the weight streaming of beam search with the same beams (its KV reads are the same).
        let ratio = opera.decodeSecondsPerItem / beam.decodeSecondsPerItem
        #expect(ratio > 1 && ratio <= 1.9 + 1e-9)
        #expect(cached.sharedSeconds.count == 1)

        // Without the prefix cache every item prefills its whole prompt, and nothing but image encoding is shared.
        experiment.prefixCacheMB = 0
        let cold = try RunEstimator(experiment: experiment, resources: resources).estimate()
        #expect(cold.rows[0].prefillSecondsPerItem > cached.rows[0].prefillSecondsPerItem)

        // Two seeds double the items and the seconds of every run.
        experiment.prefixCacheMB = nil
        experiment.seeds = [0, 1]
        let seeds = try RunEstimator(experiment: experiment, resources: resources).estimate()
        #expect(seeds.rows.allSatisfy { $0.items == 8 })
    }

    @Test func chairCaptionsAreCountedAtTheirTypicalLength() {
        #expect(RunEstimate.typicalNewTokens(task: .chair, maxNewTokens: 512) == RunEstimate.typicalChairTokens)
        #expect(RunEstimate.typicalNewTokens(task: .chair, maxNewTokens: 64) == 64)
        #expect(RunEstimate.typicalNewTokens(task: .pope, maxNewTokens: 10) == 10)
    }
}
