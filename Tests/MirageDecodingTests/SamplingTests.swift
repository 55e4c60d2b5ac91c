import Foundation
import MirageDecoding
import MirageEngine
import Testing

@Suite struct RandomKeyTests {
    /// Random123's known-answer vectors for Philox4x32-10 (kat_vectors).
    @Test func philoxKnownAnswers() {
        let zero = RandomKey.philox(counter: (0, 0, 0, 0), key: (0, 0))
        #expect([zero.0, zero.1, zero.2, zero.3] == [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
        let ones = RandomKey.philox(counter: (.max, .max, .max, .max), key: (.max, .max))
        #expect([ones.0, ones.1, ones.2, ones.3] == [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd])
        let pi = RandomKey.philox(counter: (0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344), key: (0xa409_3822, 0x299f_31d0))
        #expect([pi.0, pi.1, pi.2, pi.3] == [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1])
    }

    @Test func uniformsAreUniformAndKeyed() {
        let key = RandomKey(seed: 42, item: "COCO_val2014_000000000042")
        let n = 20000
        var sum = 0.0, buckets = [Int](repeating: 0, count: 10)
        for i in 0..<n {
            let u = key.uniform(step: i)
            #expect(u >= 0 && u < 1)
            sum += u
            buckets[Int(u * 10)] += 1
        }
        #expect(abs(sum / Double(n) - 0.5) < 0.01)
        // χ² with 9 degrees of freedom: 27.9 is the 0.999 quantile.
        let chi2 = buckets.reduce(0.0) { $0 + pow(Double($1) - Double(n) / 10, 2) / (Double(n) / 10) }
        #expect(chi2 < 27.9)
        #expect(key.uniform(step: 3) == RandomKey(seed: 42, item: "COCO_val2014_000000000042").uniform(step: 3))
        #expect(key.uniform(step: 3) != RandomKey(seed: 42, item: "COCO_val2014_000000000043").uniform(step: 3))
        #expect(key.uniform(step: 3) != RandomKey(seed: 43, item: "COCO_val2014_000000000042").uniform(step: 3))
        #expect(key.uniform(step: 3, draw: 0) != key.uniform(step: 3, draw: 1))
    }
}

@Suite struct LogitsProcessorTests {
    let context = LogitsContext(tokens: [1, 3, 3], generated: 2)

    @Test func repetitionPenaltyDividesPositivesAndMultipliesNegatives() {
        var s: [Float] = [2, 4, 1, -2, 5]
        RepetitionPenalty(2).process(&s, context: context)
        #expect(s == [2, 2, 1, -4, 5])
    }

    @Test func minNewTokensMasksEOSUntilReached() {
        var s: [Float] = [0, 1, 2]
        MinNewTokens(3, eosTokenIDs: [2]).process(&s, context: context)
        #expect(s == [0, 1, -.infinity])
        var t: [Float] = [0, 1, 2]
        MinNewTokens(2, eosTokenIDs: [2]).process(&t, context: context)
        #expect(t == [0, 1, 2])
    }

    @Test func topKKeepsTiesWithTheKth() {
        var s: [Float] = [1, 3, 2, 3, 0]
        TopK(2).process(&s, context: context)
        #expect(s == [-.infinity, 3, -.infinity, 3, -.infinity])
        var t: [Float] = [1, 3, 2, 0.5]
        TopK(3).process(&t, context: context)
        #expect(t == [1, 3, 2, -.infinity])
    }

