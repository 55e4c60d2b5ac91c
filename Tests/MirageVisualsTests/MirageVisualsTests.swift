// MirageVisuals: dependency-free pictures: a PNG encoder, an RGB canvas with a bitmap font, attention
// heatmaps, line plots and self-contained HTML reports. See docs/visuals.md.
// PNGs are decoded back with MirageEngine's libpng-based decoder, independent of the encoder under test.
import Foundation
import MirageData
import MirageEngine
import MirageImaging
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

/// Reproducible test inputs from MirageData's SplitMix64.
typealias TestRandom = SplitMix64

extension SplitMix64 {
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
    /// Uniform in [0, 1) with 24 random bits.
    mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }
}
