import Foundation
import Testing
import MirageData
import MirageDecoding
import MirageEngine
import MirageTokenizers
import MirageKernels
import MirageMetrics
import MirageModels
import MirageStore
import MirageTestSupport
@testable import MirageRunner

/// The message of a thrown `RunnerError`, or nil when nothing (or something else) was thrown.
func runnerError(_ body: () throws -> Void) -> String? {
    do { try body() } catch let e as RunnerError { return e.description } catch { return "other error: \(error)" }
    return nil
}

@Suite struct ProtocolFileTests {
    @Test func chairProtocolReadsEveryField() throws {
        let p = try RunProtocol.parse("""
        name: my-chair
        description: A test protocol
        source: paper X
        task: chair
        images: {ids: [42, 7, 9]}
        prompt: Describe it.
        template: "SYS USER: <image> {prompt} ASSISTANT:"
        templates: {qwen2: chatml-nosystem}
        max_new_tokens: 64
        pad_to_square: true
        truncate_incomplete: true
        """, file: "p.yaml", defaultName: "p")
        #expect(p.name == "my-chair" && p.description == "A test protocol" && p.source == "paper X")
        #expect(p.task == .chair && p.images == .ids([42, 7, 9]) && p.prompt == "Describe it.")
        #expect(p.template == .custom("SYS USER: <image> {prompt} ASSISTANT:"))
        #expect(p.template(for: .qwen2) == .named("chatml-nosystem") && p.template(for: .llama) == p.template)
        #expect(p.maxNewTokens == 64 && p.padToSquare && p.truncateIncomplete)
        #expect(p.questions == nil && p.answerParser == nil)
        #expect(try RunProtocol.render(p.template, text: p.userText()) == "SYS USER: <image> Describe it. ASSISTANT:")
        #expect(try RunProtocol.render(.named("llava15"), text: "Hi") == "USER: <image>\nHi ASSISTANT:")
    }

    @Test func popeProtocolReadsEveryField() throws {
        let p = try RunProtocol.parse("""
        task: pope
        questions: {source: pope-coco-opera, split: adversarial}
        prompt: "{question} Answer yes or no."
        images: {sample: 20, seed: 3}
        max_new_tokens: 10
        answer_parser: strict
        """, file: "q.yaml", defaultName: "q")
        #expect(p.name == "q" && p.task == .pope && p.questions == .dataSource(id: "pope-coco-opera", split: .adversarial))
        #expect(p.images == .sample(count: 20, seed: 3) && p.answerParser == .strict && !p.padToSquare)
        #expect(p.userText(question: "Is there a cat?") == "Is there a cat? Answer yes or no.")
        #expect(p.template == .named("llava15"))
        let defaults = try RunProtocol.parse("task: pope\nquestions: {path: q.json}\nmax_new_tokens: 5\n",
                                             file: "d.yaml", defaultName: "d")
        #expect(defaults.images == .questionFile && defaults.prompt == "{question}" && defaults.answerParser == .opera)
        #expect(defaults.questions == .file("q.json"))
    }

    @Test func protocolErrorsNameFileAndKey() {
        func error(_ yaml: String) -> String? { runnerError { _ = try RunProtocol.parse(yaml, file: "bad.yaml", defaultName: "bad") } }
        let chair = "task: chair\nprompt: x\nmax_new_tokens: 5\nimages: {ids: [1]}\n"
        #expect(error("prompt: x\nmax_new_tokens: 5\n")?.hasPrefix("bad.yaml: task: missing") == true)
        #expect(error("task: vqa\n")?.contains("bad.yaml: task: 'vqa' is not a task; use chair or pope") == true)
        #expect(error(chair + "max_tokens: 3\n")?.hasPrefix("bad.yaml: max_tokens: unknown key") == true)
        #expect(error("task: chair\nprompt: x\nimages: {ids: [1]}\n")?.hasPrefix("bad.yaml: max_new_tokens: missing") == true)
        #expect(error("task: chair\nprompt: x\nmax_new_tokens: 0\nimages: {ids: [1]}\n")?.contains("max_new_tokens: 0 is out of range") == true)
        #expect(error("task: chair\nprompt: x\nmax_new_tokens: 5\n")?.hasPrefix("bad.yaml: images: missing") == true)
        #expect(error("task: chair\nprompt: x\nmax_new_tokens: 5\nimages: {ids: [1, 1]}\n")?.contains("images.ids: image id 1 appears twice") == true)
        #expect(error("task: chair\nprompt: x\nmax_new_tokens: 5\nimages: {ids: [1], sample: 3}\n")?.contains("give either ids or sample") == true)
        #expect(error("task: chair\nprompt: x\nmax_new_tokens: 5\nimages: {ids: [a]}\n")?.contains("images.ids[0]: expected a whole number") == true)
        #expect(error("task: chair\nprompt: x\nmax_new_tokens: 5\nimages: {count: 3}\n")?.contains("images.count: unknown key") == true)
        #expect(error(chair + "template: fancy\n")?.contains("bad.yaml: template: 'fancy' is neither a template name") == true)
        #expect(error(chair + "templates: {mistral: plain}\n")?.contains("templates.mistral: not a decoder architecture") == true)
        #expect(error(chair + "answer_parser: opera\n")?.contains("answer_parser: applies to POPE protocols only") == true)
        #expect(error(chair + "pad_to_square: maybe\n")?.contains("pad_to_square: expected true or false") == true)
        let pope = "task: pope\nmax_new_tokens: 5\n"
        #expect(error(pope)?.hasPrefix("bad.yaml: questions: missing") == true)
        #expect(error(pope + "questions: {source: pope-coco}\n")?.contains("questions.split: missing") == true)
        #expect(error(pope + "questions: {source: pope-coco, split: easy}\n")?.contains("questions.split: 'easy' is not a split") == true)
        #expect(error(pope + "questions: {path: q.json}\nprompt: Is it?\n")?.contains("prompt: a POPE prompt must contain {question}") == true)
        #expect(error(pope + "questions: {path: q.json}\ntruncate_incomplete: true\n")?.contains("truncate_incomplete: applies to CHAIR") == true)
        #expect(error(pope + "questions: {path: q.json}\nanswer_parser: llm\n")?.contains("answer_parser: 'llm' is not a parser") == true)
        #expect(error("- a\n- b\n")?.contains("the top level must be a mapping") == true)
        #expect(error("task: [chair\n")?.contains("not valid YAML") == true)
    }

    @Test func sampleIgnoresInputOrderAndDependsOnSeed() {
        let ids = Array(stride(from: 9, through: 9000, by: 9))
        let a = ImageSampler.sample(ids, count: 50, seed: 7)
        let b = ImageSampler.sample(ids.reversed() + ids.prefix(30), count: 50, seed: 7)   // order and duplicates
        var rng = SplitMix64(seed: 99)
        let c = ImageSampler.sample(ids.shuffled(using: &rng), count: 50, seed: 7)
        #expect(a == b && a == c)
        #expect(a.count == 50 && a == a.sorted() && Set(a).isSubset(of: Set(ids)))
        #expect(ImageSampler.sample(ids, count: 50, seed: 8) != a)
        #expect(ImageSampler.sample([3, 1, 2], count: 10, seed: 0) == [1, 2, 3])
    }

