import Foundation
import Testing
import MirageTestSupport

/// `mirage run` end to end on a tiny synthetic LLaVA over real COCO images (../shared/data).
@Suite struct RunCommandTests {
    static let wordnet = SharedData.wordnet
    static var available: Bool { SharedData.chairRunAvailable }
    static let missing = SharedData.chairRunMissingMessage

    /// COCO images of the shared folder that have CHAIR ground truth, by id.
    static let imageIDs = [192, 241, 257, 294, 328, 338, 357, 360, 395, 415]

    /// A scratch folder with a tiny LLaVA, a CHAIR protocol over `ids`, and a POPE question file + protocol
    /// over the same images (one yes and one no question each, labels from the CHAIR ground truth).
    struct Setup {
        let scratch: Scratch
        let model: String
        init(ids: [Int] = RunCommandTests.imageIDs, chairTokens: Int = 24) throws {
            scratch = try Scratch()
            model = scratch.path("tiny")
            try mirageOK(["models", "synth", "--arch", "llava-llama", "--size", "tiny", "--seed", "3", "--out", model])
            _ = try scratch.write("chair.yaml", """
            task: chair
            prompt: "Please describe this image in detail."
            template: llava15
            max_new_tokens: \(chairTokens)
            images: {ids: [\(ids.map(String.init).joined(separator: ", "))]}
            """)
            let truthData = try Data(contentsOf: SharedData.url("chair/coco2014_gt_objects.json"))
            let truth = try JSONSerialization.jsonObject(with: truthData) as! [String: [String]]
            var lines: [String] = []
            for id in ids {
                let objects = truth[String(id)] ?? []
                let present = objects.first ?? "person"
                let absent = ["giraffe", "zebra", "toaster", "kite"].first { !objects.contains($0) }!
                for (object, label) in [(present, "yes"), (absent, "no")] {
                    lines.append("{\"question_id\": \(lines.count + 1), \"image\": \"COCO_val2014_\(String(format: "%012d", id)).jpg\", "
                                 + "\"text\": \"Is there a \(object) in the image?\", \"label\": \"\(label)\"}")
                }
            }
            _ = try scratch.write("questions.jsonl", lines.joined(separator: "\n") + "\n")
            _ = try scratch.write("pope.yaml", """
            task: pope
            questions: {path: questions.jsonl}
            prompt: "{question}"
            template: llava15
            max_new_tokens: 6
            answer_parser: opera
            """)
        }

        func arguments(db: String, images: String = SharedData.url("coco/images").path) -> [String] {
            ["run", "--model", model, "--protocol", scratch.path("chair.yaml"), "--protocol", scratch.path("pope.yaml"),
             "--images", images, "--ground-truth", SharedData.url("chair/coco2014_gt_objects.json").path,
             "--synonyms", SharedData.url("chair/synonyms.txt").path, "--nltk-data", SharedData.url("nltk").path,
             "--wordnet", RunCommandTests.wordnet, "--threads", "1", "--db", scratch.path(db)]
        }
    }

    /// `mirage export` of every run as JSON objects without the timing fields, and each run's metrics block.
    static func contents(db: String, runs: Int) throws -> (items: [[String]], metrics: [String]) {
        var items: [[String]] = [], metrics: [String] = []
        for run in 1...runs {
            let export = try mirageOK(["export", String(run), "--format", "jsonl", "--db", db])
            items.append(try export.split(separator: "\n").map { line in
                var object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                object["prefill_seconds"] = nil
                object["decode_seconds"] = nil
                object["forward_passes"] = nil  // a prefix forked from the prefix cache is not this item's pass
                return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
            })
            metrics.append(metricsBlock(try mirageOK(["runs", "show", String(run), "--db", db])))
        }
        return (items, metrics)
    }

