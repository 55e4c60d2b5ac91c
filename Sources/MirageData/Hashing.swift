import Foundation

// Streaming SHA-256 (FIPS 180-4) and MD5 (RFC 1321), written for this project. Constants are the ones
// the standards define (SHA-256 §4.2.2 and §5.3.3; MD5 §3.4 sine table and shift amounts).

/// A hash function that absorbs bytes incrementally.
public protocol StreamingHash {
    init()
    mutating func update(_ bytes: UnsafeRawBufferPointer)
    /// The digest of everything absorbed so far. The hasher must not be updated afterwards.
    mutating func finalize() -> [UInt8]
}

extension StreamingHash {
    public mutating func update<D: DataProtocol>(_ data: D) {
        for region in data.regions { region.withUnsafeBytes { update($0) } }
    }

    public mutating func update(_ string: String) {
        var s = string
        s.withUTF8 { update(UnsafeRawBufferPointer($0)) }
    }

    /// Lower-case hexadecimal digest.
    public mutating func hexDigest() -> String { Hex.encode(finalize()) }

    /// Digest of a byte sequence in one call.
    public static func hex<D: DataProtocol>(of data: D) -> String {
        var h = Self()
        h.update(data)
        return h.hexDigest()
    }

    /// Digest of a file, read in 1 MiB chunks (constant memory).
    public static func hex(ofFile url: URL) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw HashingError.unreadable(url.path)
        }
        defer { try? handle.close() }
        var h = Self()
        let chunk = 1 << 20
        while true {
            let data = try handle.read(upToCount: chunk) ?? Data()
            if data.isEmpty { break }
            h.update(data)
        }
        return h.hexDigest()
    }
}

public enum HashingError: Error, CustomStringConvertible {
    case unreadable(String)
    public var description: String {
        switch self {
        case .unreadable(let path): return "cannot read \(path) to hash it: check that the file exists and is readable"
        }
    }
}

public enum Hex {
    public static func encode(_ bytes: [UInt8]) -> String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

// MARK: - Shared Merkle–Damgård framing (64-byte blocks, 0x80 padding, 64-bit bit length)

protocol BlockCompressor {
    init()
    /// Whether the message length is appended big-endian (SHA-256) or little-endian (MD5).
    static var bigEndianLength: Bool { get }
    mutating func compress(blocks: UnsafeRawPointer, count: Int)
    var digest: [UInt8] { get }
}

/// Buffers input into 64-byte blocks for a compressor and applies the final padding.
struct BlockHasher<C: BlockCompressor> {
    var core = C()
    var buffer = [UInt8](repeating: 0, count: 64)
    var buffered = 0
    var length: UInt64 = 0

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var p = bytes.baseAddress, bytes.count > 0 else { return }
        var n = bytes.count
        length &+= UInt64(n)
        if buffered > 0 {
            let take = min(64 - buffered, n)
            buffer.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: buffered).copyMemory(from: p, byteCount: take) }
            buffered += take; p += take; n -= take
            if buffered == 64 {
                buffer.withUnsafeBytes { core.compress(blocks: $0.baseAddress!, count: 1) }
                buffered = 0
            }
        }
        let whole = n / 64
        if whole > 0 {
            core.compress(blocks: p, count: whole)
            p += whole * 64; n -= whole * 64
        }
        if n > 0 {
            buffer.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: p, byteCount: n) }
            buffered = n
        }
    }

    mutating func finalize() -> [UInt8] {
        let bitLength = length &* 8
        var pad = [UInt8](repeating: 0, count: (buffered < 56 ? 56 : 120) - buffered)
        pad[0] = 0x80
        let order = C.bigEndianLength ? Array((0..<8).reversed()) : Array(0..<8)
        for i in order { pad.append(UInt8(truncatingIfNeeded: bitLength >> (UInt64(i) * 8))) }
        pad.withUnsafeBytes { update($0) }
        return core.digest
    }
}

// MARK: - SHA-256

public struct SHA256: StreamingHash {
    var hasher = BlockHasher<SHA256Compressor>()
    public init() {}
    public mutating func update(_ bytes: UnsafeRawBufferPointer) { hasher.update(bytes) }
    public mutating func finalize() -> [UInt8] { hasher.finalize() }
}

/// SHA-256 compression function and state.
struct SHA256Compressor: BlockCompressor {
    static let bigEndianLength = true