    @Test func shippedProtocolsParse() throws {
        let library = ProtocolLibrary(folders: [SharedData.repositoryRoot.appendingPathComponent("Annotations/protocols")])
        let names = library.names
        for name in ["opera-chair-512", "opera-chair-64", "opera-pope-random", "opera-pope-popular", "opera-pope-adversarial",
                     "llava-pope-random", "llava-pope-popular", "llava-pope-adversarial"] {
            #expect(names.contains(name))
            let p = try library.resolve(name)
            #expect(p.name == name && p.source != nil && p.description != nil)
            // OPERA's protocols serve its four models: per-family templates and the families' paper settings.
            #expect(p.paperSettings == name.hasPrefix("opera-"))
            if name.hasPrefix("opera-") {
                #expect(Set(p.templates.keys) == ["qwen2", "shikra", "minigpt4", "instructblip-lavis"])
                #expect(try RunProtocol.render(p.templates["minigpt4"]!, text: "Q?") == "###Human: <Img><image></Img> Q? ###Assistant:")
                #expect(try RunProtocol.render(p.templates["instructblip-lavis"]!, text: "Q?") == "<image>Q?")
            }
        }
        let chair512 = try library.resolve("opera-chair-512"), chair64 = try library.resolve("opera-chair-64")
        #expect(chair512.maxNewTokens == 512 && !chair512.truncateIncomplete && chair64.maxNewTokens == 64 && chair64.truncateIncomplete)
        guard case .ids(let ids) = chair512.images else { Issue.record("opera-chair-512 must list its ids"); return }
        #expect(ids.count == 500 && chair64.images == chair512.images)
        #expect(try RunProtocol.render(chair512.template, text: chair512.prompt) == "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions.USER: <image> Please describe this image in detail. ASSISTANT:")
        let operaPope = try library.resolve("opera-pope-popular")
        #expect(operaPope.questions == .dataSource(id: "pope-coco-opera", split: .popular) && operaPope.maxNewTokens == 10 && operaPope.answerParser == .opera)
        let llavaPope = try library.resolve("llava-pope-random")
        #expect(llavaPope.questions == .dataSource(id: "pope-coco-vcd", split: .random) && llavaPope.answerParser == .pope && llavaPope.padToSquare)
        #expect(try RunProtocol.render(llavaPope.template, text: llavaPope.userText(question: "Is there a dog in the image?"))
                == LlavaChatTemplate.llava15System + " USER: <image>\nIs there a dog in the image?\nAnswer the question using a single word or phrase. ASSISTANT:")
        #expect(runnerError { _ = try library.resolve("no-such-protocol") }?.contains("known protocols: llava-pope-adversarial") == true)
    }

    /// The shipped 500 ids are the ids of OPERA's released LLaVA-1.5, MiniGPT-4 and Shikra caption logs.
    @Test(.enabled(if: SharedData.has("chair/opera-logs/llava-1.5-greedy.jsonl"), SharedData.missingMessage))
    func operaChairIdsAreTheReleasedLogs() throws {
        let library = ProtocolLibrary(folders: [SharedData.repositoryRoot.appendingPathComponent("Annotations/protocols")])
        guard case .ids(let ids) = try library.resolve("opera-chair-512").images else { Issue.record("no ids"); return }
        for model in ["llava-1.5", "minigpt4", "shikra"] {
            for decoder in ["greedy", "beam5", "ours"] {
                let file = SharedData.url("chair/opera-logs/\(model)-\(decoder).jsonl")
                let captions = try ChairCaptionFile.read(file, imageIdKey: "image_id", captionKey: "caption")
                #expect(captions.captions.map(\.imageId).sorted() == ids, "\(model)-\(decoder)")
            }
        }
    }
}

@Suite struct ExperimentFileTests {
    @Test func experimentReadsEveryField() throws {
        let base = URL(fileURLWithPath: "/data/exp")
        let e = try Experiment.parse("""
        models: [models/llava, /abs/other]
        protocols: [opera-chair-512, ./mine.yaml]
        decoders:
          - greedy
          - opera:opera-paper,num_beams=3
          - {name: beam, preset: halc-baseline, params: {num_beams: 4, length_penalty: 0.5}}
        seeds: [0, 5]
        limit: 20
        images: coco/val2014
        annotations:
          instances: [ann/instances_val2014.json]
          chair_ground_truth: /gt/coco2014_gt_objects.json
        db: results.sqlite
        quantize: q8
        threads: 2
        shard: 1/3
        record_attention: true
        prefix_cache: 256
        """, file: "e.yaml", baseFolder: base)
        #expect(e.models == ["/data/exp/models/llava", "/abs/other"])
        #expect(e.protocols == ["opera-chair-512", "/data/exp/./mine.yaml"])
        #expect(e.decoders == [DecoderChoice(name: "greedy"),
                               DecoderChoice(name: "opera", preset: "opera-paper", overrides: [.init("num_beams", "3")]),
                               DecoderChoice(name: "beam", preset: "halc-baseline",
                                             overrides: [.init("length_penalty", "0.5"), .init("num_beams", "4")])])
        #expect(e.seeds == [0, 5] && e.limit == 20 && e.images == "/data/exp/coco/val2014")
        #expect(e.instances == ["/data/exp/ann/instances_val2014.json"] && e.groundTruth == "/gt/coco2014_gt_objects.json")
        #expect(e.database == "/data/exp/results.sqlite" && e.quantize == "q8" && e.threads == 2)
        let shard = try Shard(index: 1, count: 3)
        #expect(e.shard == shard && e.recordAttention && e.prefixCacheMB == 256)
        #expect(try Experiment.parse("prefix_cache: 0\n", file: "e.yaml").prefixCacheMB == 0)
        #expect(runnerError { _ = try Experiment.parse("prefix_cache: -1\n", file: "e.yaml") }?.contains("prefix_cache") == true)
        let single = try Experiment.parse("model: m\nprotocol: p\ndecoder: greedy\nseed: 3\n", file: "s.yaml")
        #expect(single.models == ["m"] && single.protocols == ["p"] && single.decoders == [DecoderChoice(name: "greedy")] && single.seeds == [3])
        #expect(Experiment().seeds == [0] && !Experiment().recordAttention && Experiment().decoders == [DecoderChoice(name: "greedy")])
    }

    @Test func experimentErrorsNameFileAndKey() {
        func error(_ yaml: String) -> String? { runnerError { _ = try Experiment.parse(yaml, file: "exp.yaml") } }
        #expect(error("model: a\nmodels: [b]\n")?.contains("exp.yaml: models: give models or model, not both") == true)
        #expect(error("decoders: [\"opera,num_beams\"]\n")?.contains("exp.yaml: decoders[0]: decoder 'opera,num_beams': 'num_beams' is not k=v") == true)
        #expect(error("decoders: [{preset: x}]\n")?.contains("exp.yaml: decoders[0].name: missing") == true)
        #expect(error("decoders: [{name: beam, parms: {}}]\n")?.contains("decoders[0].parms: unknown key") == true)
        #expect(error("seeds: [-1]\n")?.contains("exp.yaml: seeds: seed -1 is negative") == true)
        #expect(error("seeds: []\n")?.contains("exp.yaml: seeds: the list is empty") == true)
        #expect(error("limit: 0\n")?.contains("exp.yaml: limit: 0 is out of range") == true)
        #expect(error("limit: ten\n")?.contains("exp.yaml: limit: expected a whole number, got 'ten'") == true)
        #expect(error("quantize: q4\n")?.contains("exp.yaml: quantize: 'q4' is not a format") == true)
        #expect(error("shard: 2/2\n")?.contains("exp.yaml: shard: '2/2' is not i/n") == true)
        #expect(error("annotations: {gt: x}\n")?.contains("exp.yaml: annotations.gt: unknown key") == true)
        #expect(error("record_attention: sometimes\n")?.contains("record_attention: expected true or false") == true)
        #expect(error("modle: x\n")?.contains("exp.yaml: modle: unknown key; accepted keys here:") == true)
        // The accepted keys are the ones the parser asks for, every spelling included.
        let accepted = error("modle: x\n")?.components(separatedBy: "accepted keys here: ").last?.components(separatedBy: ", ")
        #expect(accepted == ["annotations", "db", "decoder", "decoders", "images", "label", "limit", "model", "models",
                             "precision", "prefix_cache", "protocol", "protocols", "quantize", "record_attention", "seed", "seeds", "shard", "threads",
                             "vision_tower"])
        for key in accepted ?? [] where !["annotations", "decoder", "decoders"].contains(key) {
            #expect(!(error("\(key): 1\nmodle: x\n")?.contains("\(key): unknown key") ?? false), "\(key) is listed but refused")
        }
        #expect(error("seed: 1\nseeds: [2]\n")?.contains("exp.yaml: seeds: give seeds or seed, not both") == true)
        #expect((try? Experiment.parse("label: \"llava-{decoder}\"\n", file: "e.yaml"))?.label == "llava-{decoder}")
        #expect(runnerError { try Experiment().validate() }?.contains("no model") == true)
        var e = Experiment()
        e.models = ["m"]; e.protocols = ["p"]; e.decoders = [DecoderChoice(name: "greedy", overrides: [.init("num_beams", "2")])]
        #expect(runnerError { try e.validate() }?.contains("decoder 'greedy,num_beams=2'") == true)
        e.decoders = [DecoderChoice(name: "greedy")]
        e.models = ["/nonexistent/model"]
        #expect(runnerError { try e.validate() }?.contains("model folder /nonexistent/model has no config.json") == true)
    }

    @Test func decoderChoiceTextRoundTrips() throws {
        for text in ["greedy", "opera:opera-paper", "beam,num_beams=3", "opera:opera-paper,num_beams=3,threshold=25"] {
            #expect(try DecoderChoice(parsing: text).description == text)
        }
        let d = try DecoderChoice(parsing: "beam,num_beams=3").makeDecoder()
        #expect(d.name == "beam" && d.parameters["num_beams"] == .int(3))
        #expect(runnerError { _ = try DecoderChoice(parsing: ":x") }?.contains("no decoder name") == true)
        #expect(runnerError { _ = try DecoderChoice(parsing: "opera:") }?.contains("empty preset") == true)
        #expect(runnerError { _ = try DecoderChoice(parsing: "nope").makeDecoder() }?.contains("decoder 'nope'") == true)
    }

    @Test func shardsPartitionImagesDeterministically() throws {
        let zero = try Shard(index: 0, count: 2)
        #expect(try Shard(parsing: "0/2") == zero)
        for bad in ["2/2", "-1/2", "1", "a/b", "0/0"] {
            #expect(runnerError { _ = try Shard(parsing: bad) } == "--shard takes i/n with 0 ≤ i < n (e.g. 0/2), got '\(bad)'")
        }
        let ids = Array(1...600)
        let shards = try (0..<3).map { try Shard(index: $0, count: 3) }
        let parts = shards.map { s in ids.filter { s.contains(imageID: $0) } }
        #expect(Set(parts.flatMap { $0 }) == Set(ids) && parts.map(\.count).reduce(0, +) == ids.count)
        #expect(parts.allSatisfy { $0.count > 150 }, "roughly balanced: \(parts.map(\.count))")
        #expect(ExperimentRunner.sourceHash(resumeKey: "abc", shard: shards[1]) == "abc:shard=1/3")
        #expect(ExperimentRunner.sourceHash(resumeKey: "abc", shard: nil) == "abc")
    }
}

