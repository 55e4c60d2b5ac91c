import Foundation

/// Rotary position embedding frequencies, computed as transformers' `modeling_rope_utils` does
/// (inverse frequencies in f32: `1 / theta^(2i/d)`, then the scaling rule of `rope_type`).
public struct RotaryEmbedding: Sendable {
    public let headDim: Int
    public let theta: Double
    public let scaling: RopeScaling
    public let maxPositionEmbeddings: Int
    /// Frequencies for sequences within the original context (all types but `dynamic` use only these).
    public let baseInverseFrequencies: [Float]

    public init(config: ModelConfig) {
        headDim = config.headDim
        theta = config.ropeTheta
        scaling = config.ropeScaling
        maxPositionEmbeddings = config.maxPositionEmbeddings
        var inv = Self.defaultFrequencies(base: theta, dim: headDim)
        switch scaling {
        case .none, .dynamic:
            break
        case let .linear(factor):
            inv = inv.map { $0 / Float(factor) }
        case let .llama3(factor, low, high, original):
            // Llama 3.1: keep high frequencies, divide low ones by `factor`, blend the band between.
            let lowWavelength = Double(original) / low
            let highWavelength = Double(original) / high
            inv = inv.map { f in
                let wavelength = 2 * Double.pi / Double(f)
                if wavelength < highWavelength { return f }
                if wavelength > lowWavelength { return f / Float(factor) }
                let smooth = (Double(original) / wavelength - low) / (high - low)
                return Float((1 - smooth) * Double(f) / factor + smooth * Double(f))
            }
        }
        baseInverseFrequencies = inv
    }

    static func defaultFrequencies(base: Double, dim: Int) -> [Float] {
        (0..<(dim / 2)).map { i in
            let exponent = Float(2 * i) / Float(dim)
            return 1 / powf(Float(base), exponent)
        }
    }

    /// The inverse frequencies for a forward pass whose largest position is `maxPosition`
    /// (`dynamic` grows the base once `maxPosition + 1` exceeds `max_position_embeddings`).
    public func inverseFrequencies(maxPosition: Int) -> [Float] {
        guard case let .dynamic(factor) = scaling, maxPosition + 1 > maxPositionEmbeddings else {
            return baseInverseFrequencies
        }
        let seqLen = Double(maxPosition + 1)
        let d = Double(headDim)
        let base = theta * pow(factor * seqLen / Double(maxPositionEmbeddings) - (factor - 1), d / (d - 2))
        return Self.defaultFrequencies(base: base, dim: headDim)
    }
}