    /// The nucleus is the smallest set of most likely tokens whose mass reaches p.
    @Test func topPKeepsTheSmallestSetWithMassP() {
        var rng = SystemRandomNumberGenerator()
        for p in [0.3, 0.5, 0.9, 0.95] as [Float] {
            for _ in 0..<50 {
                let logits = (0..<40).map { _ in Float.random(in: -4...4, using: &rng) }
                var s = logits
                TopP(p).process(&s, context: context)
                let probs = softmax(logits)
                let kept = s.indices.filter { s[$0] > -.infinity }
                let keptMass = kept.reduce(Float(0)) { $0 + probs[$1] }
                #expect(keptMass >= p - 1e-5)
                // Dropping the least likely kept token would fall below p.
                let weakest = kept.min { probs[$0] < probs[$1] }!
                #expect(kept.count == 1 || keptMass - probs[weakest] < p + 1e-5)
                // Every kept token is at least as likely as every dropped one.
                let dropped = s.indices.filter { s[$0] == -.infinity }
                if let strongestDropped = dropped.map({ probs[$0] }).max() { #expect(probs[weakest] >= strongestDropped) }
                #expect(kept.allSatisfy { s[$0] == logits[$0] })
            }
        }
    }

    @Test func temperatureScales() {
        var s: [Float] = [1, -2, 4]
        Temperature(0.5).process(&s, context: context)
        #expect(s == [2, -4, 8])
    }
}

@Suite struct SamplingStatisticsTests {
    /// Empirical frequencies of temperature sampling match softmax(z / T) (χ² test, 0.999 quantile).
    @Test(arguments: [0.5, 1.0, 2.0])
    func temperatureSamplingFollowsSoftmax(temperature: Double) {
        let logits: [Float] = [2.0, 1.0, 0.5, 0, -1, -3]
        var scaled = logits
        Temperature(Float(temperature)).process(&scaled, context: LogitsContext(tokens: [], generated: 0))
        let probs = softmax(scaled)
        let key = RandomKey(seed: 7, item: "t\(temperature)")
        let n = 30000
        var counts = [Int](repeating: 0, count: logits.count)
        for i in 0..<n { counts[sampleIndex(weights: probs, u: key.uniform(step: i))] += 1 }
        let chi2 = zip(counts, probs).reduce(0.0) { acc, cp in
            let expected = Double(cp.1) * Double(n)
            return acc + pow(Double(cp.0) - expected, 2) / expected
        }
        #expect(chi2 < 20.5, "χ² \(chi2) with 5 degrees of freedom")  // 20.5 = 0.999 quantile
        if temperature < 1 { #expect(Double(counts[0]) / Double(n) > 0.75) }
    }

    /// Top-p sampling never draws outside the nucleus and draws its tokens in proportion.
    @Test func topPSamplingStaysInTheNucleus() {
        let logits: [Float] = [3, 2.5, 2, 0, -1, -1.5, -2]
        var s = logits
        TopP(0.8).process(&s, context: LogitsContext(tokens: [], generated: 0))
        let probs = softmax(s)
        let nucleus = Set(s.indices.filter { s[$0] > -.infinity })
        #expect(nucleus == [0, 1, 2])
        let key = RandomKey(seed: 1)
        var counts = [Int](repeating: 0, count: logits.count)
        for i in 0..<20000 { counts[sampleIndex(weights: probs, u: key.uniform(step: i))] += 1 }
        #expect(counts[3...].allSatisfy { $0 == 0 })
        for i in 0..<3 { #expect(abs(Double(counts[i]) / 20000 - Double(probs[i])) < 0.015) }
    }

    @Test func sampleIndexEdges() {
        #expect(sampleIndex(weights: [0, 1, 0], u: 0) == 1)
        #expect(sampleIndex(weights: [0, 1, 0], u: 0.999999) == 1)
        #expect(sampleIndex(weights: [0.5, 0.5], u: 0.49) == 0)
        #expect(sampleIndex(weights: [0.5, 0.5], u: 0.51) == 1)
    }

    /// The same item key gives the same tokens whatever ran before; different items differ.
    @Test func samplingIsReproduciblePerItemAndOrderFree() throws {
        let model = try GenerateCases.model("llama-gqa-f32")
        let decoder = SamplingDecoder(temperature: 1.5)
        func run(_ item: String) throws -> [Int] {
            try decoder.decode(DecodingContext(model: model, prompt: PromptLayout(tokens: [5, 9, 11]),
                                               limits: GenerationLimits(maxNewTokens: 24),
                                               randomKey: RandomKey(seed: 3, item: item))).tokens
        }
        let a1 = try run("a"), b1 = try run("b")
        let b2 = try run("b"), a2 = try run("a")
        #expect(a1 == a2 && b1 == b2)
        #expect(a1 != b1)
        #expect(a1.count == 24)
        // Greedy agrees with sampling at a vanishing temperature.
        let cold = try SamplingDecoder(temperature: 1e-4).decode(DecodingContext(
            model: model, prompt: PromptLayout(tokens: [5, 9, 11]), limits: GenerationLimits(maxNewTokens: 16)))
        let greedy = try GreedyDecoder().decode(DecodingContext(
            model: model, prompt: PromptLayout(tokens: [5, 9, 11]), limits: GenerationLimits(maxNewTokens: 16)))
        #expect(cold.tokens == greedy.tokens)
    }
}