@Suite struct RunnerPartsTests {
    @Test func memoryAvailableIsReadFromMeminfo() {
        let text = "MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:   12000000 kB\n"
        let expected: Int64 = 12_000_000 * 1024
        #expect(MemoryEstimate.availableBytes(meminfo: text) == expected)
        #expect(MemoryEstimate.availableBytes(meminfo: "MemTotal: 5 kB\n") == nil)
        #expect(MemoryEstimate.availableBytes(meminfo: nil) == nil)
    }

    @Test func memoryEstimateCountsWeightsKVAndRefuses() throws {
        let folder = TestTemporary.root.appendingPathComponent("mirage-runner-mem-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let spec = SyntheticLlavaSpec(text: SyntheticModelSpec(architecture: .llama, size: .tiny, seed: 1),
                                      vision: SyntheticVisionSpec(kind: .clip, size: .tiny, seed: 1))
        try spec.write(to: folder)
        let store = try TensorStore(folder: folder)
        let fileBytes = store.tensorNames.reduce(Int64(0)) { $0 + Int64(store.entry($1)!.byteCount) }
        let plain = try MemoryEstimate.estimate(folder: folder, quantize: nil, promptTokens: 100, maxNewTokens: 28, sequences: 1)
        #expect(plain.weightBytes == fileBytes)
        let t = spec.config.text
        #expect(plain.kvCacheBytes == Int64(t.numLayers * 2 * t.numKVHeads * t.headDim * 4 * 128))
        let beams = try MemoryEstimate.estimate(folder: folder, quantize: nil, promptTokens: 100, maxNewTokens: 28, sequences: 5)
        // Five beams share the 100 prompt rows and add 28 rows each.
        let perRow = Int64(t.numLayers * 2 * t.numKVHeads * t.headDim * 4)
        #expect(beams.kvCacheBytes == perRow * (100 + 5 * 28))
        let contrast = try MemoryEstimate.estimate(folder: folder, quantize: nil, promptTokens: 100, maxNewTokens: 28, sequences: 2,
                                                   promptCopies: 2)
        #expect(contrast.kvCacheBytes == perRow * (2 * 100 + 2 * 28))
        // max_new_tokens may be anything up to Int.max: generation stops at the model's context, and so does the
        // estimate (no overflow).
        let context = t.maxPositionEmbeddings
        let huge = try MemoryEstimate.estimate(folder: folder, quantize: nil, promptTokens: 100, maxNewTokens: Int.max, sequences: 5)
        #expect(huge.kvCacheBytes == perRow * Int64(100 + 5 * (context - 100)))
        #expect(MemoryEstimate.generationLimit(maxNewTokens: Int.max, promptTokens: 100, context: context) == context - 100)
        #expect(MemoryEstimate.generationLimit(maxNewTokens: 28, promptTokens: 100, context: context) == 28)
        #expect(MemoryEstimate.generationLimit(maxNewTokens: 28, promptTokens: context + 5, context: context) == 1)
        let q8 = try MemoryEstimate.estimate(folder: folder, quantize: .q8, promptTokens: 100, maxNewTokens: 28, sequences: 1)
        #expect(q8.weightBytes < plain.weightBytes)
        #expect(runnerError { try plain.check(available: plain.totalBytes + 1, quantized: false) } == nil)
        #expect(runnerError { try plain.check(available: nil, quantized: false) } == nil)
        let refusal = runnerError { try plain.check(available: 1 << 20, quantized: false) }
        #expect(refusal?.hasPrefix("this run needs ~0.") == true && refusal?.contains("0.0 GiB available; use --quantize q8") == true
                && refusal?.contains("--ignore-memory-check") == true)
        #expect(runnerError { try q8.check(available: 1 << 20, quantized: true) }?.contains("--quantize") == false)
        // The fingerprint follows the weights' header, not the folder's name.
        let a = try ModelFingerprint.compute(folder: folder)
        let again = try ModelFingerprint.compute(folder: folder)
        #expect(a.count == 64 && a == again)
    }

    @Test func tallyComputesRunningMetricsAndGroupsFailures() {
        var t = RunTally(total: 5)
        let hall = ChairItemScore(mentions: [ObjectMention(word: "dog", node: "dog", position: 1, hallucinated: true),
                                             ObjectMention(word: "cat", node: "cat", position: 3, hallucinated: false)],
                                  groundTruth: ["cat"], wordCount: 4)
        let clean = ChairItemScore(mentions: [ObjectMention(word: "cat", node: "cat", position: 0, hallucinated: false)],
                                   groundTruth: ["cat"], wordCount: 2)
        t.add(score: .chair(hall), failure: nil)
        t.add(score: .chair(clean), failure: nil)
        t.add(score: nil, failure: "missing image: 1.jpg not found")
        t.add(score: nil, failure: "missing image: 2.jpg not found")
        t.add(score: nil, failure: "unreadable image: 3.jpg: truncated")
        #expect(t.done == 5 && t.failed == 3 && t.chairS == 0.5 && t.chairI == 1.0 / 3)
        #expect(t.metricsText == "CHAIR_S 50.0 CHAIR_I 33.3")
        #expect(t.failureSummary == "3 failed: 2 missing image (e.g. missing image: 1.jpg not found); 1 unreadable image (e.g. unreadable image: 3.jpg: truncated)")
        var p = RunTally(total: 2)
        p.add(score: .pope(PopeItemScore(label: .yes, parsed: .yes)), failure: nil)
        p.add(score: .pope(PopeItemScore(label: .no, parsed: .yes)), failure: nil)
        #expect(p.accuracy == 0.5 && p.metricsText == "accuracy 50.0" && p.failureSummary == nil)
        let line = RunProgress.line(name: "run 1", tally: t, sessionItems: 5, sessionSeconds: 60)
        #expect(line == "[run 1] 5/5 items, 5.0 items/min, CHAIR_S 50.0 CHAIR_I 33.3, 3 failed")
        let partial = RunProgress.line(name: "r", tally: RunTally(total: 10), sessionItems: 2, sessionSeconds: 60)
        #expect(partial == "[r] 0/10 items, 2.0 items/min, ETA 5m00s")
    }

    @Test func progressIsQuietOffTerminalAndJSONPerItem() {
        var out = ""
        let quiet = RunProgress(isTerminal: false, json: false, write: { out += $0 })
        var t = RunTally(total: 1)
        t.add(score: nil, failure: "missing image: x")
        quiet.item(run: 1, name: "r", key: "7", tally: t, status: "failed", reason: "missing image: x", seconds: 0.1,
                   sessionItems: 1, sessionSeconds: 1)
        #expect(out.isEmpty)
        quiet.finished(name: "r", tally: t, sessionItems: 1, sessionSeconds: 1)
        #expect(out.hasPrefix("[r] 1/1 items") && out.hasSuffix("done\n  1 failed: 1 missing image (e.g. missing image: x)\n"))
        out = ""
        let json = RunProgress(isTerminal: false, json: true, write: { out += $0 })
        json.item(run: 3, name: "r", key: "7", tally: t, status: "failed", reason: "missing image: x", seconds: 0.5,
                  sessionItems: 1, sessionSeconds: 1)
        let object = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        #expect(object?["run"] as? Int == 3 && object?["item"] as? String == "7" && object?["status"] as? String == "failed")
        #expect(object?["failure_reason"] as? String == "missing image: x" && object?["total"] as? Int == 1)
        out = ""
        // Terminal: a live block with a line per unfinished run; a finished run's line moves above it and stays.
        let tty = RunProgress(isTerminal: true, json: false, write: { out += $0 })
        var a = RunTally(total: 2), b = RunTally(total: 4)
        a.add(score: nil, failure: nil); b.add(score: nil, failure: nil)
        tty.item(run: 1, name: "a", key: "1", tally: a, status: "ok", reason: nil, seconds: 0.1, sessionItems: 1, sessionSeconds: 1)
        #expect(out == "\r\u{1B}[2K[a] 1/2 items, 60.0 items/min, ETA 1s\n\u{1B}[J")
        out = ""
        tty.item(run: 2, name: "b", key: "1", tally: b, status: "ok", reason: nil, seconds: 0.1, sessionItems: 2, sessionSeconds: 1)
        #expect(out.isEmpty, "redraws are throttled to five a second")
        a.add(score: nil, failure: nil)
        tty.finished(name: "a", tally: a, sessionItems: 2, sessionSeconds: 1)
        #expect(out == "\u{1B}[1A\r\u{1B}[J[a] 2/2 items, 120.0 items/min — done\n"
                + "\u{1B}[2K[b] 1/4 items, 120.0 items/min, ETA 2s\n\u{1B}[J")
        out = ""
        tty.note("note: hello")
        #expect(out == "\u{1B}[1A\r\u{1B}[Jnote: hello\n\u{1B}[2K[b] 1/4 items, 120.0 items/min, ETA 2s\n\u{1B}[J")
    }

    @Test func imageSetFindsCOCONamePatterns() throws {
        let folder = TestTemporary.root.appendingPathComponent("mirage-runner-img-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        for name in ["COCO_val2014_000000000042.jpg", "COCO_train2014_000000000043.jpg", "000000000044.jpg", "custom-45.png"] {
            FileManager.default.createFile(atPath: folder.appendingPathComponent(name).path, contents: Data([0]))
        }
        let instances = folder.appendingPathComponent("instances.json")
        try Data(#"{"images": [{"id": 45, "file_name": "custom-45.png"}, {"id": 42, "file_name": "COCO_val2014_000000000042.jpg"}], "annotations": [], "categories": []}"#.utf8).write(to: instances)
        let set = try ImageSet(folder: folder, instances: [instances])
        #expect(set.url(for: 42)?.lastPathComponent == "COCO_val2014_000000000042.jpg")
        #expect(set.url(for: 43)?.lastPathComponent == "COCO_train2014_000000000043.jpg")
        #expect(set.url(for: 44)?.lastPathComponent == "000000000044.jpg")
        #expect(set.url(for: 45)?.lastPathComponent == "custom-45.png")
        #expect(set.url(for: 46) == nil && set.missingReason(for: 46).contains("COCO_val2014_000000000046.jpg"))
        #expect(set.annotatedIDs == [42, 45])
        #expect(runnerError { _ = try ImageSet(folder: folder.appendingPathComponent("nope")) }?.contains("does not exist") == true)
    }
}

