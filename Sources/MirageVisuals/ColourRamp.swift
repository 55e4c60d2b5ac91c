import Foundation

/// The 256-colour ramp heatmaps use, designed for this project: dark navy through violet, plum and orange
/// to pale yellow. Entry `k` has red channel exactly `k`, so every entry is distinct and a pixel inverts to
/// its index by its red channel; green and blue interpolate linearly (rounded to nearest) between anchors:
///
///     index  0    64   128  192  255
///     green  10   18   40   120  245
///     blue   70   140  120  40   150
public enum ColourRamp {
    static let anchors: [(index: Int, green: Int, blue: Int)] = [
        (0, 10, 70), (64, 18, 140), (128, 40, 120), (192, 120, 40), (255, 245, 150),
    ]

    /// The 256 colours, index 0 (lowest) to 255 (highest).
    public static let colours: [Colour] = (0..<256).map { k in
        var segment = 0
        while segment + 2 < anchors.count, k > anchors[segment + 1].index { segment += 1 }
        let a = anchors[segment], b = anchors[segment + 1]
        let span = b.index - a.index, offset = k - a.index
        func lerp(_ p: Int, _ q: Int) -> UInt8 {
            // Rounded to nearest, exactly in integers: p + (q - p) * offset / span.
            let numerator = (q - p) * offset * 2 + (q - p >= 0 ? span : -span)
            return UInt8(p + numerator / (2 * span))
        }
        return Colour(UInt8(k), lerp(a.green, b.green), lerp(a.blue, b.blue))
    }

    /// The index of a colour that is exactly a ramp entry, or nil.
    public static func index(of colour: Colour) -> Int? {
        colours[Int(colour.red)] == colour ? Int(colour.red) : nil
    }

    /// The index of the ramp entry nearest to `colour` (squared RGB distance), and that distance: for
    /// pixels that went through a lossy path (a browser screenshot).
    public static func nearest(to colour: Colour) -> (index: Int, distance: Int) {
        var best = 0, bestDistance = Int.max
        for (k, c) in colours.enumerated() {
            let dr = Int(c.red) - Int(colour.red), dg = Int(c.green) - Int(colour.green), db = Int(c.blue) - Int(colour.blue)
            let d = dr * dr + dg * dg + db * db
            if d < bestDistance { best = k; bestDistance = d }
        }
        return (best, bestDistance)
    }
}

/// How values map to ramp indices: `t = clamp(value / maximum, 0, 1)`, then `t = t^gamma`, then
/// `index = round(t * 255)` (ties away from zero). Values at or below zero (and zero maximum) map to 0.
public struct ColourScale: Hashable, Sendable {
    /// The value that maps to the top of the ramp; larger values are clamped.
    public var maximum: Float
    /// 1 is linear; below 1 spreads small values (e.g. 0.5 is a square-root scale).
    public var gamma: Float

    public init(maximum: Float, gamma: Float = 1) throws {
        guard maximum.isFinite, maximum > 0 else {
            throw VisualsError.invalidScale("the maximum must be a positive finite number, got \(maximum)")
        }
        guard gamma.isFinite, gamma > 0 else {
            throw VisualsError.invalidScale("gamma must be a positive finite number, got \(gamma)")
        }
        self.maximum = maximum
        self.gamma = gamma
    }

    /// The ramp index for a value.
    public func index(for value: Float) -> Int {
        guard value.isFinite, value > 0 else { return 0 }
        var t = min(value / maximum, 1)
        if gamma != 1 { t = powf(t, gamma) }
        return Int((t * 255).rounded())
    }

    /// The value at the centre of ramp step `index` (the inverse of `index(for:)` up to half a step).
    public func value(forIndex index: Int) -> Float {
        let t = Float(min(max(index, 0), 255)) / 255
        return (gamma == 1 ? t : powf(t, 1 / gamma)) * maximum
    }

    public func colour(for value: Float) -> Colour { ColourRamp.colours[index(for: value)] }
}
