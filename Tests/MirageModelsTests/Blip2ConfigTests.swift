import Foundation
import MirageEngine
import MirageModels
import MirageTestSupport
import Testing

/// A BLIP-2 / InstructBLIP config.json edited by hand is refused before any weight is read, with the field and the fix.
@Suite struct Blip2ConfigTests {
    static func shapeError(_ edit: @escaping (inout [String: Any]) -> Void) throws -> String {
        let folder = TestTemporary.url("blip2-config")
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Blip2Fixtures.folder("instructblip-f32-tied").appendingPathComponent("config.json"),
                                         to: folder.appendingPathComponent("config.json"))
        try ConfigJSON.edit(in: folder, edit)
        do {
            _ = try ModelFamilies.shape(of: folder)
            return ""
        } catch {
            return "\(error)"
        }
    }

    static func nested(_ key: String, _ field: String, _ value: Any) -> (inout [String: Any]) -> Void {
        { json in
            var object = json[key] as! [String: Any]
            object[field] = value
            json[key] = object
        }
    }

    @Test func badFieldsAreNamedWithTheirRange() throws {
        #expect(try Self.shapeError { _ in }.isEmpty, "the unedited config must load")
        #expect(try Self.shapeError(Self.nested("qformer_config", "num_attention_heads", 5)).contains("qformer_config.hidden_size"))
        #expect(try Self.shapeError(Self.nested("qformer_config", "encoder_hidden_size", 16)).contains("must match"))
        #expect(try Self.shapeError(Self.nested("qformer_config", "layer_norm_eps", 0)).contains("qformer_config.layer_norm_eps"))
        #expect(try Self.shapeError(Self.nested("vision_config", "patch_size", 5)).contains("vision_config.image_size"))
        #expect(try Self.shapeError(Self.nested("text_config", "model_type", "opt")).contains("OPT and Flan-T5"))
        #expect(try Self.shapeError { $0["image_token_index"] = 5000 }.contains("image_token_index"))
        #expect(try Self.shapeError { $0["num_query_tokens"] = 0 }.contains("num_query_tokens"))
        #expect(try Self.shapeError { $0.removeValue(forKey: "image_token_index") }.contains("re-save"))
    }
}