/// The runner from Swift: item observers see every decoded item with its prompt layout; failed items are not
/// observed; `recordAttention` needs an observer.
@Suite struct RunnerAPITests {
    final class Recorder: RunItemObserver {
        var calls: [(run: Int64, key: String, imageSpan: Range<Int>?, tokens: Int)] = []
        func itemRecorded(run: Int64, itemKey: String, model: LanguageModel, prompt: PromptLayout, result: DecodeResult,
                          tokenizer: Tokenizer?) throws {
            calls.append((run, itemKey, prompt.imageSpan, result.tokens.count))
        }
    }

    @Test(.enabled(if: SharedData.has("coco/images/COCO_val2014_000000000192.jpg"), SharedData.missingMessage))
    func observersSeeEveryDecodedItem() throws {
        var (folder, experiment, store, resources) = try Self.setUp(images: SharedData.url("coco/images").path)
        defer { try? FileManager.default.removeItem(at: folder) }
        var messages = ""
        let progress = RunProgress(isTerminal: false, json: false, write: { messages += $0 })

        experiment.recordAttention = true
        let refused = ExperimentRunner(experiment: experiment, store: store, resources: resources,
                                       options: RunnerOptions(mirageVersion: "test"), progress: progress)
        #expect(runnerError { _ = try refused.run() }?.contains("needs an attention recorder") == true)

        let recorder = Recorder()
        let runner = ExperimentRunner(experiment: experiment, store: store, resources: resources,
                                      options: RunnerOptions(mirageVersion: "test"), progress: progress)
        runner.itemObservers = [recorder]
        let outcomes = try runner.run()
        #expect(outcomes.count == 2 && outcomes.allSatisfy { $0.run.status == .complete && $0.tally.failed == 1 })
        #expect(outcomes.map { $0.metrics["items"] } == [3, 3] && outcomes.map { $0.metrics["failed_items"] } == [1, 1])
        // Image-major: both runs' items of image 192, then of 241; image 9 is missing (not observed).
        #expect(recorder.calls.map(\.key) == ["1", "2", "1", "2", "3", "3"])
        #expect(recorder.calls.map(\.run) == [1, 1, 2, 2, 1, 2])
        #expect(recorder.calls.allSatisfy { $0.imageSpan?.count == 16 && $0.tokens > 0 })
        #expect(messages.split(separator: "\n").filter { $0.hasPrefix("[run ") }.count == 2)
        // Resuming a complete experiment decodes nothing.
        let again = ExperimentRunner(experiment: experiment, store: store, resources: resources,
                                     options: RunnerOptions(mirageVersion: "test"), progress: progress)
        let second = Recorder()
        again.itemObservers = [second]
        #expect(try again.run().allSatisfy(\.wasComplete) && second.calls.isEmpty)
    }

    /// The runner builds the branches decoders declare (VCD's noised image, ICD's disturbed instruction, M3ID's
    /// text-only prompt) with no per-method code: every item decodes, and M3ID with λ = 0 (its branch unused)
    /// is greedy.
    @Test(.enabled(if: SharedData.has("coco/images/COCO_val2014_000000000192.jpg"), SharedData.missingMessage))
    func declaredBranchesAreBuiltForEveryDecoder() throws {
        var (folder, experiment, store, resources) = try Self.setUp(images: SharedData.url("coco/images").path)
        defer { try? FileManager.default.removeItem(at: folder) }
        experiment.decoders = [DecoderChoice(name: "greedy"),
                               DecoderChoice(name: "m3id", overrides: [.init("lambda", "0"), .init("sample", "false")]),
                               DecoderChoice(name: "vcd", preset: "vcd-greedy"), DecoderChoice(name: "icd")]
        let outcomes = try ExperimentRunner(experiment: experiment, store: store, resources: resources,
                                            options: RunnerOptions(mirageVersion: "test"),
                                            progress: RunProgress(isTerminal: false, json: false, write: { _ in })).run()
        // Image 9 is missing: one failed item per run, the others decoded.
        #expect(outcomes.count == 4 && outcomes.allSatisfy { $0.run.status == .complete && $0.tally.failed == 1 })
        let tokens = try outcomes.map { try store.items(run: $0.run.id).sorted { $0.item.key < $1.item.key }.map(\.item.outputTokens) }
        #expect(tokens[1] == tokens[0])
        #expect(tokens[2...].allSatisfy { $0.compactMap { $0 }.count == 3 })
    }

