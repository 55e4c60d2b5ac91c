import Foundation
import MirageTestSupport
import Testing
import MirageData
import MirageMetrics
import MirageStore
@testable import MirageAnalysis
import MirageRunner

private let model = ModelSpec(name: "tiny", architecture: "llava-llama", fingerprint: String(repeating: "ab", count: 32) + "+exact")
private let chairProtocol = EvalProtocol(task: .chair, imageIDs: [1, 2, 3], promptTemplate: "Describe.", maxNewTokens: 24,
                                         vocabularyChecksum: "v1", groundTruthChecksum: "g1")

/// A CHAIR side: item i (image i) with the given tokens; its caption mentions `hallucinated[i]` absent objects
/// out of 4 mentions.
private func chairSide(_ tokens: [[Int]], hallucinated: [Int]? = nil, decoder: DecoderSpec = DecoderSpec(name: "greedy"),
                       evalProtocol: EvalProtocol = chairProtocol, source: String = "run") -> GoldenRun {
    let items = tokens.enumerated().map { i, t in
        let bad = hallucinated?[i] ?? 0
        let score = ChairItemScore(mentions: (0..<4).map { ObjectMention(word: "w\($0)", node: "o\($0)", position: $0, hallucinated: $0 < bad) },
                                   groundTruth: ["o0", "o1", "o2", "o3"], wordCount: 10)
        return GoldenRun.Item(key: "\(i + 1)", ordinal: i, imageID: i + 1, tokens: t, text: t.map { "w\($0)" }.joined(separator: " "),
                              score: .chair(score))
    }
    return GoldenRun(identity: .init(model: model, evalProtocol: evalProtocol, decoder: decoder, seed: 0), items: items, source: source)
}

