import Foundation
import MirageData
@testable import MirageEngine
@testable import MirageImaging

/// Tests/MirageEngineTests/Fixtures/images, written by Scripts/fixtures/make_image_fixtures.py from
/// Pillow 13.0.0 + transformers 5.24.0.
enum ImageFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/images")

    static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    static func bytes(_ name: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: url(name))) }

    static let manifest: [String: Any] = {
        let data = try! Data(contentsOf: url("manifest.json"))
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }()

    static func floats(_ name: String) throws -> [Float] {
        let data = try Data(contentsOf: url(name))
        return data.withUnsafeBytes { raw in
            (0..<data.count / 4).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }

    static func config(_ name: String) throws -> ImagePreprocessorConfig {
        let configs = manifest["configs"] as! [String: [String: Any]]
        return try ImagePreprocessorConfig.parse(configs[name]!, file: name)
    }

    static func sha256(_ bytes: [UInt8]) -> String { SHA256.hex(of: bytes) }

    /// SHA-256 of the float32 values as little-endian bytes (this platform's layout).
    static func sha256(_ floats: [Float]) -> String {
        var hasher = SHA256()
        floats.withUnsafeBytes { hasher.update($0) }
        return hasher.hexDigest()
    }
}
