import Foundation
import Testing
import MirageTestSupport

/// `models synth --arch llava-*`, `inspect logits --image` and `generate --image` end to end, against
/// transformers' LlavaProcessor + LlavaForConditionalGeneration on the same synthetic folder and image
/// (Tests/MirageEngineTests/Fixtures/llava/pipeline.json, Scripts/fixtures/make_llava_pipeline_reference.py).
@Suite struct LlavaCLITests {
    static let fixtures = SharedData.repositoryRoot.appendingPathComponent("Tests/MirageEngineTests/Fixtures/llava")

    func mirage(_ arguments: [String]) throws -> ProcessResult {
        let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        return try runProcess(binary, arguments)
    }

    @Test func synthInspectAndGenerateWithAnImage() throws {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("pipeline.json"))) as! [String: Any]
        let first = (json["cases"] as! [[String: Any]])[0]
        let synth = first["synth"] as! [String: Any]
        let folder = TestTemporary.root.appendingPathComponent("mirage-cli-llava-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let made = try mirage(["models", "synth", "--arch", synth["arch"] as! String, "--vision", synth["vision"] as! String,
                               "--size", "tiny", "--seed", "\(synth["seed"] as! Int)", "--dtype", "f32", "--out", folder.path])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(made.stdout.contains("16 image tokens"))
        let image = Self.fixtures.appendingPathComponent("pipeline.png").path
        let inspected = try mirage(["inspect", "logits", "--model", folder.path, "--image", image, "--prompt",
                                    first["prompt"] as! String, "--template", first["template"] as! String, "--top", "3", "--json"])
        #expect(inspected.status == 0, "\(inspected.stderr)")
        let out = try JSONSerialization.jsonObject(with: Data(inspected.stdout.utf8)) as! [String: Any]
        #expect(out["prompt_ids"] as? [Int] == (first["input_ids"] as! [NSNumber]).map(\.intValue))
        let logits = (first["last_logits"] as! [NSNumber]).map(\.doubleValue)
        let expectedTop = logits.indices.sorted { logits[$0] > logits[$1] }.prefix(3)
        #expect((out["top"] as! [[String: Any]]).map { $0["id"] as! Int } == Array(expectedTop))
        #expect(inspected.stderr.contains("image rows 6..<22"))

        let generated = try mirage(["generate", "--model", folder.path, "--image", image, "--prompt", "Describe the scene.",
                                    "--max-new-tokens", "4", "--ids", "--ignore-eos"])
        #expect(generated.status == 0, "\(generated.stderr)")
        let ids = try JSONSerialization.jsonObject(with: Data(generated.stdout.utf8)) as! [Int]
        #expect(ids.count == 4 && ids[0] == expectedTop.first)

        let idsWithImage = try mirage(["inspect", "logits", "--model", folder.path, "--image", image, "--ids", "1,2"])
        #expect(idsWithImage.status != 0 && idsWithImage.stderr.contains("--image needs --prompt"))
        // Without --image a LLaVA folder runs its decoder on text alone.
        let textOnly = try mirage(["generate", "--model", folder.path, "--prompt", "hello", "--max-new-tokens", "3", "--ids", "--ignore-eos"])
        #expect(textOnly.status == 0, "\(textOnly.stderr)")
        // --image on a text-only model says what is needed.
        let textFolder = folder.appendingPathComponent("text-only")
        _ = try mirage(["models", "synth", "--arch", "llama", "--size", "tiny", "--out", textFolder.path, "--dtype", "f32"])
        let refused = try mirage(["generate", "--model", textFolder.path, "--image", image, "--prompt", "x"])
        #expect(refused.status != 0 && refused.stderr.contains("needs a vision-language model"))
    }

    /// `--template processor` gives exactly what transformers' LlavaProcessor builds from (image, text): the
    /// text as written with its <image> expanded (Fixtures/llava/processor.json,
    /// Scripts/fixtures/make_llava_processor_reference.py), on both synthetic folders and two texts.
    @Test func processorTemplateBuildsWhatTheProcessorBuilds() throws {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("processor.json"))) as! [String: Any]
        let image = Self.fixtures.appendingPathComponent("pipeline.png").path
        var folders: [String: URL] = [:]
        defer { for folder in folders.values { try? FileManager.default.removeItem(at: folder) } }
        let cases = json["cases"] as! [[String: Any]]
        #expect(cases.count == 4)
        for c in cases {
            let synth = c["synth"] as! [String: Any]
            let key = "\(synth["arch"]!)-\(synth["vision"]!)-\(synth["seed"]!)"
            let folder: URL
            if let made = folders[key] {
                folder = made
            } else {
                folder = TestTemporary.root.appendingPathComponent("mirage-cli-processor-\(UUID().uuidString)")
                folders[key] = folder
                let made = try mirage(["models", "synth", "--arch", synth["arch"] as! String, "--vision", synth["vision"] as! String,
                                       "--size", "tiny", "--seed", "\(synth["seed"] as! Int)", "--dtype", "f32", "--out", folder.path])
                #expect(made.status == 0, "\(made.stderr)")
            }
            let text = c["text"] as! String
            let inspected = try mirage(["inspect", "logits", "--model", folder.path, "--image", image, "--prompt", text,
                                        "--template", "processor", "--top", "3", "--json"])
            #expect(inspected.status == 0, "\(inspected.stderr)")
            let out = try JSONSerialization.jsonObject(with: Data(inspected.stdout.utf8)) as! [String: Any]
            #expect(out["prompt_ids"] as? [Int] == (c["input_ids"] as! [NSNumber]).map(\.intValue), "\(key) \(text.debugDescription)")
            let logits = (c["last_logits"] as! [NSNumber]).map(\.doubleValue)
            let expectedTop = Array(logits.indices.sorted { logits[$0] > logits[$1] }.prefix(3))
            let top = out["top"] as! [[String: Any]]
            #expect(top.map { $0["id"] as! Int } == expectedTop, "\(key) \(text.debugDescription)")
            for entry in top {
                let id = entry["id"] as! Int
                #expect(abs((entry["logit"] as! Double) - logits[id]) <= 1e-4 * max(1, abs(logits[id])))
            }
            let generated = try mirage(["generate", "--model", folder.path, "--image", image, "--prompt", text,
                                        "--template", "processor", "--max-new-tokens", "1", "--ids", "--ignore-eos"])
            #expect(generated.status == 0, "\(generated.stderr)")
            #expect((try? JSONSerialization.jsonObject(with: Data(generated.stdout.utf8))) as? [Int] == [expectedTop[0]])
        }
        // A text without the image marker: the processor needs one per image, and so does Mirage.
        let folder = try #require(folders.values.first)
        let missing = try mirage(["inspect", "logits", "--model", folder.path, "--image", image, "--prompt", "no marker",
                                  "--template", "processor"])
        #expect(missing.status != 0 && missing.stderr.contains("<image>"))
    }

    /// `models families` lists the registry; `models synth --arch llava-original` writes the model and its tower
    /// folder; the tower is found beside the model, and elsewhere only with --vision-tower (the error says where
    /// Mirage looked and how to get it).
    @Test func familiesAndTheOriginalLlavaLayout() throws {
        let families = try mirage(["models", "families"])
        #expect(families.status == 0 && families.stdout.contains("llava: ") && families.stdout.contains("llava-original: "))
        #expect(families.stdout.contains("--arch llava-llama|llava-qwen2") && families.stdout.contains("--arch llava-original"))
        let root = TestTemporary.root.appendingPathComponent("mirage-cli-llava-original-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let model = root.appendingPathComponent("llava-v1.5-tiny")
        let made = try mirage(["models", "synth", "--arch", "llava-original", "--size", "tiny", "--seed", "1", "--dtype", "f32",
                               "--out", model.path])
        #expect(made.status == 0, "\(made.stderr)")
        let tower = root.appendingPathComponent("clip-vit-tiny-patch8-32-seed1")
        #expect(FileManager.default.fileExists(atPath: tower.appendingPathComponent("preprocessor_config.json").path))
        let image = Self.fixtures.appendingPathComponent("pipeline.png").path
        let args = ["generate", "--model", model.path, "--image", image, "--prompt", "Describe.", "--max-new-tokens", "3",
                    "--ids", "--ignore-eos"]
        let beside = try mirage(args)
        #expect(beside.status == 0, "\(beside.stderr)")
        // inspect pixels reads the tower folder's preprocessor_config.json.
        let pixels = try mirage(["inspect", "pixels", "--model", model.path, "--image", image, "--no-pad-square"])
        #expect(pixels.status == 0 && pixels.stdout.contains("crop       32x32"), "\(pixels.stdout) \(pixels.stderr)")
        let moved = root.appendingPathComponent("towers/elsewhere")
        try FileManager.default.createDirectory(at: moved.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.moveItem(at: tower, to: moved)
        let lost = try mirage(args)
        #expect(lost.status != 0 && lost.stderr.contains("--vision-tower DIR") && lost.stderr.contains(tower.path))
        let given = try mirage(args + ["--vision-tower", moved.path])
        #expect(given.status == 0, "\(given.stderr)")
        #expect(given.stdout == beside.stdout)
        let unknown = try mirage(["models", "synth", "--arch", "llava-nope", "--size", "tiny", "--out", root.appendingPathComponent("x").path])
        #expect(unknown.status != 0 && unknown.stderr.contains("llava-original"))
    }
}