    var h: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) =
        (0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19)
    init() {}

    var digest: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(32)
        for word in [h.0, h.1, h.2, h.3, h.4, h.5, h.6, h.7] {
            out.append(UInt8(word >> 24)); out.append(UInt8((word >> 16) & 0xff))
            out.append(UInt8((word >> 8) & 0xff)); out.append(UInt8(word & 0xff))
        }
        return out
    }

    /// FIPS 180-4 §4.2.2: first 32 bits of the fractional parts of the cube roots of the first 64 primes.
    static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    @inline(__always) private static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x &>> n) | (x &<< (32 &- n)) }

    /// One round with the working variables passed by position (the caller rotates the roles, so no
    /// register shuffling is needed).
    @inline(__always)
    private static func round(_ a: UInt32, _ b: UInt32, _ c: UInt32, _ d: inout UInt32,
                              _ e: UInt32, _ f: UInt32, _ g: UInt32, _ h: inout UInt32, _ kw: UInt32) {
        let t1 = h &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ (g ^ (e & (f ^ g))) &+ kw
        let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) | (c & (a | b)))
        d = d &+ t1
        h = t1 &+ t2
    }

    mutating func compress(blocks: UnsafeRawPointer, count: Int) {
        var (a, b, c, d, e, f, g, h) = self.h
        Self.k.withUnsafeBufferPointer { kp in
            let k = kp.baseAddress!
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { wb in
                let w = wb.baseAddress!
                for blk in 0..<count {
                    let base = blocks + blk &* 64
                    for t in 0..<16 {
                        w[t] = UInt32(bigEndian: base.loadUnaligned(fromByteOffset: t &* 4, as: UInt32.self))
                    }
                    for t in 16..<64 {
                        let x = w[t &- 15], y = w[t &- 2]
                        let s0 = Self.rotr(x, 7) ^ Self.rotr(x, 18) ^ (x &>> 3)
                        let s1 = Self.rotr(y, 17) ^ Self.rotr(y, 19) ^ (y &>> 10)
                        w[t] = w[t &- 16] &+ s0 &+ w[t &- 7] &+ s1
                    }
                    let (a0, b0, c0, d0, e0, f0, g0, h0) = (a, b, c, d, e, f, g, h)
                    var t = 0
                    while t < 64 {
                        Self.round(a, b, c, &d, e, f, g, &h, k[t] &+ w[t])
                        Self.round(h, a, b, &c, d, e, f, &g, k[t &+ 1] &+ w[t &+ 1])
                        Self.round(g, h, a, &b, c, d, e, &f, k[t &+ 2] &+ w[t &+ 2])
                        Self.round(f, g, h, &a, b, c, d, &e, k[t &+ 3] &+ w[t &+ 3])
                        Self.round(e, f, g, &h, a, b, c, &d, k[t &+ 4] &+ w[t &+ 4])
                        Self.round(d, e, f, &g, h, a, b, &c, k[t &+ 5] &+ w[t &+ 5])
                        Self.round(c, d, e, &f, g, h, a, &b, k[t &+ 6] &+ w[t &+ 6])
                        Self.round(b, c, d, &e, f, g, h, &a, k[t &+ 7] &+ w[t &+ 7])
                        t &+= 8
                    }
                    a = a &+ a0; b = b &+ b0; c = c &+ c0; d = d &+ d0
                    e = e &+ e0; f = f &+ f0; g = g &+ g0; h = h &+ h0
                }
            }
        }
        self.h = (a, b, c, d, e, f, g, h)
    }
}

// MARK: - MD5

/// MD5, only for verifying upstream checksums that are published as MD5 (COCO's zips, nltk_data's index).
public struct MD5: StreamingHash {
    var hasher = BlockHasher<MD5Compressor>()
    public init() {}
    public mutating func update(_ bytes: UnsafeRawBufferPointer) { hasher.update(bytes) }
    public mutating func finalize() -> [UInt8] { hasher.finalize() }
}

/// MD5 compression function and state.
struct MD5Compressor: BlockCompressor {
    static let bigEndianLength = false

    var s: (UInt32, UInt32, UInt32, UInt32) = (0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476)
    init() {}

    var digest: [UInt8] {
        var out = [UInt8]()
        for word in [s.0, s.1, s.2, s.3] {
            for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: word >> (UInt32(i) * 8))) }
        }
        return out
    }

    /// RFC 1321 §3.4: T[i] = floor(2^32 * |sin(i + 1)|).
    static let t: [UInt32] = (0..<64).map { UInt32(truncatingIfNeeded: Int64(abs(sin(Double($0 + 1))) * 4294967296.0)) }
    /// Per-round left-rotation amounts (RFC 1321 §3.4).
    static let shifts: [UInt32] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21]

    mutating func compress(blocks: UnsafeRawPointer, count: Int) {
        var (a0, b0, c0, d0) = s
        Self.t.withUnsafeBufferPointer { tp in
            Self.shifts.withUnsafeBufferPointer { sp in
                for blk in 0..<count {
                    let base = blocks + blk * 64
                    @inline(__always) func m(_ i: Int) -> UInt32 {
                        UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
                    }
                    var a = a0, b = b0, c = c0, d = d0
                    for i in 0..<64 {
                        var f: UInt32
                        let g: Int
                        switch i >> 4 {
                        case 0: f = (b & c) | (~b & d); g = i
                        case 1: f = (d & b) | (~d & c); g = (5 &* i &+ 1) & 15
                        case 2: f = b ^ c ^ d; g = (3 &* i &+ 5) & 15
                        default: f = c ^ (b | ~d); g = (7 &* i) & 15
                        }
                        f = f &+ a &+ tp[i] &+ m(g)
                        let r = sp[(i >> 4) * 4 + (i & 3)]
                        a = d; d = c; c = b
                        b = b &+ ((f << r) | (f >> (32 - r)))
                    }
                    a0 = a0 &+ a; b0 = b0 &+ b; c0 = c0 &+ c; d0 = d0 &+ d
                }
            }
        }
        s = (a0, b0, c0, d0)
    }
}

/// Which digest a pinned checksum uses.
public enum ChecksumAlgorithm: String, Sendable, Codable {
    case sha256, md5
}

/// A pinned checksum: algorithm and lower-case hex digest.
public struct Checksum: Sendable, Hashable, Codable, CustomStringConvertible {
    public var algorithm: ChecksumAlgorithm
    public var hex: String

    public init(_ algorithm: ChecksumAlgorithm, _ hex: String) {
        self.algorithm = algorithm
        self.hex = hex.lowercased()
    }

    public static func sha256(_ hex: String) -> Checksum { Checksum(.sha256, hex) }
    public static func md5(_ hex: String) -> Checksum { Checksum(.md5, hex) }

    public var description: String { "\(algorithm.rawValue):\(hex)" }

    /// Computes this checksum's algorithm over a file.
    public func compute(file url: URL) throws -> String {
        switch algorithm {
        case .sha256: return try SHA256.hex(ofFile: url)
        case .md5: return try MD5.hex(ofFile: url)
        }
    }

    public func matches(file url: URL) throws -> Bool { try compute(file: url) == hex }
}
