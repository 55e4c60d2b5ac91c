/// SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014;
/// the constants are the published ones). Chosen because it is tiny, fully specified and gives the same
/// sequence on every machine and Swift version, so seeded question sets and synthetic data are
/// reproducible. Not for cryptography.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform integer in `0..<n` by rejection sampling: draws are rejected when they fall in the
    /// incomplete top bucket (`u >= 2^64 - (2^64 mod n)`), then reduced modulo `n`. Unbiased, and
    /// documented here so other implementations can reproduce a Mirage question set exactly.
    public mutating func uniform(_ n: Int) -> Int {
        precondition(n > 0, "uniform(_:) needs a positive bound")
        let bound = UInt64(n)
        let threshold = (0 &- bound) % bound   // = 2^64 mod n
        while true {
            let u = next()
            if u >= threshold { return Int(u % bound) }
        }
    }
}
