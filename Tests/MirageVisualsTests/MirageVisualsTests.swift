// MirageVisuals: dependency-free pictures: a PNG encoder, an RGB canvas with a bitmap font, attention
// heatmaps, line plots and self-contained HTML reports. See docs/visuals.md.
// PNGs are decoded back with MirageEngine's libpng-based decoder, independent of the encoder under test.
import Foundation
import MirageEngine
@testable import MirageVisuals

func decodePNG(_ bytes: [UInt8]) throws -> RGBImage {
    try ImageDecoder.decode(Data(bytes), name: "test.png")
}

extension RGBImage {
    func colour(_ x: Int, _ y: Int) -> Colour {
        let p = self[x, y]
        return Colour(p.0, p.1, p.2)
    }
}

/// A reproducible pseudo-random stream (SplitMix64) for test inputs.
struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
    mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }
}
