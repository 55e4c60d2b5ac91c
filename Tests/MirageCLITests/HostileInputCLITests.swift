import Foundation
import Testing
import GRDB
import MirageTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Hand-edited configs, files that are not files, negative seeds, oversized images and requests beyond
/// the model's context: each ends in a clear message (or a capped request with a note), never a trap.
@Suite struct HostileInputCLITests {
    static let imageFixtures = SharedData.repositoryRoot.appendingPathComponent("Tests/MirageEngineTests/Fixtures/images")
    static let qwen2 = SharedData.repositoryRoot.appendingPathComponent("Tests/MirageEngineTests/Fixtures/models/qwen2-tied-f32")

    /// `mirage models synth` into a fresh scratch folder, returning the folder.
    static func synth(_ scratch: Scratch, _ name: String, arch: String) throws -> URL {
        let dir = scratch.url.appendingPathComponent(name)
        try mirageOK(["models", "synth", "--arch", arch, "--size", "tiny", "--seed", "2", "--dtype", "f32", "--out", dir.path])
        return dir
    }

    /// A process that died on a signal (a trap) reports status 128 + signal or the signal itself.
    static func expectCleanFailure(_ result: ProcessResult, mentioning phrases: [String],
                                   sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status == 1, "exit \(result.status): \(result.stderr)", sourceLocation: sourceLocation)
        #expect(!result.stderr.contains("Fatal error"), "\(result.stderr)", sourceLocation: sourceLocation)
        for phrase in phrases {
            #expect(result.stderr.contains(phrase), "no '\(phrase)' in: \(result.stderr)", sourceLocation: sourceLocation)
        }
    }

    /// The values that trapped (or were accepted) before; each now names its field, with the allowed range.
    @Test func handEditedConfigValuesEndInClearErrors() throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let model = try Self.synth(scratch, "llava", arch: "llava-llama")
        let pristine = try Data(contentsOf: model.appendingPathComponent("config.json"))
        let cases: [(String, String, Any, String, String)] = [
            ("text_config", "num_hidden_layers", -1, "text_config.num_hidden_layers", "1...1024"),
            ("vision_config", "patch_size", 0, "vision_config.patch_size", "1...32"),
            ("vision_config", "num_attention_heads", 0, "vision_config.num_attention_heads", "1...1024"),
            ("text_config", "num_attention_heads", 1 << 62, "text_config.num_attention_heads", "1...1024"),
            ("text_config", "num_hidden_layers", 1 << 40, "text_config.num_hidden_layers", "1...1024"),
            ("text_config", "hidden_act", "tanh", "text_config.hidden_act", "silu"),
        ]
        for (section, key, value, field, range) in cases {
            try pristine.write(to: model.appendingPathComponent("config.json"))
            try ConfigJSON.edit(in: model) { json in
                var inner = json[section] as! [String: Any]
                inner[key] = value
                json[section] = inner
            }
            let result = try mirage(["generate", "--model", model.path, "--prompt", "a photo of", "--max-new-tokens", "2"])
            Self.expectCleanFailure(result, mentioning: ["config.json", "'\(field)'", range])
        }
        try pristine.write(to: model.appendingPathComponent("config.json"))
        try ConfigJSON.edit(in: model) { json in
            var text = json["text_config"] as! [String: Any]
            var rope = text["rope_parameters"] as! [String: Any]
            rope["rope_theta"] = 0
            text["rope_parameters"] = rope
            json["text_config"] = text
        }
        let theta = try mirage(["generate", "--model", model.path, "--prompt", "a photo of", "--max-new-tokens", "2"])
        Self.expectCleanFailure(theta, mentioning: ["'text_config.rope_parameters.rope_theta'", "above 0"])

        // Through the runner (`mirage demo --model` runs `mirage run`'s loop): the same message, exit 1.
        try pristine.write(to: model.appendingPathComponent("config.json"))
        try ConfigJSON.edit(in: model) { json in
            var vision = json["vision_config"] as! [String: Any]
            vision["patch_size"] = 0
            json["vision_config"] = vision
        }
        let demo = try mirage(["demo", "--model", model.path, "--db", scratch.path("demo.sqlite"), "--cache", scratch.path("cache"),
                               "--count", "3", "--synonyms", scratch.path("missing-synonyms.txt")])
        Self.expectCleanFailure(demo, mentioning: ["'vision_config.patch_size'"])
        #expect(!demo.stderr.contains("is not a LLaVA model folder"))
        // `mirage run` checks every model's config before running any of them.
        let run = try mirage(["run", "--model", Self.qwen2.path, "--model", model.path, "--protocol", "opera-pope-random",
                              "--images", scratch.url.path, "--db", scratch.path("run.sqlite")])
        Self.expectCleanFailure(run, mentioning: ["qwen2-tied-f32 is not a vision-language model folder Mirage loads", "model_type \"qwen2\""])
        let second = try mirage(["run", "--model", model.path, "--protocol", "opera-pope-random", "--images", scratch.url.path,
                                 "--db", scratch.path("run.sqlite")])
        Self.expectCleanFailure(second, mentioning: ["'vision_config.patch_size' is 0; it must be an integer in 1...32"])
    }

    @Test func garbageConfigWithAnImageSaysTheConfigIsUnreadable() throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let model = try Self.synth(scratch, "llava", arch: "llava-llama")
        try Data("{\"model_type\": \"llava\", \"text_config\": ".utf8).write(to: model.appendingPathComponent("config.json"))
        let result = try mirage(["generate", "--model", model.path, "--image", Self.imageFixtures.appendingPathComponent("rgb.png").path,
                                 "--prompt", "Describe the image."])
        Self.expectCleanFailure(result, mentioning: ["config.json cannot be read as a model config", "not valid JSON"])
        #expect(!result.stderr.contains("text-only"))
    }

    @Test func filesThatAreNotRegularFilesGetOneClearMessage() throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let null = try mirage(["chair", "--captions", "/dev/null"])
        Self.expectCleanFailure(null, mentioning: ["--captions /dev/null is a character device, not a file"])
        #expect(!null.stderr.contains("permission"))
        let directory = try mirage(["chair", "--captions", scratch.url.path])
        Self.expectCleanFailure(directory, mentioning: ["is a directory, not a file"])
        #expect(!directory.stderr.contains("NSCocoaErrorDomain"))
        let fifo = scratch.path("pipe")
        try #require(mkfifo(fifo, 0o600) == 0)
        let pipe = try mirage(["chair", "--captions", fifo])
        Self.expectCleanFailure(pipe, mentioning: ["is a named pipe (FIFO), not a file"])
        let missing = try mirage(["chair", "--captions", scratch.path("nope.jsonl")])
        Self.expectCleanFailure(missing, mentioning: ["does not exist"])
        let embeds = try mirage(["generate", "--model", Self.qwen2.path, "--embeds", scratch.url.path])
        Self.expectCleanFailure(embeds, mentioning: ["--embeds", "is a directory"])
        let processor = try InspectPixelsTests.modelFolder(config: "clip_tiny")
        defer { try? FileManager.default.removeItem(at: processor) }
        let image = try mirage(["inspect", "pixels", "--model", processor.path, "--image", "/dev/null"])
        #expect(image.status == 1 && image.stderr.contains("is a character device"), "\(image.stderr)")
    }

    /// Every command that reads a named file checks it first with the same helper.
    @Test func everyFileOptionRefusesADirectoryWithTheSameMessage() throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let dir = scratch.url.path
        let file = try scratch.write("a.json", "{}")
        let cases: [([String], String)] = [
            (["chair", "--captions", file, "--ground-truth", dir], "--ground-truth"),
            (["pope", "info", dir], "question file"),
            (["pope", "build", "--objects", dir, "--out", scratch.path("out")], "--objects"),
            (["run", dir], "experiment file"),
            (["run", "--model", Self.qwen2.path, "--instances", dir], "--instances"),
            (["reproduce", "opera", "--ground-truth", dir, "--db", scratch.path("r.sqlite")], "--ground-truth"),
            (["demo", "--images", dir, "--annotations", dir, "--db", scratch.path("d.sqlite")], "--annotations"),
        ]
        for (arguments, option) in cases {
            let result = try mirage(arguments)
            Self.expectCleanFailure(result, mentioning: ["\(option) \(dir) is a directory, not a file: give the path of a file in it"])
        }
        let notAFolder = try mirage(["reproduce", "opera", "--from", file, "--db", scratch.path("r.sqlite")])
        Self.expectCleanFailure(notAFolder, mentioning: ["--from \(file) is a file; --from takes a folder"])
    }

    @Test func negativeSeedsSayWhatASeedIs() throws {
        for arguments in [["--seed", "-1"], ["--seed=-1"], ["--seed", "x"]] {
            let result = try mirage(["generate", "--model", Self.qwen2.path, "--prompt", "hi"] + arguments)
            #expect(result.status != 0)
            #expect(result.stderr.contains("seed must be a non-negative integer"), "\(result.stderr)")
            #expect(!result.stderr.contains("Missing value"))
        }
        let run = try mirage(["run", "--model", Self.qwen2.path, "--seed", "-3"])
        #expect(run.stderr.contains("seed must be a non-negative integer"), "\(run.stderr)")
        let ok = try mirage(["generate", "--model", Self.qwen2.path, "--prompt", "hi", "--seed", "18446744073709551615",
                             "--decoder", "sample", "--max-new-tokens", "2"])
        #expect(ok.status == 0, "\(ok.stderr)")
    }

    /// `--max-new-tokens` beyond the context is lowered to what the context leaves, with a note; the
    /// stats line ends its line; `--threads` above the CPU count is lowered with a note.
    @Test func generationIsCappedAtTheContextAndTheStatsLineEndsItsLine() throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let model = try Self.synth(scratch, "llama", arch: "llama")
        try ConfigJSON.edit(in: model) { $0["max_position_embeddings"] = 12 }
        let result = try mirage(["generate", "--model", model.path, "--prompt", "a b",
                                 "--max-new-tokens", "100000000", "--ignore-eos", "--ids", "--threads", "100000"])
        #expect(result.status == 0, "\(result.stderr)")
        // The stats line: "[greedy: N prompt rows in ...".
        let stats = try #require(result.stderr.split(separator: "\n").last { $0.hasPrefix("[greedy: ") })
        let promptRows = try #require(Int(stats.dropFirst("[greedy: ".count).prefix { $0.isNumber }))
        let tokens = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [Int]
        #expect(promptRows >= 1 && tokens.count == 12 - promptRows)
        #expect(result.stderr.contains("note: --max-new-tokens 100000000 is more than the model's context allows"))
        #expect(result.stderr.contains("generating at most \(tokens.count) new tokens"))
        #expect(result.stderr.contains("note: --threads 100000 is more than this machine's"))
        #expect(result.stderr.hasSuffix("tokens/s]\n"), "stats line: \(result.stderr.suffix(80).debugDescription)")
        // Streamed text with stdout and stderr in one pipe: the text ends its line before the stats line
        // starts (the line end used to wait in stdout's buffer until after the stats line).
        let binary = try #require(BuiltProducts.mirage)
        let merged = try runProcess(URL(fileURLWithPath: "/bin/sh"),
                                    ["-c", "\"$0\" generate --model \"$1\" --prompt 'a b' --max-new-tokens 3 --ignore-eos 2>&1",
                                     binary.path, model.path])
        #expect(merged.status == 0, "\(merged.stdout)")
        let statsStart = try #require(merged.stdout.range(of: "[greedy: ", options: .backwards)).lowerBound
        #expect(statsStart > merged.stdout.startIndex
                && merged.stdout[merged.stdout.index(before: statsStart)] == "\n"
                && merged.stdout.hasSuffix("tokens/s]\n"), "\(merged.stdout.debugDescription)")
        // A prompt that fills the context is refused.
        try ConfigJSON.edit(in: model) { $0["max_position_embeddings"] = 2 }
        let full = try mirage(["generate", "--model", model.path, "--prompt", "a b c d e f", "--max-new-tokens", "4"])
        #expect(full.status != 0 && full.stderr.contains("shorten the prompt"), "\(full.stderr)")
    }

    /// A 40000 × 40000 PNG header (a few dozen bytes) is refused from its header; the limit is configurable
    /// by option and environment variable.
    @Test func oversizedImagesAreRefusedAndTheLimitIsConfigurable() throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let model = try InspectPixelsTests.modelFolder(config: "clip_tiny")
        defer { try? FileManager.default.removeItem(at: model) }
        let bomb = scratch.url.appendingPathComponent("bomb.png")
        try PNGHeader.declaring(width: 40000, height: 40000).write(to: bomb)
        let refused = try mirage(["inspect", "pixels", "--model", model.path, "--image", bomb.path])
        #expect(refused.status == 1, "\(refused.stderr)")
        #expect(refused.stderr.contains("40000 × 40000 = 1600000000 pixels, more than the limit of 178956970"), "\(refused.stderr)")
        let small = Self.imageFixtures.appendingPathComponent("rgb.png").path
        try mirageOK(["inspect", "pixels", "--model", model.path, "--image", small])
        let byOption = try mirage(["inspect", "pixels", "--model", model.path, "--image", small, "--max-image-pixels", "10"])
        #expect(byOption.status == 1 && byOption.stderr.contains("more than the limit of 10"), "\(byOption.stderr)")
        let binary = try #require(BuiltProducts.mirage)
        var environment = ProcessInfo.processInfo.environment
        environment["MIRAGE_MAX_IMAGE_PIXELS"] = "10"
        let byEnvironment = try runProcess(binary, ["inspect", "pixels", "--model", model.path, "--image", small], environment: environment)
        #expect(byEnvironment.status == 1 && byEnvironment.stderr.contains("more than the limit of 10"), "\(byEnvironment.stderr)")
        environment["MIRAGE_MAX_IMAGE_PIXELS"] = "lots"
        let badEnvironment = try runProcess(binary, ["inspect", "pixels", "--model", model.path, "--image", small], environment: environment)
        #expect(badEnvironment.status != 0 && badEnvironment.stderr.contains("MIRAGE_MAX_IMAGE_PIXELS must be"), "\(badEnvironment.stderr)")
        let negative = try mirage(["inspect", "pixels", "--model", model.path, "--image", small, "--max-image-pixels", "-5"])
        #expect(negative.status != 0)
    }

    /// `generate --image` and `mirage run` honour `--max-image-pixels` and `MIRAGE_MAX_IMAGE_PIXELS`.
    @Test func generateAndRunHonourThePixelLimit() throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let model = try Self.synth(scratch, "llava", arch: "llava-llama")
        let image = Self.imageFixtures.appendingPathComponent("rgb420.jpg")
        let generate = try mirage(["generate", "--model", model.path, "--image", image.path, "--prompt", "Describe it.",
                                   "--max-new-tokens", "2", "--max-image-pixels", "10"])
        Self.expectCleanFailure(generate, mentioning: ["more than the limit of 10"])

        let images = scratch.url.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        for id in [1, 2] {
            try FileManager.default.copyItem(at: image, to: images.appendingPathComponent(String(format: "COCO_val2014_%012d.jpg", id)))
        }
        _ = try scratch.write("questions.jsonl", (1...2).map { id in
            "{\"question_id\": \(id), \"image\": \"COCO_val2014_\(String(format: "%012d", id)).jpg\", \"text\": \"Is there a dog in the image?\", \"label\": \"no\"}"
        }.joined(separator: "\n") + "\n")
        _ = try scratch.write("pope.yaml", """
            task: pope
            questions: {path: questions.jsonl}
            prompt: "{question}"
            template: llava15
            max_new_tokens: 2
            answer_parser: opera
            """)
        let binary = try #require(BuiltProducts.mirage)
        for (extra, variable) in [(["--max-image-pixels", "10"], nil), ([], "10")] as [([String], String?)] {
            let db = scratch.path("run-\(variable ?? "option").sqlite")
            var environment = ProcessInfo.processInfo.environment
            environment["MIRAGE_MAX_IMAGE_PIXELS"] = variable
            let run = try runProcess(binary, ["run", "--model", model.path, "--protocol", scratch.path("pope.yaml"),
                                              "--images", images.path, "--threads", "1", "--db", db] + extra,
                                     environment: environment)
            #expect(!run.stderr.contains("Fatal error"), "\(run.stderr)")
            let reasons = try DatabaseQueue(path: db).read { try String.fetchAll($0, sql: "SELECT failure_reason FROM items") }
            #expect(reasons.count == 2 && reasons.allSatisfy { $0.contains("more than the limit of 10") }, "\(reasons) \(run.stderr)")
        }
    }

    /// The runner (`mirage demo` drives it) honours the pixel limit and turns NaN logits into failed items
    /// with their reason instead of empty outputs scored as perfect captions.
    @Test func runnerRecordsOversizedImagesAndNaNLogitsAsFailedItems() throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let db = scratch.path("limit.sqlite")
        let limited = try mirage(["demo", "--random-model", "--db", db, "--cache", scratch.path("cache"), "--count", "3",
                                  "--synonyms", scratch.path("missing-synonyms.txt"), "--max-image-pixels", "1000"])
        #expect(!limited.stderr.contains("Fatal error"), "\(limited.stderr)")
        let reasons = try DatabaseQueue(path: db).read { try String.fetchAll($0, sql: "SELECT DISTINCT failure_reason FROM items") }
        #expect(!reasons.isEmpty && reasons.allSatisfy { $0.contains("more than the limit of 1000") }, "\(reasons)")

        let model = try Self.synth(scratch, "nan-llava", arch: "llava-llama")
        let weights = model.appendingPathComponent("model.safetensors")
        try NaNWeights.poison(file: weights, tensor: "language_model.model.norm.weight")
        let nanDB = scratch.path("nan.sqlite")
        let nan = try mirage(["demo", "--model", model.path, "--db", nanDB, "--cache", scratch.path("cache"), "--count", "3",
                              "--synonyms", scratch.path("missing-synonyms.txt")])
        #expect(!nan.stderr.contains("Fatal error"), "\(nan.stderr)")
        let items = try DatabaseQueue(path: nanDB).read { db in
            try Row.fetchAll(db, sql: "SELECT status, failure_reason, output_text FROM items")
        }
        #expect(!items.isEmpty)
        for item in items {
            #expect((item["failure_reason"] as String?)?.contains("non-finite logits") == true, "\(item)")
            #expect(item["status"] as String != "ok")
        }
    }
}

/// Overwrites one f32 tensor of a safetensors file with NaN, reading the offsets from its JSON header.
enum NaNWeights {
    static func poison(file: URL, tensor: String) throws {
        let data = try Data(contentsOf: file)
        let headerLength = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self).littleEndian })
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as! [String: Any]
        let entry = try #require(header[tensor] as? [String: Any], "no tensor \(tensor) in \(file.lastPathComponent)")
        #expect(entry["dtype"] as? String == "F32")
        let offsets = entry["data_offsets"] as! [Int]
        let count = (offsets[1] - offsets[0]) / 4
        let handle = try FileHandle(forUpdating: file)
        try handle.seek(toOffset: UInt64(8 + headerLength + offsets[0]))
        handle.write([Float](repeating: .nan, count: count).withUnsafeBytes { Data($0) })
        try handle.close()
    }
}