    /// A tiny LLaVA, a POPE protocol of four questions on three images, and a store, in a temporary folder.
    static func setUp(images: String, dtype: TensorDType = .f16) throws
        -> (folder: URL, experiment: Experiment, store: any RunRepository, resources: RunResources) {
        let folder = TestTemporary.url("mirage-runner-api")
        let model = folder.appendingPathComponent("tiny")
        try SyntheticLlavaSpec(text: SyntheticModelSpec(architecture: .llama, size: .tiny, seed: 2, dtype: dtype),
                               vision: SyntheticVisionSpec(kind: .clip, size: .tiny, seed: 2)).write(to: model)
        let questions = [(1, 192), (2, 192), (3, 241), (4, 9)].map { q, image in
            "{\"question_id\": \(q), \"image\": \"COCO_val2014_\(String(format: "%012d", image)).jpg\", \"text\": \"Is there a cat?\", \"label\": \"no\"}"
        }
        try Data((questions.joined(separator: "\n") + "\n").utf8).write(to: folder.appendingPathComponent("q.jsonl"))
        try Data("task: pope\nquestions: {path: q.jsonl}\nmax_new_tokens: 3\n".utf8).write(to: folder.appendingPathComponent("p.yaml"))
        var experiment = Experiment()
        experiment.models = [model.path]
        experiment.protocols = [folder.appendingPathComponent("p.yaml").path]
        experiment.decoders = [DecoderChoice(name: "greedy"), DecoderChoice(name: "beam", overrides: [.init("num_beams", "2")])]
        experiment.images = images
        experiment.threads = 1
        let store = try RunStores.open(folder.appendingPathComponent("r.sqlite").path)
        let resources = RunResources(chairScorer: { _ in throw RunnerError.configuration("CHAIR is not used here") },
                                     protocols: ProtocolLibrary(folders: []))
        return (folder, experiment, store, resources)
    }

    @Test func aRunWhoseItemsAllFailIsStoredAsFailedAndLabelsNameRuns() throws {
        let empty = TestTemporary.url("mirage-runner-no-images")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        var (folder, experiment, store, resources) = try Self.setUp(images: empty.path)
        defer { try? FileManager.default.removeItem(at: folder); try? FileManager.default.removeItem(at: empty) }
        let progress = RunProgress(isTerminal: false, json: false, write: { _ in })

        // A label that cannot tell the two decoders apart is refused before anything is decoded.
        experiment.label = "tiny"
        let ambiguous = ExperimentRunner(experiment: experiment, store: store, resources: resources,
                                         options: RunnerOptions(mirageVersion: "test"), progress: progress)
        let message = runnerError { _ = try ambiguous.run() }
        #expect(message?.contains("label 'tiny' names two runs 'tiny'") == true)
        #expect(message?.contains("{decoder}") == true)
        #expect(try store.runs().isEmpty)

        experiment.label = "tiny-{decoder}-{seed}"
        let runner = ExperimentRunner(experiment: experiment, store: store, resources: resources,
                                      options: RunnerOptions(mirageVersion: "test"), progress: progress)
        let outcomes = try runner.run()
        #expect(outcomes.map(\.run.label) == ["tiny-greedy-0", "tiny-beam-0"])
        #expect(outcomes.allSatisfy { $0.tally.allFailed && $0.tally.failed == 4 && $0.run.status == .failed })
        #expect(outcomes[0].tally.failureSummary?.hasPrefix("4 failed: 4 missing image (e.g. missing image:") == true)
        #expect(try store.resolveRun("tiny-beam-0").id == outcomes[1].run.id)
        // Rerunning finds the failed runs (nothing is decoded again) and still reports them as failed.
        let again = try ExperimentRunner(experiment: experiment, store: store, resources: resources,
                                         options: RunnerOptions(mirageVersion: "test"), progress: progress).run()
        #expect(again.allSatisfy { $0.tally.allFailed && $0.run.status == .failed })
        #expect(again.map(\.run.id) == outcomes.map(\.run.id))
    }

    @Test func aModelFolderWhoseConfigCannotBeReadIsRefusedWithTheReadersReason() throws {
        let empty = TestTemporary.url("mirage-runner-bad-config-images")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let (folder, experiment, store, resources) = try Self.setUp(images: empty.path)
        defer { try? FileManager.default.removeItem(at: folder); try? FileManager.default.removeItem(at: empty) }
        let config = URL(fileURLWithPath: experiment.models[0]).appendingPathComponent("config.json")
        func message() -> String? {
            runnerError { _ = try ExperimentRunner(experiment: experiment, store: store, resources: resources,
                                                   options: RunnerOptions(mirageVersion: "test"),
                                                   progress: RunProgress(isTerminal: false, write: { _ in })).run() }
        }
        let original = try Data(contentsOf: config)
        // A text-only model: no vision-language family loads it, and the message lists those that do.
        try Data(#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama"}"#.utf8).write(to: config)
        #expect(message()?.contains("is not a vision-language model folder Mirage loads") == true)
        #expect(message()?.contains("llava (") == true)
        // A LLaVA config with one bad field: the reader's own reason (file and field), not "not a LLaVA folder".
        var fields = try #require(try JSONSerialization.jsonObject(with: original) as? [String: Any])
        fields["vision_feature_select_strategy"] = "middle"
        try JSONSerialization.data(withJSONObject: fields).write(to: config)
        let bad = message()
        #expect(bad?.contains("vision_feature_select_strategy") == true)
        #expect(bad?.contains("is not a LLaVA model folder") == false)
    }

    /// Records, like the attention recorder, which items it has seen; reports the stored decoded items it lacks.
    final class BackfillRecorder: RunItemObserver {
        let store: any RunRepository
        var seen: [String: [Int]] = [:]
        var calls: [String] = []
        init(store: any RunRepository) { self.store = store }
        func itemRecorded(run: Int64, itemKey: String, model: LanguageModel, prompt: PromptLayout, result: DecodeResult,
                          tokenizer: Tokenizer?) throws {
            seen["\(run)/\(itemKey)"] = result.tokens
            calls.append("\(run)/\(itemKey)")
        }
        func itemsMissingObservation(run: Int64) throws -> Set<String> {
            Set(try store.items(run: run).filter { $0.item.failureReason == nil && seen["\(run)/\($0.item.key)"] == nil }.map(\.item.key))
        }
    }

    @Test(.enabled(if: SharedData.has("coco/images/COCO_val2014_000000000192.jpg"), SharedData.missingMessage))
    func aResumedRunGivesObserversTheStoredItemsTheyLack() throws {
        let (folder, experiment, store, resources) = try Self.setUp(images: SharedData.url("coco/images").path)
        defer { try? FileManager.default.removeItem(at: folder) }
        let progress = RunProgress(isTerminal: false, json: false, write: { _ in })
        // First invocation without any observer (like a run without --record-attention, or a crash after each
        // item's commit): three items per run are stored, one failed (image 9 is missing).
        let first = try ExperimentRunner(experiment: experiment, store: store, resources: resources,
                                         options: RunnerOptions(mirageVersion: "test"), progress: progress).run()
        #expect(first.allSatisfy { $0.run.status == .complete && $0.tally.failed == 1 })
        let stored = try first.map { try store.items(run: $0.run.id) }

        let recorder = BackfillRecorder(store: store)
        let resumed = ExperimentRunner(experiment: experiment, store: store, resources: resources,
                                       options: RunnerOptions(mirageVersion: "test"), progress: progress)
        resumed.itemObservers = [recorder]
        let second = try resumed.run()
        // Every decoded item is given to the observer once, image-major, with the stored tokens; nothing is decoded.
        #expect(recorder.calls == ["1/1", "1/2", "2/1", "2/2", "1/3", "2/3"])
        for (run, items) in zip(first.map(\.run.id), stored) {
            for item in items where item.item.failureReason == nil {
                #expect(recorder.seen["\(run)/\(item.item.key)"] == item.item.outputTokens)
            }
        }
        let after = try second.map { try store.items(run: $0.run.id) }
        #expect(after == stored)
        #expect(second.allSatisfy { $0.wasComplete })

        // Nothing missing any more: a third invocation calls nobody.
        recorder.calls = []
        let third = ExperimentRunner(experiment: experiment, store: store, resources: resources,
                                     options: RunnerOptions(mirageVersion: "test"), progress: progress)
        third.itemObservers = [recorder]
        _ = try third.run()
        #expect(recorder.calls.isEmpty)
    }

    /// A fast run's route is part of its identity: a worker standing for a CPU whose bf16 dot products do not
    /// pay never writes into the runs of one where they do; it forms runs of its own, and the first worker's
    /// route resumes its own runs untouched.
    @Test(.enabled(if: SharedData.has("coco/images/COCO_val2014_000000000192.jpg"), SharedData.missingMessage))
    func aWorkerOnAnotherFastRouteFormsItsOwnRuns() throws {
        var (folder, experiment, store, resources) = try Self.setUp(images: SharedData.url("coco/images").path, dtype: .bf16)
        defer { try? FileManager.default.removeItem(at: folder) }
        experiment.precision = .fast
        experiment.decoders = [DecoderChoice(name: "greedy")]
        let progress = RunProgress(isTerminal: false, json: false, write: { _ in })
        func run(bf16DotProducts: Bool) throws -> [RunOutcome] {
            var options = RunnerOptions(mirageVersion: "test")
            options.fastRouteDecisions = (bf16DotProducts, true)
            return try ExperimentRunner(experiment: experiment, store: store, resources: resources, options: options,
                                        progress: progress).run()
        }
        let standard = try run(bf16DotProducts: true)
        #expect(standard.count == 1 && standard[0].run.model.fingerprint.hasSuffix("+fast"))
        let items = try store.items(run: standard[0].run.id)
        let other = try run(bf16DotProducts: false)
        #expect(other.count == 1 && other[0].run.id != standard[0].run.id && !other[0].wasComplete)
        #expect(other[0].run.model.fingerprint == standard[0].run.model.fingerprint + "/bf16:f32")
        #expect(other[0].run.sourceHash != standard[0].run.sourceHash)
        #expect(try store.items(run: standard[0].run.id) == items)
        let again = try run(bf16DotProducts: true)
        #expect(again.map(\.run.id) == standard.map(\.run.id) && again.allSatisfy(\.wasComplete))
        #expect(try store.runs().count == 2)
    }
}

/// The precision (`LoadOptions.precision`) is part of a run's identity: exact and fast runs have different
/// resume keys and model fingerprints, while runs stored before the precision was explicit keep their key
/// under the precision that reproduces them (fast for bf16 checkpoints, exact for f16 and f32).
@Suite struct RunPrecisionTests {
    @Test func experimentFileReadsPrecision() throws {
        #expect(Experiment().precision == .exact)
        #expect(try Experiment.parse("precision: fast\n", file: "e.yaml").precision == .fast)
        #expect(try Experiment.parse("precision: exact\n", file: "e.yaml").precision == .exact)
        #expect(runnerError { _ = try Experiment.parse("precision: half\n", file: "e.yaml") }?
            .contains("e.yaml: precision: 'half' is not a precision; use exact (the default) or fast") == true)
    }

