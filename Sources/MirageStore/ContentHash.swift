import Foundation
import MirageData

/// SHA-256 hex digests for protocol identities and import de-duplication (MirageData's implementation).
public enum ContentHash {
    public static func sha256Hex(_ data: Data) -> String { SHA256.hex(of: data) }
    public static func sha256Hex(ofFile url: URL) throws -> String { try SHA256.hex(ofFile: url) }
}
