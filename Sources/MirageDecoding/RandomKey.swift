/// A counter-based random stream: Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers:
/// as easy as 1, 2, 3", SC 2011; constants and round function from that paper / Random123).
///
/// A draw is a pure function of (key, counter): the key comes from the run seed and the item's id, the
/// counter from (generation step, draw index within the step, stream). So an item's samples do not depend
/// on which items ran before it, in which order, or whether the run was resumed.
public struct RandomKey: Sendable, Equatable, Hashable {
    public var key: (UInt32, UInt32) { (UInt32(truncatingIfNeeded: value), UInt32(truncatingIfNeeded: value >> 32)) }
    public let value: UInt64

    /// The key of a run seed alone (single-item use).
    public init(seed: UInt64) { value = RandomKey.splitMix(seed) }

    /// The key of an item: the run seed mixed with the item's id (FNV-1a 64 of its UTF-8 bytes).
    public init(seed: UInt64, item: String) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in item.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        value = RandomKey.splitMix(RandomKey.splitMix(seed) ^ h)
    }

    init(raw: UInt64) { value = raw }

    /// SplitMix64's finaliser (Steele, Lea, Flood 2014).
    static func splitMix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The four 32-bit words of block `counter` (Philox4x32 with 10 rounds).
    public static func philox(counter: (UInt32, UInt32, UInt32, UInt32), key: (UInt32, UInt32)) -> (UInt32, UInt32, UInt32, UInt32) {
        var c = counter
        var k = key
        for round in 0..<10 {
            if round > 0 {
                k.0 &+= 0x9E37_79B9
                k.1 &+= 0xBB67_AE85
            }
            let p0 = UInt64(0xD251_1F53) * UInt64(c.0)
            let p1 = UInt64(0xCD9E_8D57) * UInt64(c.2)
            c = (UInt32(truncatingIfNeeded: p1 >> 32) ^ c.1 ^ k.0, UInt32(truncatingIfNeeded: p1),
                 UInt32(truncatingIfNeeded: p0 >> 32) ^ c.3 ^ k.1, UInt32(truncatingIfNeeded: p0))
        }
        return c
    }

    /// A uniform double in [0, 1) for (step, draw, stream): 53 bits from the block's first two words.
    public func uniform(step: Int, draw: Int = 0, stream: UInt32 = 0) -> Double {
        let s = UInt64(truncatingIfNeeded: step)
        let out = RandomKey.philox(counter: (UInt32(truncatingIfNeeded: s), UInt32(truncatingIfNeeded: s >> 32),
                                             UInt32(truncatingIfNeeded: draw), stream), key: key)
        let bits = (UInt64(out.0) << 21) ^ UInt64(out.1 >> 11)
        return Double(bits & ((1 << 53) - 1)) * 0x1p-53
    }

    public static func == (a: RandomKey, b: RandomKey) -> Bool { a.value == b.value }
    public func hash(into h: inout Hasher) { h.combine(value) }
}