    @Test func precisionChangesTheResumeKeyAndKeepsOldKeys() throws {
        let decoder = try DecoderChoice(parsing: "greedy").makeDecoder()
        let protocolSpec = EvalProtocol(task: .chair, imageIDs: [1, 2], promptTemplate: "Describe.", maxNewTokens: 8)
        func key(_ precision: String?) -> String {
            ExperimentRunner.resumeKey(modelFingerprint: "abc", quantize: nil, evalProtocol: protocolSpec, padToSquare: false,
                                       decoder: decoder, seed: 0, precision: precision)
        }
        let legacy = key(nil)
        // The key runs stored before the precision was explicit have (the formula of that version, pinned).
        let stored = ContentHash.sha256Hex(Data(CanonicalJSON.string([
            "kind": "mirage-run/1", "model": "abc", "quantize": "", "protocol": protocolSpec.hash, "pad_to_square": "false",
            "decoder": decoder.name, "parameters": decoder.parameters.canonicalJSON, "seed": "0",
        ]).utf8))
        #expect(legacy == stored)
        for format in [WeightFormat.f32, .f16, .bf16] {
            let exact = key(ExperimentRunner.precisionKeyField(.exact, storedFormat: format))
            let fast = key(ExperimentRunner.precisionKeyField(.fast, storedFormat: format))
            #expect(exact != fast, "\(format)")
            // The old behaviour: bf16 dot products for bf16 checkpoints, f32 widening for the others.
            #expect((format == .bf16 ? fast : exact) == legacy, "\(format)")
        }
        #expect(ExperimentRunner.precisionKeyField(.exact, storedFormat: .bf16) == "exact")
        #expect(ExperimentRunner.precisionKeyField(.fast, storedFormat: .f16) == "fast")
    }

