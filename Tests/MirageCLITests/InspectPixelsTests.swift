import Foundation
import Testing
import MirageTestSupport

/// `mirage inspect pixels` on committed fixtures: the SHA-256 it prints must be that of the float32 tensor
/// transformers 5.24 + Pillow 13 produced (Tests/MirageEngineTests/Fixtures/images/*.f32, written by
/// Scripts/fixtures/make_image_fixtures.py).
@Suite struct InspectPixelsTests {
    static let fixtures = SharedData.repositoryRoot.appendingPathComponent("Tests/MirageEngineTests/Fixtures/images")

    /// A model folder holding one of the manifest's processor configs as preprocessor_config.json.
    static func modelFolder(config name: String) throws -> URL {
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent("manifest.json"))) as! [String: Any]
        let config = (manifest["configs"] as! [String: Any])[name]!
        let dir = TestTemporary.root.appendingPathComponent("mirage-pixels-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("preprocessor_config.json"))
        return dir
    }

    @Test func jsonDigestMatchesTransformersTensor() throws {
        let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        for (config, pad) in [("clip_tiny", false), ("siglip_tiny", true)] {
            let model = try Self.modelFolder(config: config)
            defer { try? FileManager.default.removeItem(at: model) }
            let image = Self.fixtures.appendingPathComponent("orient6.jpg").path
            var arguments = ["inspect", "pixels", "--model", model.path, "--image", image, "--json", "--values", "3"]
            if pad { arguments.append("--pad-square") }
            let result = try runProcess(binary, arguments)
            #expect(result.status == 0, "\(result.stderr)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            let expectedFile = Self.fixtures.appendingPathComponent("orient6.jpg.\(config)\(pad ? ".pad" : "").f32")
            let expected = try Data(contentsOf: expectedFile)
            let sha = try runProcess(URL(fileURLWithPath: "/usr/bin/sha256sum"), [expectedFile.path])
            #expect(object["sha256"] as? String == String(sha.stdout.prefix(64)), "\(config) pad=\(pad)")
            #expect((object["decoded"] as? [String: Int]) == ["width": 23, "height": 37])
            // JSON carries the float32 values as decimal doubles; each must round back to the same float32.
            let first = expected.withUnsafeBytes { raw in (0..<3).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
            #expect((object["values"] as? [Double])?.map { Float($0) } == first)
        }
    }

    @Test func corruptImageAndMissingConfigAreClearErrors() throws {
        let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        let model = try Self.modelFolder(config: "clip_tiny")
        defer { try? FileManager.default.removeItem(at: model) }
        let truncated = try runProcess(binary, ["inspect", "pixels", "--model", model.path, "--image",
                                                Self.fixtures.appendingPathComponent("truncated.png").path])
        #expect(truncated.status != 0)
        #expect(truncated.stderr.contains("truncated PNG file"))
        let missing = try runProcess(binary, ["inspect", "pixels", "--model", "/nonexistent-model", "--image", "x.jpg"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("no preprocessor_config.json"))
    }
}
