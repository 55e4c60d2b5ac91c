import Foundation
@testable import MirageModels
import Testing
import MirageTestSupport
@testable import MirageEngine

/// Hand-edited config.json values end in a `badConfig` error naming the file, the field and its allowed
/// range, before anything is allocated from them (each of these trapped or was accepted silently before).
@Suite struct ConfigValidationTests {
    /// A tiny synthetic LLaVA folder (CLIP tower, Llama decoder) whose config.json `edit` changes.
    static func llavaFolder(edit: (inout [String: Any]) -> Void) throws -> URL {
        let dir = TestTemporary.url("mirage-config")
        let spec = SyntheticLlavaSpec(text: SyntheticModelSpec(architecture: .llama, size: .tiny, seed: 1, dtype: .f32),
                                      vision: SyntheticVisionSpec(kind: .clip, size: .tiny, seed: 1, dtype: .f32))
        try spec.write(to: dir)
        try ConfigJSON.edit(in: dir, edit)
        return dir
    }

    /// Sets `key` of the nested object `section` ("text_config", "vision_config").
    static func set(_ section: String, _ key: String, _ value: Any) -> (inout [String: Any]) -> Void {
        { json in
            var inner = json[section] as! [String: Any]
            inner[key] = value
            json[section] = inner
        }
    }