    @Test(.enabled(if: RunCommandTests.available, RunCommandTests.missing))
    func killedTwiceResumesToTheUninterruptedRun() throws {
        let setup = try Setup()
        defer { setup.scratch.cleanup() }
        let decoders = ["--decoder", "greedy", "--decoder", "beam,num_beams=2", "--decoder", "opera,num_beams=2,num_attn_candidates=2"]
        let reference = setup.arguments(db: "reference.sqlite") + decoders
        let out = try mirage(reference)
        #expect(out.status == 0, "\(out.stderr)")
        // Not a terminal: one line per finished run on stderr, no carriage returns.
        #expect(out.stderr.split(separator: "\n").filter { $0.hasPrefix("[run ") }.count == 6 && !out.stderr.contains("\r"))
        #expect(out.stdout.contains("Stored in"))

        // SIGKILL mid-run twice: after the 7th and after the 15th item the process reports (--json-progress), so
        // the kills land inside the run whatever the machine's load; items keep being committed until the kill.
        let binary = try #require(BuiltProducts.mirage)
        var kills = 0
        for after in [7, 15] {
            let process = Process()
            process.executableURL = binary
            process.arguments = setup.arguments(db: "killed.sqlite") + decoders + ["--json-progress"]
            process.standardOutput = FileHandle.nullDevice
            let pipe = Pipe()
            process.standardError = pipe
            try process.run()
            var seen = 0
            while seen < after {
                let chunk = pipe.fileHandleForReading.availableData
                if chunk.isEmpty { break }   // the process ended
                seen += chunk.filter { $0 == UInt8(ascii: "\n") }.count
            }
            if process.isRunning { kill(process.processIdentifier, SIGKILL); kills += 1 }
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal)
        }
        #expect(kills == 2, "the run finished before a kill; make it longer")
        let partial = try mirageOK(["runs", "list", "--db", setup.scratch.path("killed.sqlite")])
        #expect(partial.contains("running"), "a killed run is left running: \(partial)")
        let resumed = try mirageOK(setup.arguments(db: "killed.sqlite") + decoders)
        #expect(resumed.contains("run 6"))