    @Test func fastRouteIsPartOfTheResumeKey() throws {
        let decoder = try DecoderChoice(parsing: "greedy").makeDecoder()
        let protocolSpec = EvalProtocol(task: .pope, imageIDs: [3], promptTemplate: "Is there a {object}?", maxNewTokens: 4)
        func key(_ precision: String?) -> String {
            ExperimentRunner.resumeKey(modelFingerprint: "abc", quantize: nil, evalProtocol: protocolSpec, padToSquare: false,
                                       decoder: decoder, seed: 7, precision: precision)
        }
        // The documented formula (docs/runner.md, "Resume key and resuming"), written out.
        func documented(_ precision: String?) -> String {
            var fields = ["kind": "mirage-run/1", "model": "abc", "quantize": "", "protocol": protocolSpec.hash,
                          "pad_to_square": "false", "decoder": decoder.name, "parameters": decoder.parameters.canonicalJSON,
                          "seed": "7"]
            if let precision { fields["precision"] = precision }
            return ContentHash.sha256Hex(Data(CanonicalJSON.string(fields).utf8))
        }
        // (stored format, projections as loaded on the standard route, as loaded off it, the fallback's key component)
        let cases: [(WeightFormat, WeightFormat, WeightFormat, String)] = [
            (.bf16, .bf16, .bf16, "bf16:f32"), (.f16, .bf16, .f16, "f16:f32"), (.f16, .q8, .q8, "q8:f32"),
            (.bf16, .q8, .q8, "q8:f32,bf16:f32"),
        ]
        for (stored, standardLoad, fallbackLoad, component) in cases {
            let standard = FastRoute(loadedFormat: standardLoad, storedFormat: stored, bf16DotProducts: true, int8DotProducts: true,
                                     f16DotProducts: false)
            let fallback = FastRoute(loadedFormat: fallbackLoad, storedFormat: stored, bf16DotProducts: false, int8DotProducts: false,
                                     f16DotProducts: false)
            #expect(standard.isStandard && !fallback.isStandard, "\(stored)")
            #expect(fallback.keyComponent == component)
            // The standard route keeps the key fast runs were stored under: no precision for bf16, "fast" otherwise.
            let keptField: String? = stored == .bf16 ? nil : "fast"
            #expect(key(ExperimentRunner.precisionKeyField(.fast, storedFormat: stored, route: standard)) == documented(keptField),
                    "\(stored)")
            let fallbackField = ExperimentRunner.precisionKeyField(.fast, storedFormat: stored, route: fallback)
            #expect(fallbackField == "fast/" + component)
            #expect(key(fallbackField) == documented(fallbackField) && key(fallbackField) != documented(keptField), "\(stored)")
            // Exact runs do not depend on the route.
            let exactField: String? = stored == .bf16 ? "exact" : nil
            for route in [standard, fallback, nil] {
                #expect(ExperimentRunner.precisionKeyField(.exact, storedFormat: stored, route: route) == exactField)
            }
            // The fingerprint and name separate the routes in `mirage compare`; the standard one keeps "+fast".
            let a = ExperimentRunner.modelSpec(folderName: "m", architecture: "llava-llama", fingerprint: "abc",
                                               quantized: standardLoad == .q8, precision: .fast, route: standard)
            let b = ExperimentRunner.modelSpec(folderName: "m", architecture: "llava-llama", fingerprint: "abc",
                                               quantized: standardLoad == .q8, precision: .fast, route: fallback)
            #expect(a.fingerprint.hasSuffix("+fast") && b.fingerprint == a.fingerprint + "/" + component)
            #expect(a.name != b.name)
            #expect(FastRoute(keyComponent: fallback.keyComponent) == fallback)
        }
        // f32 weights take f32 FMAs on every CPU: one route, the key fast runs always had.
        let f32 = FastRoute(loadedFormat: .f32, storedFormat: .f32, bf16DotProducts: false, int8DotProducts: false)
        #expect(f32.isStandard && ExperimentRunner.precisionKeyField(.fast, storedFormat: .f32, route: f32) == "fast")
        #expect(FastRoute(keyComponent: "bf16") == nil && FastRoute(keyComponent: "bf16:fp8") == nil)
        // Only bf16 dot products refused (an Intel VM): the int8 half of a quantized bf16 checkpoint's route stays.
        let mixed = FastRoute(loadedFormat: .q8, storedFormat: .bf16, bf16DotProducts: false, int8DotProducts: true)
        #expect(!mixed.isStandard && mixed.keyComponent == "q8:int8,bf16:f32")
        // An f16 checkpoint where bf16 dot products do not pay but AVX512-FP16 FMAs do (the Intel VM): f16 weights
        // with the f16 GEMM, a route of its own, apart from the f32 fallback.
        let f16 = FastRoute(loadedFormat: .f16, storedFormat: .f16, bf16DotProducts: false, int8DotProducts: false,
                            f16DotProducts: true)
        #expect(!f16.isStandard && f16.keyComponent == "f16:f16" && FastRoute(keyComponent: "f16:f16") == f16)
        #expect(f16.description == "f16 weights with f16 FMAs (AVX512-FP16, GEMM path)")
        #expect(ExperimentRunner.precisionKeyField(.fast, storedFormat: .f16, route: f16) == "fast/f16:f16")
        // q8 projections of an f16 checkpoint keep its vision tower in f16: with the f16 GEMM that is part of the
        // route, without it the route is the projections' alone (as before).
        #expect(FastRoute(loadedFormat: .q8, storedFormat: .f16, bf16DotProducts: false, int8DotProducts: true,
                          f16DotProducts: true).keyComponent == "q8:int8,f16:f16")
        #expect(FastRoute(loadedFormat: .q8, storedFormat: .f16, bf16DotProducts: true, int8DotProducts: true,
                          f16DotProducts: false).keyComponent == "q8:int8")
    }

    @Test func aSeparateBF16TowerIsPartOfTheFastRoute() throws {
        let root = TestTemporary.url("mirage-fast-route-tower")
        defer { try? FileManager.default.removeItem(at: root) }
        // Tiny original-layout LLaVA folders, each with its tower written beside it.
        func write(_ dtype: TensorDType) throws -> (model: URL, tower: URL) {
            let model = root.appendingPathComponent(dtype.rawValue).appendingPathComponent("llava-v1.5-tiny")
            let spec = try SyntheticLlavaOriginalSpec(request: SynthesisRequest(architecture: "llava-original", size: "tiny",
                                                                                seed: 2, dtype: dtype))
            return (model, try spec.write(to: model))
        }
        let f32 = try write(.f32), bf16 = try write(.bf16)
        #expect(try FastRoute.matrixFormats(in: [f32.tower]) == [.f32])
        #expect(try FastRoute.matrixFormats(in: [bf16.tower]) == [.bf16])
        #expect(try FastRoute.matrixFormats(in: []) == [])
        // The route of `model` with `tower` as --vision-tower, on a CPU with (cpu: true) or without bf16/int8 dot products.
        func route(_ model: URL, _ tower: URL, cpu: Bool) throws -> FastRoute {
            var options = LoadOptions(threads: 1, precision: .fast)
            options.visionTower = tower
            let vlm = try ModelFamilies.load(model, options: options)
            let shape = try ModelFamilies.shape(of: model, visionTower: tower)
            #expect(shape.otherWeightFolders == [tower])
            return try ExperimentRunner.fastRoute(vlm, towerFolders: shape.otherWeightFolders, bf16DotProducts: cpu, int8DotProducts: cpu)
        }
        for cpu in [true, false] {
            // Without a bf16 tower the route is the language model's alone, as before: the same keys.
            for (model, tower, stored) in [(f32.model, f32.tower, WeightFormat.f32), (bf16.model, bf16.tower, .bf16),
                                           (bf16.model, f32.tower, .bf16)] {
                let old = FastRoute(loadedFormat: stored, storedFormat: stored, bf16DotProducts: cpu, int8DotProducts: cpu)
                let new = try route(model, tower, cpu: cpu)
                #expect(new == old, "\(stored) model, cpu \(cpu)")
                #expect(ExperimentRunner.precisionKeyField(.fast, storedFormat: stored, route: new)
                        == ExperimentRunner.precisionKeyField(.fast, storedFormat: stored, route: old))
            }
            // A bf16 tower beside an f32 language model adds its bf16 dot products.
            let mixed = try route(f32.model, bf16.tower, cpu: cpu)
            #expect(mixed.keyComponent == (cpu ? "f32:f32,bf16:bf16" : "f32:f32,bf16:f32"))
            let field = ExperimentRunner.precisionKeyField(.fast, storedFormat: .f32, route: mixed)
            // On the standard route (bf16 dot products taken) the key stays "fast"; elsewhere the tower's f32 FMAs
            // form their own key and fingerprint instead of sharing the standard one.
            #expect(field == (cpu ? "fast" : "fast/f32:f32,bf16:f32"))
            let spec = ExperimentRunner.modelSpec(folderName: "m", architecture: "llava-llama", fingerprint: "abc",
                                                  quantized: false, precision: .fast, route: mixed)
            #expect(spec.fingerprint == (cpu ? "abc+fast" : "abc+fast/f32:f32,bf16:f32"))
        }
    }

    @Test func precisionIsPartOfTheModelSpec() {
        let exact = ExperimentRunner.modelSpec(folderName: "llava", architecture: "llava-llama", fingerprint: "abc",
                                               quantized: false, precision: .exact)
        let fast = ExperimentRunner.modelSpec(folderName: "llava", architecture: "llava-llama", fingerprint: "abc",
                                              quantized: false, precision: .fast)
        let q8 = ExperimentRunner.modelSpec(folderName: "llava", architecture: "llava-llama", fingerprint: "abc",
                                            quantized: true, precision: .fast)
        #expect(exact.name == "llava" && exact.fingerprint == "abc+exact")
        #expect(fast.name == "llava (fast)" && fast.fingerprint == "abc+fast")
        #expect(q8.name == "llava (q8, fast)" && q8.fingerprint == "abc+q8+fast")
        #expect(Set([exact, fast, q8]).count == 3)
    }
}

/// Shared prompt prefixes: an image's prompt up to the image's end is prefilled once and forked for every item
/// that starts with it. The chunks are fixed by the prompt, so every stored item is the same with the cache on
/// and off, in any item order, after a resume and across shards.
@Suite struct PrefixCacheTests {
    /// Stops a run after `limit` recorded items (a crash in the middle).
    final class Interrupt: RunItemObserver {
        struct Stop: Error {}
        var left: Int
        init(after limit: Int) { left = limit }
        func itemRecorded(run: Int64, itemKey: String, model: LanguageModel, prompt: PromptLayout, result: DecodeResult,
                          tokenizer: Tokenizer?) throws {
            left -= 1
            if left == 0 { throw Stop() }
        }
    }

    /// A tiny LLaVA and a POPE protocol of three questions on each of three images, in a temporary folder;
    /// `reversed` writes the question file in the opposite order.
    static func setUp(reversed: Bool = false) throws -> (folder: URL, experiment: Experiment, resources: RunResources) {
        let folder = TestTemporary.url("mirage-prefix-cache")
        let model = folder.appendingPathComponent("tiny")
        try SyntheticLlavaSpec(text: SyntheticModelSpec(architecture: .llama, size: .tiny, seed: 3),
                               vision: SyntheticVisionSpec(kind: .clip, size: .tiny, seed: 3)).write(to: model)
        let texts = ["Is there a cat in the image?", "Is there a person?", "Is there a dining table in the picture?"]
        var questions: [String] = []
        for (i, image) in [192, 241, 257].enumerated() {
            for (j, text) in texts.enumerated() {
                questions.append("{\"question_id\": \(i * 3 + j + 1), \"image\": \"COCO_val2014_\(String(format: "%012d", image)).jpg\", \"text\": \"\(text)\", \"label\": \"\(j == 1 ? "yes" : "no")\"}")
            }
        }
        if reversed { questions.reverse() }
        try Data((questions.joined(separator: "\n") + "\n").utf8).write(to: folder.appendingPathComponent("q.jsonl"))
        try Data("task: pope\nquestions: {path: q.jsonl}\nmax_new_tokens: 4\n".utf8).write(to: folder.appendingPathComponent("p.yaml"))
        var experiment = Experiment()
        experiment.models = [model.path]
        experiment.protocols = [folder.appendingPathComponent("p.yaml").path]
        experiment.decoders = [DecoderChoice(name: "greedy"), DecoderChoice(name: "beam", overrides: [.init("num_beams", "2")]),
                               DecoderChoice(name: "opera", overrides: [.init("num_beams", "2")]),
                               DecoderChoice(name: "sample")]
        experiment.images = SharedData.url("coco/images").path
        experiment.threads = 1
        let resources = RunResources(chairScorer: { _ in throw RunnerError.configuration("CHAIR is not used here") },
                                     protocols: ProtocolLibrary(folders: []))
        return (folder, experiment, resources)
    }

    /// Every stored item of every run of a store, by (run position, item key): tokens, text, failure.
    static func items(_ store: any RunRepository) throws -> [String: String] {
        var out: [String: String] = [:]
        for run in try store.runs() {
            for stored in try store.items(run: run.id) {
                let key = "\(run.decoder.name)/\(stored.item.key)"
                out[key] = "\(stored.item.outputTokens ?? []) \(stored.item.outputText) \(stored.item.failureReason ?? "")"
            }
        }
        return out
    }