@Test func goldenFileRoundTripsIdentityItemsAndScores() throws {
    var side = chairSide([[1, 2, 3], [4, 5], [6]], hallucinated: [0, 1, 2],
                         decoder: DecoderSpec(name: "opera", parametersJSON: #"{"num_beams":3,"scale_factor":50}"#))
    side.items[0].text = "line\u{2028}sep \"quoted\"\nnewline / slash"
    side.items[2].failure = "image missing"
    side.items[2].tokens = nil
    side.items[2].score = nil
    let text = side.jsonl()
    let lines = text.split(separator: "\n")
    #expect(lines.count == 4)
    #expect(lines[0].contains(#""format":"mirage-golden""#) && lines[0].contains(#""precision":"exact""#))
    #expect(lines[0].contains(#""decoder":{"name":"opera","parameters":{"num_beams":3,"scale_factor":50}}"#))
    #expect(lines[1].contains(#""decoder":"opera(num_beams=3, scale_factor=50)""#) && lines[1].contains(#""tokens":[1,2,3]"#))
    #expect(lines[1].contains("\\u2028"))
    let back = try GoldenRun(jsonl: text, source: "g.jsonl")
    #expect(back.identity == side.identity)
    #expect(back.items == side.items)
    #expect(back.identity.precision == "exact")
    #expect(RegressionGate.exact(run: back, baseline: side).status == .pass)
}

@Test func storedRunBecomesAGoldenFileThatPasses() throws {
    let store = try RunStores.open(TestTemporary.root.appendingPathComponent("mirage-gate-\(UUID().uuidString)/runs.sqlite").path)
    let (run, _) = try store.createRun(NewRun(evalProtocol: chairProtocol, model: model, decoder: DecoderSpec(name: "beam", parameters: ["num_beams": "3"]),
                                              seed: 0, label: "ci-beam", expectedItems: 2, mirageVersion: "test"))
    for i in 0..<2 {
        try store.recordItem(run: run.id, NewItem(key: "\(i + 1)", ordinal: i, imageID: i + 1, outputText: "a dog \(i)", outputTokens: [7, i]),
                             score: gateChairScore(mentions: [("dog", i == 1)], gt: ["dog"], words: 3))
    }
    _ = try store.finishRun(run.id, metrics: RunEvaluation.metrics)
    let side = try GoldenRun(store: store, run: try store.resolveRun("ci-beam"))
    #expect(side.source == "run \(run.id) (ci-beam)")
    let golden = try GoldenRun(jsonl: side.jsonl(), source: "beam.jsonl")
    let report = RegressionGate.exact(run: side, baseline: golden)
    #expect(report.status == .pass && report.compared == 2 && report.identical == 2)
    // The golden file's scores serve --metric: identical runs are never significantly worse.
    #expect(RegressionGate.metric(.chairI, run: side, baseline: golden, worseBy: 0).status == .pass)
}

@Test func exactNamesEachDifferingItemAndItsFirstDifferentToken() {
    let golden = chairSide([[1, 2, 3, 4, 5], [6, 7, 8], [9]], source: "golden.jsonl")
    let run = chairSide([[1, 2, 3, 0, 5], [6, 7], [9]], source: "run 5")
    let report = RegressionGate.exact(run: run, baseline: golden)
    #expect(report.status == .regression && report.status.exitCode == 1)
    #expect(report.compared == 3 && report.identical == 1)
    #expect(report.differences.map(\.item) == ["1", "2"])
    #expect(report.differences.map(\.firstDifferentToken) == [3, 2])   // item 2: the run is a prefix of the golden
    #expect(report.differences[0].baselineText == "w1 w2 w3 w4 w5" && report.differences[0].runText == "w1 w2 w3 w0 w5")
    #expect(report.differences[1].baselineTokenCount == 3 && report.differences[1].runTokenCount == 2)
}

@Test func clippedTextsStartShortlyBeforeTheirFirstDifference() {
    let a = String(repeating: "x", count: 100) + "cat sat on the mat"
    let b = String(repeating: "x", count: 100) + "dog sat on the mat"
    let (x, y) = RegressionGate.clipped(a, b, width: 20, before: 4)
    #expect(x == "…xxxxcat sat on the m…")   // 4 characters before the difference, 20 in all
    #expect(y == "…xxxxdog sat on the m…")
    #expect(RegressionGate.clipped("short", "shorter", width: 72, before: 16) == ("short", "shorter"))
}

@Test func exactRefusesRunsThatAreNotComparable() {
    let golden = chairSide([[1], [2], [3]])
    // Other weights.
    var other = chairSide([[1], [2], [3]])
    other.identity.model.fingerprint = String(repeating: "cd", count: 32) + "+exact"
    var report = RegressionGate.exact(run: other, baseline: golden)
    #expect(report.status == .notComparable && report.status.exitCode == 2)
    #expect(report.reasons.count == 1 && report.reasons[0].contains("other weights") && report.reasons[0].contains("regenerate"))
    // Same weights, other precision.
    other.identity.model.fingerprint = String(repeating: "ab", count: 32) + "+fast"
    report = RegressionGate.exact(run: other, baseline: golden)
    #expect(report.reasons.first?.contains("precision") == true && report.reasons.first?.contains("exact") == true)
    // Imports have no fingerprint: their model name is their identity.
    var importA = chairSide([[1], [2], [3]]), importB = chairSide([[1], [2], [3]])
    importA.identity.model = ModelSpec(name: "llava"); importB.identity.model = ModelSpec(name: "shikra")
    #expect(RegressionGate.exact(run: importB, baseline: importA).reasons.first?.hasPrefix("model: baseline llava, run shikra") == true)
    importB.identity.model.name = "llava"
    #expect(RegressionGate.exact(run: importB, baseline: importA).status == .pass)
    // Another prompt; a missing item and an extra one.
    var prompt = chairProtocol
    prompt.promptTemplate = "Say."
    var moved = chairSide([[1], [2], [3]], evalProtocol: prompt)
    moved.items[2].key = "9"
    report = RegressionGate.exact(run: moved, baseline: golden)
    #expect(report.reasons.count == 3)
    #expect(report.reasons[0].contains("prompt \"Say.\" vs \"Describe.\""))
    #expect(report.reasons[1].contains("lacks 1 of the baseline's 3 items (3)"))
    #expect(report.reasons[2].contains("1 items the baseline lacks (9)"))
    // Another decoder; another seed.
    var beam = chairSide([[1], [2], [3]], decoder: DecoderSpec(name: "beam"))
    beam.identity.seed = 1
    report = RegressionGate.exact(run: beam, baseline: golden)
    #expect(report.reasons.count == 2 && report.reasons[0].hasPrefix("decoder: baseline greedy, run beam"))
    #expect(report.reasons[1] == "seed: baseline 0, run 1")
}

@Test func exactNamesBothFastRoutesWhenOnlyTheRouteDiffers() {
    let digest = String(repeating: "ab", count: 32)
    var baseline = chairSide([[1], [2], [3]]), run = chairSide([[1], [2], [3]])
    // The standard route against one whose CPU took f32 FMAs for both formats of a quantized bf16 checkpoint.
    baseline.identity.model.fingerprint = digest + "+q8+fast"
    run.identity.model.fingerprint = digest + "+q8+fast/q8:f32,bf16:f32"
    var report = RegressionGate.exact(run: run, baseline: baseline)
    #expect(report.status == .notComparable && report.reasons.count == 1)
    var reason = report.reasons.first ?? ""
    #expect(reason.contains("another fast route") && !reason.contains("another precision"), "\(reason)")
    #expect(reason.contains("baseline the standard route (\(FastRoute.standardDescription)), run q8 weights with f32 FMAs, bf16 weights with f32 FMAs (q8:f32,bf16:f32)"), "\(reason)")
    #expect(reason.contains("regenerate the golden run"))
    // Two routes off the standard one, the other way round.
    baseline.identity.model.fingerprint = digest + "+q8+fast/q8:int8,bf16:f32"
    report = RegressionGate.exact(run: baseline, baseline: run)
    reason = report.reasons.first ?? ""
    #expect(reason.contains("baseline q8 weights with f32 FMAs, bf16 weights with f32 FMAs (q8:f32,bf16:f32), run q8 weights with int8 dot products, bf16 weights with f32 FMAs (q8:int8,bf16:f32)"), "\(reason)")
    // The same route is comparable.
    run.identity.model.fingerprint = baseline.identity.model.fingerprint
    #expect(RegressionGate.exact(run: run, baseline: baseline).status == .pass)
    // Quantization differs too, or one side is exact: not only the route, so the precision message stays.
    run.identity.model.fingerprint = digest + "+fast/bf16:f32"
    reason = RegressionGate.exact(run: run, baseline: baseline).reasons.first ?? ""
    #expect(reason.contains("another precision or quantization") && !reason.contains("fast route"), "\(reason)")
    run.identity.model.fingerprint = digest + "+q8+exact"
    reason = RegressionGate.exact(run: run, baseline: baseline).reasons.first ?? ""
    #expect(reason.contains("another precision or quantization") && !reason.contains("fast route"), "\(reason)")
    // Other weights on the same route are other weights.
    run.identity.model.fingerprint = String(repeating: "cd", count: 32) + "+q8+fast/q8:int8,bf16:f32"
    reason = RegressionGate.exact(run: run, baseline: baseline).reasons.first ?? ""
    #expect(reason.contains("other weights"), "\(reason)")
}

@Test func scoringResourcesDoNotChangeTheGenerationIdentity() {
    var demoMode = chairProtocol
    demoMode.vocabularyChecksum = "other"; demoMode.groundTruthChecksum = "other"
    let report = RegressionGate.exact(run: chairSide([[1], [2], [3]], evalProtocol: demoMode), baseline: chairSide([[1], [2], [3]]))
    #expect(report.status == .pass)
    #expect(demoMode.generationIdentity.hash == chairProtocol.generationIdentity.hash && demoMode.hash != chairProtocol.hash)
    // A metric depends on them, so --metric refuses the pair.
    let metric = RegressionGate.metric(.chairI, run: chairSide([[1], [2], [3]], evalProtocol: demoMode), baseline: chairSide([[1], [2], [3]]), worseBy: 0)
    #expect(metric.status == .notComparable && metric.reasons[0].contains("CHAIR vocabulary checksum"))
}

@Test func parameterChangesAreRefusedUnlessAllowed() {
    let golden = chairSide([[1, 2], [3], [4]], decoder: DecoderSpec(name: "opera", parametersJSON: #"{"num_beams":3,"penalty_weights":1}"#))
    let run = chairSide([[1, 5], [3], [4]], decoder: DecoderSpec(name: "opera", parametersJSON: #"{"num_beams":3,"penalty_weights":4}"#))
    let refused = RegressionGate.exact(run: run, baseline: golden)
    #expect(refused.status == .notComparable)
    #expect(refused.reasons == ["decoder parameters differ: penalty_weights 1 → 4; to see which items a parameter change alters, add --allow-parameter-change"])
    let allowed = RegressionGate.exact(run: run, baseline: golden, allowParameterChange: true)
    #expect(allowed.status == .regression && allowed.differences.map(\.item) == ["1"])
    #expect(allowed.notes == ["decoder parameters differ (allowed by --allow-parameter-change): penalty_weights 1 → 4"])
}

@Test func failedItemsAndTextOnlyOutputsAreCompared() {
    let golden = chairSide([[1], [2], [3]])
    var run = chairSide([[1], [2], [3]])
    run.items[1].failure = "out of memory"; run.items[1].tokens = nil; run.items[1].text = ""
    run.items[2].tokens = nil   // an imported output: text only, equal text
    let report = RegressionGate.exact(run: run, baseline: golden)
    #expect(report.status == .regression && report.differences.map(\.item) == ["2"])
    #expect(report.differences[0].failure == "the run's item failed: out of memory")
    #expect(report.notes == ["1 items were compared by text: the items carry no token ids (imported outputs)"])
}

@Test func metricGateFailsOnlyWhenTheWholeIntervalIsBeyondTheMargin() {
    let tokens = Array(repeating: [1], count: 40)
    let baseline = GoldenRun(identity: chairSide([]).identity, items: chairSide(tokens, hallucinated: (0..<40).map { $0 % 4 == 0 ? 1 : 0 }).items,
                             source: "baseline")
    // The run hallucinates 2 of 4 mentions on every image: CHAIR_I 50% vs the baseline's 10/160 = 6.25%.
    let worse = GoldenRun(identity: baseline.identity, items: chairSide(tokens, hallucinated: Array(repeating: 2, count: 40)).items, source: "run")
    let fail = RegressionGate.metric(.chairI, run: worse, baseline: baseline, worseBy: 0.01, samples: 500, seed: 3)
    #expect(fail.status == .regression)
    #expect(fail.baselineValue == 0.0625 && fail.runValue == 0.5)
    #expect(abs(fail.difference! - 0.4375) < 1e-12)
    let interval = try! #require(fail.interval)
    #expect(interval.lower > 0.01 && interval.lower <= 0.4375 && interval.upper >= 0.4375 && fail.units == 40)
    // Allowed to worsen by 60 points: the interval does not exclude the margin.
    #expect(RegressionGate.metric(.chairI, run: worse, baseline: baseline, worseBy: 0.6, samples: 500, seed: 3).status == .pass)
    // Recall is higher-is-better: the run recalls 2 of 4 objects per image, the baseline 150 of 160.
    let recall = RegressionGate.metric(.recall, run: worse, baseline: baseline, worseBy: 0.05, samples: 200)
    #expect(recall.status == .regression && recall.runValue == 0.5 && recall.interval!.upper < -0.05)
    // The reverse direction (the run is better) passes even with no margin.
    #expect(RegressionGate.metric(.chairS, run: baseline, baseline: worse, worseBy: 0, samples: 200).status == .pass)
    // A POPE metric on CHAIR runs is refused, naming the metrics that fit.
    let wrong = RegressionGate.metric(.popeF1, run: worse, baseline: baseline, worseBy: 0)
    #expect(wrong.status == .notComparable && wrong.reasons[0].contains("chair_s, chair_i, recall"))
}

@Test func popeAccuracyIsResampledByQuestion() {
    func side(correctEvery k: Int, _ source: String) -> GoldenRun {
        let items = (0..<60).map { q -> GoldenRun.Item in
            let label: POPELabel = q % 2 == 0 ? .yes : .no
            let right = q % k != 0
            let parsed: POPEPrediction = right == (label == .yes) ? .yes : .no
            return GoldenRun.Item(key: "\(q)", ordinal: q, imageID: q / 6, questionID: q, tokens: [parsed == .yes ? 1 : 2],
                                  text: parsed.rawValue, score: .pope(PopeItemScore(label: label, parsed: parsed)))
        }
        return GoldenRun(identity: .init(model: model, evalProtocol: EvalProtocol(task: .pope, imageIDs: Array(0..<10), split: "random"),
                                         decoder: DecoderSpec(name: "greedy"), seed: 0), items: items, source: source)
    }
    let good = side(correctEvery: 30, "good"), bad = side(correctEvery: 2, "bad")
    let report = RegressionGate.metric(.popeAccuracy, run: bad, baseline: good, worseBy: 0.05, samples: 500)
    #expect(report.status == .regression && report.unitName == "questions" && report.units == 60)
    #expect(abs(report.baselineValue! - 58.0 / 60) < 1e-12 && report.runValue == 0.5)
    #expect(RegressionGate.metric(.popeAccuracy, run: good, baseline: bad, worseBy: 0, samples: 500).status == .pass)
}

@Test func malformedGoldenFilesNameTheLineAndTheFix() throws {
    let good = chairSide([[1], [2]]).jsonl()
    #expect(throws: GoldenFileError.malformed(file: "g.jsonl", line: 1, "the first line is not a golden header (\"format\": \"mirage-golden\"); golden files are written by `mirage check --write-golden`")) {
        try GoldenRun(jsonl: "{\"item\":\"1\"}\n", source: "g.jsonl")
    }
    let lines = good.split(separator: "\n").map(String.init)
    #expect(throws: GoldenFileError.malformed(file: "g.jsonl", line: 3, "\"tokens\" must be a list of token ids")) {
        try GoldenRun(jsonl: [lines[0], lines[1], lines[2].replacingOccurrences(of: #""tokens":[2]"#, with: #""tokens":"2""#)].joined(separator: "\n"),
                      source: "g.jsonl")
    }
    #expect(throws: GoldenFileError.malformed(file: "g.jsonl", line: 1, "the header says 2 items but the file has 1 item lines: the file was cut or edited; regenerate it")) {
        try GoldenRun(jsonl: lines[0] + "\n" + lines[1] + "\n", source: "g.jsonl")
    }
    #expect(throws: GoldenFileError.malformed(file: "g.jsonl", line: 3, "item \"1\" appears twice")) {
        try GoldenRun(jsonl: [lines[0], lines[1], lines[1]].joined(separator: "\n"), source: "g.jsonl")
    }
}

@Test func genericReplicatesMatchTheChairBootstrap() {
    // chairDelta is built on replicates(): the same draws give the same interval as resampling by hand.
    var method: [Int: ChairTotals] = [:], baseline: [Int: ChairTotals] = [:]
    for i in 1...30 {
        var m = ChairTotals(); m.captions = 1; m.mentions = 3; m.hallucinatedMentions = i % 3; m.hallucinatedCaptions = i % 3 > 0 ? 1 : 0
        var b = ChairTotals(); b.captions = 1; b.mentions = 3; b.hallucinatedMentions = i % 2; b.hallucinatedCaptions = i % 2
        method[i] = m; baseline[i] = b
    }
    let r = PairedBootstrap.chairDelta(method: method, baseline: baseline, samples: 300, seed: 9)
    var rng = SplitMix64(seed: 9)
    var deltas: [Double] = []
    for _ in 0..<300 {
        var mt = ChairTotals(), bt = ChairTotals()
        for _ in 0..<30 { let k = rng.uniform(30) + 1; mt = mt + method[k]!; bt = bt + baseline[k]! }
        deltas.append(mt.chairI - bt.chairI)
    }
    #expect(r.chairI == PairedBootstrap.interval(deltas, level: 0.95))
}

/// A CHAIR item score with the given mentions (word, hallucinated), ground truth and word count.
private func gateChairScore(mentions: [(String, Bool)], gt: [String], words: Int) -> ItemScore {
    .chair(ChairItemScore(mentions: mentions.enumerated().map {
        ObjectMention(word: $0.element.0, node: $0.element.0, position: $0.offset, hallucinated: $0.element.1)
    }, groundTruth: gt, wordCount: words))
}