        let a = try Self.contents(db: setup.scratch.path("reference.sqlite"), runs: 6)
        let b = try Self.contents(db: setup.scratch.path("killed.sqlite"), runs: 6)
        #expect(a.items.map(\.count) == [10, 10, 10, 20, 20, 20])
        #expect(b.items == a.items)
        #expect(a.metrics.allSatisfy { !$0.isEmpty })
        #expect(b.metrics == a.metrics)
        let list = try mirageOK(["runs", "list", "--db", setup.scratch.path("killed.sqlite")])
        #expect(list.split(separator: "\n").count == 8 && !list.contains("running"), "six complete runs: \(list)")
        // A third invocation finds everything stored and changes nothing.
        let again = try mirageOK(setup.arguments(db: "killed.sqlite") + decoders)
        #expect(again.components(separatedBy: "(already complete)").count == 7)
        #expect(try Self.contents(db: setup.scratch.path("killed.sqlite"), runs: 6).items == a.items)
    }

    @Test(.enabled(if: RunCommandTests.available, RunCommandTests.missing))
    func shardsAreDisjointAndTogetherEqualTheUnshardedRun() throws {
        let setup = try Setup(chairTokens: 8)
        defer { setup.scratch.cleanup() }
        // The unsharded run from an experiment file (paths relative to it), the shards from flags.
        let experiment = try setup.scratch.write("experiment.yaml", """
        models: [tiny]
        protocols: [chair.yaml, pope.yaml]
        decoders: [{name: greedy}]
        seeds: [0]
        images: \(SharedData.url("coco/images").path)
        annotations: {chair_ground_truth: \(SharedData.url("chair/coco2014_gt_objects.json").path)}
        threads: 1
        db: all.sqlite
        prefix_cache: 0
        """)
        try mirageOK(["run", experiment, "--synonyms", SharedData.url("chair/synonyms.txt").path,
                      "--nltk-data", SharedData.url("nltk").path, "--wordnet", RunCommandTests.wordnet])
        // The unsharded run without the prefix cache, the shards with it: the same items.
        let shard0 = try mirage(setup.arguments(db: "s0.sqlite") + ["--decoder", "greedy", "--shard", "0/2", "--json-progress"])
        // Each image's prefix (same template and padding in both protocols) is computed by CHAIR, reused by POPE.
        #expect(shard0.stdout.contains("prefix cache: 0 of ") && shard0.stdout.contains("prefills reused"), "\(shard0.stdout)")
        let popeReuse = shard0.stdout.split(separator: "\n").filter { $0.contains("prefix cache:") }.last.map(String.init) ?? ""
        #expect(popeReuse.hasPrefix("  prefix cache: ") && !popeReuse.hasPrefix("  prefix cache: 0 "), "\(shard0.stdout)")
        try mirageOK(setup.arguments(db: "s1.sqlite") + ["--decoder", "greedy", "--shard", "1/2"])
        #expect(shard0.status == 0)
        let all = try Self.contents(db: setup.scratch.path("all.sqlite"), runs: 2)
        let s0 = try Self.contents(db: setup.scratch.path("s0.sqlite"), runs: 2)
        let s1 = try Self.contents(db: setup.scratch.path("s1.sqlite"), runs: 2)
        for run in 0..<2 {
            #expect(!s0.items[run].isEmpty && !s1.items[run].isEmpty)
            #expect(Set(s0.items[run]).isDisjoint(with: s1.items[run]))
            #expect(Set(s0.items[run]).union(s1.items[run]) == Set(all.items[run]))
            #expect(s0.items[run].count + s1.items[run].count == all.items[run].count)
        }
        // `mirage merge` of the two shard databases gives the unsharded runs: same items, same metrics, complete,
        // stored under the unsharded resume key (running the unsharded experiment on it finds them complete).
        try mirageOK(["merge", setup.scratch.path("merged.sqlite"), setup.scratch.path("s0.sqlite"), setup.scratch.path("s1.sqlite")])
        let merged = try Self.contents(db: setup.scratch.path("merged.sqlite"), runs: 2)
        #expect(merged.items == all.items)
        #expect(merged.metrics == all.metrics && all.metrics.allSatisfy { !$0.isEmpty })
        let rerun = try mirageOK(setup.arguments(db: "merged.sqlite") + ["--decoder", "greedy"])
        #expect(rerun.components(separatedBy: "(already complete)").count == 3, "\(rerun)")
        // --json-progress: one JSON object per item of this shard on stderr.
        let objects = shard0.stderr.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(objects.count == s0.items[0].count + s0.items[1].count)
        #expect(objects.allSatisfy { $0["status"] as? String == "ok" && $0["item"] is String && $0["total"] is Int })
        // Both shards' runs carry the same protocol as the unsharded run (what a merge pairs them by).
        let show = try mirageOK(["runs", "show", "1", "--db", setup.scratch.path("all.sqlite")])
        let show0 = try mirageOK(["runs", "show", "1", "--db", setup.scratch.path("s0.sqlite")])
        func protocolLine(_ s: String) -> String? { s.split(separator: "\n").first { $0.hasPrefix("Protocol") }.map(String.init) }
        #expect(protocolLine(show) != nil && protocolLine(show0) == protocolLine(show))
    }

    @Test(.enabled(if: RunCommandTests.available, RunCommandTests.missing))
    func corruptAndMissingImagesAreFailedItemsAndTheRunCompletes() throws {
        let setup = try Setup(ids: [192, 241, 257, 9], chairTokens: 8)
        defer { setup.scratch.cleanup() }
        let folder = setup.scratch.url.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for id in [192, 241, 257] {
            let name = "COCO_val2014_\(String(format: "%012d", id)).jpg"
            try FileManager.default.copyItem(at: SharedData.url("coco/images/\(name)"), to: folder.appendingPathComponent(name))
        }
        // 241: the first 600 bytes of the JPEG, then garbage. 9: not in the folder at all.
        let damaged = folder.appendingPathComponent("COCO_val2014_000000000241.jpg")
        let bytes = try Data(contentsOf: damaged)
        try (bytes.prefix(600) + Data(repeating: 0x5A, count: 64)).write(to: damaged)
        let result = try mirage(setup.arguments(db: "f.sqlite", images: folder.path) + ["--decoder", "greedy"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("2 failed: 1 missing image (e.g. missing image: image file not found in \(folder.path)"))
        #expect(result.stdout.contains("1 unreadable image (e.g. unreadable image: COCO_val2014_000000000241.jpg:"))
        let export = try mirageOK(["export", "1", "--format", "jsonl", "--db", setup.scratch.path("f.sqlite")])
        let rows = try export.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let status = Dictionary(uniqueKeysWithValues: rows.map { ($0["image_id"] as! Int, $0["status"] as! String) })
        #expect(status == [9: "failed", 192: "ok", 241: "failed", 257: "ok"])
        let reasons = rows.compactMap { $0["failure_reason"] as? String }
        #expect(reasons.contains { $0.hasPrefix("missing image: image file not found") && $0.contains("COCO_val2014_000000000009.jpg") })
        #expect(reasons.contains { $0.hasPrefix("unreadable image: COCO_val2014_000000000241.jpg") })
        let show = try mirageOK(["runs", "show", "1", "--db", setup.scratch.path("f.sqlite")])
        #expect(show.contains("complete"))
        #expect(metricsBlock(show).split(separator: "\n").contains { $0.contains("failed_items") && $0.hasSuffix(" 2") })
        // Rerunning skips the failed items; with --retry-failed, after the missing image is put in place, they
        // are decoded again: 9 succeeds now, 241 fails again, and the run completes with one failure.
        try FileManager.default.copyItem(at: SharedData.url("coco/images/COCO_val2014_000000000192.jpg"),
                                        to: folder.appendingPathComponent("COCO_val2014_000000000009.jpg"))
        let again = try mirage(setup.arguments(db: "f.sqlite", images: folder.path) + ["--decoder", "greedy"])
        #expect(again.stdout.contains("2 failed"))
        let retried = try mirage(setup.arguments(db: "f.sqlite", images: folder.path) + ["--decoder", "greedy", "--retry-failed"])
        #expect(retried.status == 0, "\(retried.stderr)")
        #expect(retried.stderr.contains("run 1: retrying 2 failed items"))
        let afterRetry = try mirageOK(["export", "1", "--format", "jsonl", "--db", setup.scratch.path("f.sqlite")])
            .split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(Dictionary(uniqueKeysWithValues: afterRetry.map { ($0["image_id"] as! Int, $0["status"] as! String) })
                == [9: "ok", 192: "ok", 241: "failed", 257: "ok"])
        let showRetried = try mirageOK(["runs", "show", "1", "--db", setup.scratch.path("f.sqlite")])
        #expect(showRetried.contains("complete"))
        #expect(metricsBlock(showRetried).split(separator: "\n").contains { $0.contains("failed_items") && $0.hasSuffix(" 1") })
        try FileManager.default.removeItem(at: folder.appendingPathComponent("COCO_val2014_000000000009.jpg"))
        // A decoder that throws on every item (DoLa asked for a layer the tiny model lacks): each readable image's
        // items fail with the decoder's message, the others keep their image reasons; with every item failed the
        // runs are stored as failed and the command exits 1, naming the reasons.
        let dola = try mirage(setup.arguments(db: "d.sqlite", images: folder.path) + ["--decoder", "dola,mature_layer=7"])
        #expect(dola.status == 1, "\(dola.stderr)")
        #expect(dola.stderr.contains("error: every item of run 1 (chair, ") && dola.stderr.contains("--retry-failed"))
        #expect(dola.stdout.contains("4 failed: 2 decoder error (e.g. decoder error: DoLa mature layer 7 does not exist"))
        #expect(dola.stdout.contains("1 missing image") && dola.stdout.contains("1 unreadable image"))
        #expect(try mirageOK(["runs", "list", "--db", setup.scratch.path("d.sqlite")]).components(separatedBy: "failed").count == 3)
        // POPE: the questions of the failed images failed too (2 per image); after the retry only 241's do.
        let pope = try mirageOK(["export", "2", "--format", "jsonl", "--db", setup.scratch.path("f.sqlite")])
        #expect(pope.components(separatedBy: "\"status\":\"failed\"").count - 1 == 2)
    }

    /// Without a prebuilt ground truth, `--instances` + `--captions` build CHAIR's (as CHAIR's reference does:
    /// the instance categories plus the objects the vocabulary finds in the captions), and items are scored
    /// against it.
    @Test(.enabled(if: RunCommandTests.available, RunCommandTests.missing))
    func groundTruthIsBuiltFromTheNamedAnnotationFiles() throws {
        let setup = try Setup(ids: [192, 241], chairTokens: 8)
        defer { setup.scratch.cleanup() }
        let instances = try setup.scratch.write("instances_val2014.json", """
            {"images": [{"id": 192, "file_name": "COCO_val2014_000000000192.jpg"}, {"id": 241, "file_name": "COCO_val2014_000000000241.jpg"}],
             "annotations": [{"id": 1, "image_id": 192, "category_id": 1}, {"id": 2, "image_id": 192, "category_id": 15},
                             {"id": 3, "image_id": 241, "category_id": 3}],
             "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 15, "name": "bench"}]}
            """)
        let captions = try setup.scratch.write("captions_val2014.json", """
            {"images": [{"id": 192}, {"id": 241}],
             "annotations": [{"id": 10, "image_id": 192, "caption": "A dog sits on a bench."},
                             {"id": 11, "image_id": 241, "caption": "A red car next to two buses."}]}
            """)
        let db = setup.scratch.path("built.sqlite")
        // A data store of its own, so the ground-truth cache starts empty and the build is reported.
        var environment = ProcessInfo.processInfo.environment
        environment["MIRAGE_DATA"] = setup.scratch.path("data-store")
        let result = try runProcess(try #require(BuiltProducts.mirage), [
            "run", "--model", setup.model, "--protocol", setup.scratch.path("chair.yaml"),
            "--images", SharedData.url("coco/images").path, "--instances", instances, "--captions", captions,
            "--synonyms", SharedData.url("chair/synonyms.txt").path, "--nltk-data", SharedData.url("nltk").path,
            "--wordnet", RunCommandTests.wordnet, "--threads", "1", "--db", db], environment: environment)
        #expect(result.status == 0, "mirage run failed: \(result.stderr)")
        #expect(result.stderr.contains("built CHAIR ground truth for 2 images from instances_val2014.json, captions_val2014.json"))
        var truth: [Int: Set<String>] = [:]
        for line in try mirageOK(["export", "1", "--format", "jsonl", "--db", db]).split(separator: "\n") {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            truth[object["image_id"] as! Int] = Set(object["ground_truth"] as! [String])
        }
        #expect(truth == [192: ["person", "bench", "dog"], 241: ["car", "bus"]])
    }

    /// The memory estimate is checked before a model is loaded: over the limit the run refuses with the
    /// numbers and what to do, and stores nothing; --ignore-memory-check runs anyway.
    @Test(.enabled(if: RunCommandTests.available, RunCommandTests.missing))
    func memoryEstimateOverTheLimitRefusesBeforeLoading() throws {
        let setup = try Setup(ids: [192], chairTokens: 4)
        defer { setup.scratch.cleanup() }
        let refused = try mirage(setup.arguments(db: "m.sqlite") + ["--memory-limit", "0.01"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("GiB of memory, 0.0 GiB available; use --quantize q8"), "\(refused.stderr)")
        #expect(refused.stderr.contains("--ignore-memory-check"))
        #expect(try mirageOK(["runs", "list", "--db", setup.scratch.path("m.sqlite")]).split(separator: "\n").count <= 2,
                "no run may be stored")
        let forced = try mirage(setup.arguments(db: "m.sqlite") + ["--memory-limit", "0.01", "--ignore-memory-check"])
        #expect(forced.status == 0, "\(forced.stderr)")
    }

    @Test func errorsSayWhatToDo() throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let none = try mirage(["run", "--db", scratch.path("x.sqlite")])
        #expect(none.status != 0 && none.stderr.contains("no model: give --model DIR"))
        let model = scratch.path("tiny")
        try mirageOK(["models", "synth", "--arch", "llava-llama", "--size", "tiny", "--seed", "1", "--out", model])
        let unknown = try mirage(["run", "--model", model, "--protocol", "opera-chair-513", "--decoder", "greedy", "--db", scratch.path("x.sqlite")])
        #expect(unknown.status != 0 && unknown.stderr.contains("no protocol named 'opera-chair-513'")
                && unknown.stderr.contains("opera-chair-512"))
        let decoder = try mirage(["run", "--model", model, "--protocol", "opera-chair-512", "--decoder", "beam,beams=2", "--db", scratch.path("x.sqlite")])
        #expect(decoder.status != 0 && decoder.stderr.contains("decoder 'beam,beams=2'"))
        // --record-attention is wired to MirageAnalysis' AttentionRecorder (OvertrustEndToEndTests).
        let prefix = try mirage(["run", "--prefix-cache=-1"])
        #expect(prefix.status != 0 && prefix.stderr.contains("--prefix-cache takes megabytes ≥ 0 (0 turns the cache off), got -1"))
        let shard = try mirage(["run", "--shard", "3/2"])
        #expect(shard.status != 0 && shard.stderr.contains("--shard takes i/n"))
        // A decoder listed twice with the same resolved settings is one run; with no image files every item fails
        // with its reason, the run is stored as failed and the command exits 1 (no shared data needed).
        _ = try scratch.write("q.jsonl", "{\"question_id\": 1, \"image\": \"COCO_val2014_000000000001.jpg\", \"text\": \"Is there a dog?\", \"label\": \"no\"}\n")
        _ = try scratch.write("p.yaml", "task: pope\nquestions: {path: q.jsonl}\nmax_new_tokens: 3\n")
        let twice = try mirage(["run", "--model", model, "--protocol", scratch.path("p.yaml"), "--decoder", "greedy",
                                "--decoder", "greedy,repetition_penalty=1.0", "--images", scratch.url.path, "--db", scratch.path("y.sqlite")])
        #expect(twice.status == 1 && twice.stderr.contains("run 1 is listed twice"))
        #expect(twice.stderr.contains("error: every item of run 1 (p, greedy(repetition_penalty=1.0)) failed: 1 failed: 1 missing image"))
        #expect(twice.stdout.contains("run 1  p  tiny  greedy(repetition_penalty=1.0)  seed 0  0 items, 1 failed") && !twice.stdout.contains("run 2"))
        #expect(twice.stdout.contains("1 failed: 1 missing image (e.g. missing image: image file not found in \(scratch.url.path)"))
        let list = try mirageOK(["run", "--list-protocols"])
        #expect(list.contains("opera-pope-adversarial") && list.contains("llava-pope-random"))
    }
}