    /// The error loading the LLaVA folder edited by `edit` gives (nil when it loads).
    static func llavaLoadError(_ edit: @escaping (inout [String: Any]) -> Void) throws -> ModelError? {
        let dir = try llavaFolder(edit: edit)
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            _ = try LlavaForConditionalGeneration(folder: dir, options: LoadOptions(threads: 1))
            return nil
        } catch let error as ModelError {
            return error
        }
    }

    /// Expects `badConfig` naming `field` with a detail containing each of `phrases`.
    static func expectBadConfig(_ error: ModelError?, field: String, _ phrases: [String],
                                sourceLocation: SourceLocation = #_sourceLocation) {
        guard case let .badConfig(path, actualField, detail)? = error else {
            Issue.record("expected badConfig for \(field), got \(String(describing: error))", sourceLocation: sourceLocation)
            return
        }
        #expect(path.hasSuffix("config.json"), sourceLocation: sourceLocation)
        #expect(actualField == field, sourceLocation: sourceLocation)
        for phrase in phrases {
            #expect(detail.contains(phrase), "\(detail)", sourceLocation: sourceLocation)
        }
        #expect(error!.description.contains(field), sourceLocation: sourceLocation)
    }

    @Test func untouchedSyntheticFolderLoads() throws {
        #expect(try Self.llavaLoadError { _ in } == nil)
    }

    @Test func negativeTextLayerCount() throws {
        let error = try Self.llavaLoadError(Self.set("text_config", "num_hidden_layers", -1))
        Self.expectBadConfig(error, field: "text_config.num_hidden_layers", ["is -1", "1...1024"])
    }

    @Test func zeroPatchSize() throws {
        let error = try Self.llavaLoadError(Self.set("vision_config", "patch_size", 0))
        Self.expectBadConfig(error, field: "vision_config.patch_size", ["is 0", "1...32"])
    }

    @Test func zeroVisionHeads() throws {
        let error = try Self.llavaLoadError(Self.set("vision_config", "num_attention_heads", 0))
        Self.expectBadConfig(error, field: "vision_config.num_attention_heads", ["is 0", "1...1024"])
    }

    @Test func hugeTextHeadCount() throws {
        let error = try Self.llavaLoadError(Self.set("text_config", "num_attention_heads", 1 << 62))
        Self.expectBadConfig(error, field: "text_config.num_attention_heads", ["\(1 << 62)", "1...1024"])
    }

    @Test func hugeTextLayerCount() throws {
        let error = try Self.llavaLoadError(Self.set("text_config", "num_hidden_layers", 1 << 40))
        Self.expectBadConfig(error, field: "text_config.num_hidden_layers", ["\(1 << 40)", "1...1024"])
    }

    @Test func zeroRopeTheta() throws {
        let error = try Self.llavaLoadError { json in
            var text = json["text_config"] as! [String: Any]
            var rope = text["rope_parameters"] as! [String: Any]
            rope["rope_theta"] = 0
            text["rope_parameters"] = rope
            json["text_config"] = text
        }
        Self.expectBadConfig(error, field: "text_config.rope_parameters.rope_theta", ["is 0", "above 0"])
    }

    @Test func unknownTextActivation() throws {
        let error = try Self.llavaLoadError(Self.set("text_config", "hidden_act", "relu6"))
        Self.expectBadConfig(error, field: "text_config.hidden_act", ["relu6", "silu"])
    }

    @Test func headsThatDoNotDivideTheHiddenSize() throws {
        let error = try Self.llavaLoadError(Self.set("vision_config", "num_attention_heads", 3))
        Self.expectBadConfig(error, field: "vision_config.hidden_size", ["not a multiple", "vision_config.num_attention_heads (3)"])
        let kv = try Self.llavaLoadError(Self.set("text_config", "num_key_value_heads", 3))
        Self.expectBadConfig(kv, field: "text_config.num_attention_heads", ["not a multiple", "text_config.num_key_value_heads (3)"])
    }

    @Test func patchSizeThatDoesNotDivideTheImage() throws {
        let error = try Self.llavaLoadError(Self.set("vision_config", "patch_size", 5))
        Self.expectBadConfig(error, field: "vision_config.image_size", ["not a multiple", "patch_size (5)"])
    }

    @Test func epsilonAndNumbersOutsideIntRange() throws {
        let eps = try Self.llavaLoadError(Self.set("vision_config", "layer_norm_eps", -1e-5))
        Self.expectBadConfig(eps, field: "vision_config.layer_norm_eps", ["above 0"])
        let rms = try Self.llavaLoadError(Self.set("text_config", "rms_norm_eps", 0))
        Self.expectBadConfig(rms, field: "text_config.rms_norm_eps", ["above 0"])
        // 1e300 once trapped converting to Int.
        let huge = try Self.llavaLoadError(Self.set("text_config", "num_hidden_layers", 1e300))
        Self.expectBadConfig(huge, field: "text_config.num_hidden_layers", ["must be an integer"])
        let fraction = try Self.llavaLoadError(Self.set("vision_config", "image_size", 32.5))
        Self.expectBadConfig(fraction, field: "vision_config.image_size", ["must be an integer"])
    }

    @Test func projectorFields() throws {
        let token = try Self.llavaLoadError { $0["image_token_id"] = 1 << 30 }
        Self.expectBadConfig(token, field: "image_token_id", ["\(1 << 30)", "0...511"])
        let layer = try Self.llavaLoadError { $0["vision_feature_layer"] = -40 }
        Self.expectBadConfig(layer, field: "vision_feature_layer", ["-40", "-3...2"])
    }

    @Test func standaloneTextModelNamesTheFieldWithoutPrefix() throws {
        let dir = TestTemporary.url("mirage-config")
        defer { try? FileManager.default.removeItem(at: dir) }
        try SyntheticModelSpec(architecture: .qwen2, size: .tiny, seed: 2, dtype: .f32).write(to: dir)
        try ConfigJSON.edit(in: dir) { $0["num_hidden_layers"] = -1 }
        var error: ModelError?
        do { _ = try LanguageModel(folder: dir, options: LoadOptions(threads: 1)) } catch let e as ModelError { error = e }
        Self.expectBadConfig(error, field: "num_hidden_layers", ["is -1", "1...1024"])
        try ConfigJSON.edit(in: dir) { $0["num_hidden_layers"] = 2; $0["hidden_act"] = "gelu" }
        error = nil
        do { _ = try LanguageModel(folder: dir, options: LoadOptions(threads: 1)) } catch let e as ModelError { error = e }
        Self.expectBadConfig(error, field: "hidden_act", ["'gelu'", "silu"])
    }

    @Test func llama3ScalingNeedsOrderedFrequencyFactors() throws {
        var config = SyntheticModelSpec(architecture: .llama, size: .tiny, seed: 0).config
        config.ropeScaling = .llama3(factor: 8, lowFreqFactor: 4, highFreqFactor: 4, originalMaxPositions: 8192)
        #expect(throws: ModelError.self) { try config.validate(path: "config.json") }
        config.ropeScaling = .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192)
        try config.validate(path: "config.json")
    }

    /// Configs built in code are checked too, before the weights are touched.
    @Test func configsBuiltInCodeAreValidatedAtLoad() throws {
        let dir = TestTemporary.url("mirage-config")
        defer { try? FileManager.default.removeItem(at: dir) }
        let spec = SyntheticModelSpec(architecture: .llama, size: .tiny, seed: 3, dtype: .f32)
        try spec.write(to: dir)
        var config = spec.config
        config.numLayers = 0
        var error: ModelError?
        do {
            _ = try LanguageModel(config: config, generationConfig: nil, tensors: TensorStore(folder: dir),
                                  naming: .causalLM, options: LoadOptions(threads: 1))
        } catch let e as ModelError { error = e }
        Self.expectBadConfig(error, field: "num_hidden_layers", ["is 0"])
        // A zero head count no longer divides by zero in the initialiser; validation reports it.
        let zeroHeads = ModelConfig(architecture: .llama, hiddenSize: 64, intermediateSize: 128, numLayers: 2,
                                    numHeads: 0, numKVHeads: 0, vocabSize: 512, tieWordEmbeddings: false)
        #expect(throws: ModelError.self) { try zeroHeads.validate(path: "config.json") }
    }

    /// A safetensors shape whose byte count overflows Int (2^61 F64 elements) is a header error, not a trap.
    @Test func safetensorsByteCountOverflowIsAHeaderError() throws {
        let dir = TestTemporary.url("mirage-config")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let header = #"{"t": {"dtype": "F64", "shape": [2305843009213693952], "data_offsets": [0, 8]}}"#
        var data = Data()
        var length = UInt64(header.utf8.count).littleEndian
        data.append(Data(bytes: &length, count: 8))
        data.append(contentsOf: Array(header.utf8))
        data.append(Data(count: 8))
        let path = dir.appendingPathComponent("model.safetensors").path
        try data.write(to: URL(fileURLWithPath: path))
        do {
            _ = try SafeTensorsFile(path: path)
            Issue.record("an overflowing shape was accepted")
        } catch let error as ModelError {
            guard case .byteCountMismatch = error else { Issue.record("\(error)"); return }
        }
    }

    @Test func unreadableConfigSaysWhy() throws {
        let dir = TestTemporary.url("mirage-config")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent("config.json")
        try Data("{\"model_type\": \"llava\", ".utf8).write(to: url)
        do {
            _ = try LlavaConfig.load(from: url)
            Issue.record("a truncated config.json loaded")
        } catch let error as ModelError {
            guard case .unreadableConfig = error else { Issue.record("\(error)"); return }
            #expect(error.description.contains("not valid JSON"))
        }
        try Data("[1, 2]".utf8).write(to: url)
        #expect(throws: ModelError.self) { _ = try ModelConfig.load(from: url) }
        try FileManager.default.removeItem(at: url)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        do {
            _ = try LlavaConfig.readJSON(from: url)
            Issue.record("a directory was read as config.json")
        } catch let error as ModelError {
            #expect(error.description.contains("is a directory"))
        }
    }
}