    static func run(_ experiment: Experiment, resources: RunResources, store: any RunRepository, observer: (any RunItemObserver)? = nil,
                    messages: ((String) -> Void)? = nil) throws -> [RunOutcome] {
        let runner = ExperimentRunner(experiment: experiment, store: store, resources: resources,
                                      options: RunnerOptions(mirageVersion: "test"),
                                      progress: RunProgress(isTerminal: false, json: false, write: messages ?? { _ in }))
        if let observer { runner.itemObservers = [observer] }
        return try runner.run()
    }

    @Test(.enabled(if: SharedData.has("coco/images/COCO_val2014_000000000257.jpg"), SharedData.missingMessage))
    func itemsAreIdenticalWithAndWithoutTheCacheInAnyOrderOnResumeAndAcrossShards() throws {
        var (folder, experiment, resources) = try Self.setUp()
        defer { try? FileManager.default.removeItem(at: folder) }

        // Cold: every item prefills its whole prompt (still in the same two chunks).
        experiment.prefixCacheMB = 0
        let coldStore = try RunStores.open(folder.appendingPathComponent("cold.sqlite").path)
        let cold = try Self.run(experiment, resources: resources, store: coldStore)
        #expect(cold.allSatisfy { $0.prefixPrefills == 0 && $0.prefixCacheSummary == nil })
        let reference = try Self.items(coldStore)
        #expect(reference.count == 36)
        #expect(reference.values.allSatisfy { !$0.hasPrefix("[] ") })

        // Cached: greedy computes each image's prefix once; every other item forks it (OPERA, beam and sampling
        // too). Counters per run: 9 items ask, greedy's 3 first items per image compute.
        experiment.prefixCacheMB = 64
        var messages = ""
        let warmStore = try RunStores.open(folder.appendingPathComponent("warm.sqlite").path)
        let warm = try Self.run(experiment, resources: resources, store: warmStore, messages: { messages += $0 })
        #expect(try Self.items(warmStore) == reference)
        #expect(warm.map(\.prefixPrefills) == [9, 9, 9, 9])
        #expect(warm.map(\.prefixReused) == [6, 9, 9, 9])
        #expect(warm[1].prefixCacheSummary == "prefix cache: 9 of 9 prefills reused")
        #expect(messages.contains("— done, prefix cache: 6 of 9 prefills reused"))

        // Shuffled order: the question file reversed, so each image's items come in the opposite order.
        var (rFolder, rExperiment, rResources) = try Self.setUp(reversed: true)
        defer { try? FileManager.default.removeItem(at: rFolder) }
        rExperiment.models = experiment.models
        let reversedStore = try RunStores.open(rFolder.appendingPathComponent("r.sqlite").path)
        _ = try Self.run(rExperiment, resources: rResources, store: reversedStore)
        #expect(try Self.items(reversedStore) == reference)

        // A resume in the middle: the first invocation stops after 14 items (image 241 half done).
        experiment.prefixCacheMB = 64
        let resumedStore = try RunStores.open(folder.appendingPathComponent("resumed.sqlite").path)
        #expect(throws: Interrupt.Stop.self) {
            _ = try Self.run(experiment, resources: resources, store: resumedStore, observer: Interrupt(after: 14))
        }
        #expect(try Self.items(resumedStore).count == 14)
        let resumed = try Self.run(experiment, resources: resources, store: resumedStore)
        #expect(try Self.items(resumedStore) == reference)
        #expect(resumed.map(\.prefixPrefills).reduce(0, +) == 36 - 14)

        // Shards 0/2 and 1/2 into two stores: together exactly the reference items.
        var shardItems: [String: String] = [:]
        var shardCount = 0
        for index in 0..<2 {
            experiment.shard = try Shard(index: index, count: 2)
            let shardStore = try RunStores.open(folder.appendingPathComponent("shard\(index).sqlite").path)
            _ = try Self.run(experiment, resources: resources, store: shardStore)
            let part = try Self.items(shardStore)
            shardCount += part.count
            shardItems.merge(part) { a, _ in a }
        }
        #expect(shardItems == reference && shardCount == 36)
    }

    @Test func cacheKeepsPrefixesByBytesAndForksThemExactly() throws {
        let dir = TestTemporary.url("mirage-prefix-cache-unit")
        defer { try? FileManager.default.removeItem(at: dir) }
        // bf16 weights: a one-chunk prefill (mid-n path, inputs rounded to bf16) differs from two chunks, so the
        // comparisons below fail if the chunks ever depend on the cache.
        try SyntheticModelSpec(architecture: .qwen2, size: .tiny, seed: 5, dtype: .bf16).write(to: dir)
        let model = try LanguageModel(folder: dir, options: LoadOptions(threads: 1))
        let prefixA: [PromptItem] = (0..<37).map { .token(3 + $0 % 50) }
        let prefixB: [PromptItem] = (0..<37).map { .token(7 + $0 % 40) }
        let rest: [PromptItem] = [.token(11), .token(12), .token(13)]
        func decode(_ prefix: [PromptItem], cache: PromptPrefixCache?) throws -> DecodeResult {
            var context = DecodingContext(model: model, prompt: PromptLayout(items: prefix + rest, prefixLength: prefix.count),
                                          limits: GenerationLimits(maxNewTokens: 6, eosTokenIDs: []))
            context.prefixCache = cache
            return try GreedyDecoder().decode(context)
        }
        let coldA = try decode(prefixA, cache: nil), coldB = try decode(prefixB, cache: nil)
        // One block pool of a tiny model: measure what one prefix (3 blocks of 16) takes, then allow one.
        let probe = PromptPrefixCache(limitBytes: 1 << 30)
        _ = try decode(prefixA, cache: probe)
        let one = probe.bytesHeld
        let c = model.config
        // Only the prefix's 3 blocks of 16 rows: the decoded item's blocks were given back.
        #expect(one == 3 * c.numLayers * 2 * c.numKVHeads * 16 * c.headDim * 4 && probe.count == 1)
        let cache = PromptPrefixCache(limitBytes: one + one / 2)
        for prefix in [prefixA, prefixA, prefixB, prefixB, prefixA] {
            let result = try decode(prefix, cache: cache)
            #expect(result.tokens == (prefix == prefixA ? coldA.tokens : coldB.tokens))
            #expect(cache.count == 1 && cache.bytesHeld <= one + one / 2)
        }
        // A, A (hit), B (A evicted), B (hit), A (computed again).
        #expect(cache.prefills == 5 && cache.reused == 2)
        #expect(cache.summary == "prefix cache: 2 of 5 prefills reused")
        // Dropping every prefix (the runner does when it moves to the next image) keeps the counters.
        cache.removeAll()
        #expect(cache.count == 0 && cache.bytesHeld == 0)
        _ = try decode(prefixA, cache: cache)
        #expect(cache.prefills == 6 && cache.reused == 2 && cache.count == 1)
        // Exactness of the fork: the same rows in the same chunks give the same logits, bit for bit, at the
        // prompt's last row and at the next step (which writes into the prefix's shared last block).
        func logits(_ cache: PromptPrefixCache?) throws -> [Float] {
            var context = DecodingContext(model: model, prompt: PromptLayout(items: prefixA + rest, prefixLength: prefixA.count))
            context.prefixCache = cache
            let (session, out) = try context.prefilledSession()
            #expect(session.session.length(of: 0) == prefixA.count + rest.count)
            return Array(out.logits(0)) + Array(try session.step([20]).logits(0))
        }
        let kept = PromptPrefixCache(limitBytes: 1 << 30)
        let computed = try logits(kept), forked = try logits(kept), uncached = try logits(nil)
        #expect(kept.reused == 1 && forked == uncached && computed == uncached)
        // Forks share the pool; blocks they freed are given back, and reused storage computes the same numbers.
        let base = model.makeSession(blockSize: 16)
        try base.append(prefixA, options: ForwardOptions(logits: .none))
        let prefixBytes = base.cacheBytes
        func forkedLogits() throws -> [Float] {
            let fork = Session(forking: 0, of: base)
            let out = try fork.append(rest + [PromptItem](repeating: .token(9), count: 40))
            #expect(base.cacheBytes > prefixBytes)
            return Array(out.logits(0))
        }
        let first = try forkedLogits()
        #expect(base.cacheBytes > prefixBytes)
        base.releaseFreeBlocks()
        #expect(base.cacheBytes == prefixBytes && base.length(of: 0) == prefixA.count)
        #expect(try forkedLogits() == first)
        let off = PromptPrefixCache(limitBytes: 0)
        #expect(try decode(prefixA, cache: off).tokens == coldA.tokens && off.count == 0 && off.reused == 0)
    }
}
