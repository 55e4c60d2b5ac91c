import Foundation

/// VCD's image distortion: one step of forward diffusion applied to the pre-processed (normalised) pixel
/// tensor, `x_t = √ᾱ_t · x + √(1 − ᾱ_t) · ε`, ε ~ N(0, I).
///
/// The schedule is the one of DAMO-NLP-SG/VCD `vcd_utils/vcd_add_noise.py`: 1000 steps with
/// `β = sigmoid(linspace(−6, 6, 1000)) · (0.5e-2 − 1e-5) + 1e-5` (a sigmoid-shaped β schedule, not a
/// linear one), `ᾱ_t = ∏_{s ≤ t} (1 − β_s)`, and step `t` indexes `ᾱ` directly (t = 0...999; the VCD
/// scripts default to 500, the paper also reports 999). √ᾱ_500 ≈ 0.863 and √(1 − ᾱ_500) ≈ 0.505.
///
/// The noise comes from the item's counter-based stream (`RandomKey`, Philox4x32-10) instead of torch's
/// global generator, so a noised image depends only on (run seed, item id, stream), never on order.
public struct VCDNoiseSchedule: Sendable {
    public static let stepCount = 1000
    /// √ᾱ_t and √(1 − ᾱ_t) for t = 0..<1000.
    public let sqrtAlphaBar: [Float]
    public let sqrtOneMinusAlphaBar: [Float]

    /// The schedule, computed as torch computes it on the CPU: β and 1 − β in float32 (`linspace` from both
    /// ends, `sigmoid`), the cumulative product accumulated in double and stored in float32, then
    /// `sqrt(ᾱ)` and `sqrt(1 − ᾱ)` in float32 (near t = 0, 1 − ᾱ carries float32's cancellation, as VCD's).
    public static let vcd = VCDNoiseSchedule()

    private init() {
        let n = VCDNoiseSchedule.stepCount
        let step = Float(12) / Float(n - 1)
        var product = 1.0
        var a: [Float] = [], b: [Float] = []
        a.reserveCapacity(n)
        b.reserveCapacity(n)
        for i in 0..<n {
            let x: Float = i < n / 2 ? -6 + step * Float(i) : 6 - step * Float(n - 1 - i)
            let beta = 1 / (1 + Foundation.exp(-x)) * Float(0.5e-2 - 1e-5) + Float(1e-5)
            product *= Double(1 - beta)
            let alphaBar = Float(product)
            a.append(alphaBar.squareRoot())
            b.append((1 - alphaBar).squareRoot())
        }
        sqrtAlphaBar = a
        sqrtOneMinusAlphaBar = b
    }

    /// The stream of `RandomKey` the noise draws from (distinct from the sampling streams).
    public static let noiseStream: UInt32 = 0x5643_4400   // "VCD\0"

    /// `pixels` noised at `step`: element i gets `√ᾱ·x_i + √(1−ᾱ)·ε_i`, where (ε_2k, ε_2k+1) is the
    /// Box–Muller pair of the uniforms `key.uniform(step: k, draw: 0/1, stream:)`:
    /// `r = √(−2 ln(1 − u0))`, `ε_2k = r cos(2π u1)`, `ε_2k+1 = r sin(2π u1)` (computed in Double).
    public func noised(_ pixels: [Float], step: Int, key: RandomKey, stream: UInt32 = noiseStream) throws -> [Float] {
        guard (0..<VCDNoiseSchedule.stepCount).contains(step) else { throw ContrastiveError.noiseStep(step) }
        let a = sqrtAlphaBar[step], b = sqrtOneMinusAlphaBar[step]
        var out = [Float](repeating: 0, count: pixels.count)
        var k = 0
        while 2 * k < pixels.count {
            let u0 = key.uniform(step: k, draw: 0, stream: stream)
            let u1 = key.uniform(step: k, draw: 1, stream: stream)
            let r = (-2 * log(1 - u0)).squareRoot()
            let i = 2 * k
            out[i] = a * pixels[i] + b * Float(r * cos(2 * Double.pi * u1))
            if i + 1 < pixels.count { out[i + 1] = a * pixels[i + 1] + b * Float(r * sin(2 * Double.pi * u1)) }
            k += 1
        }
        return out
    }
}

/// Errors of the contrastive decoders' inputs; each says what to do.
public enum ContrastiveError: Error, CustomStringConvertible, Equatable {
    case noiseStep(Int)
    case layer(Int, layers: Int, role: String)
    case noCandidateLayers
    case candidateIsMature(Int)

    public var description: String {
        switch self {
        case let .noiseStep(t):
            return "VCD noise step \(t) is outside 0...999; the VCD scripts use 500 (--noise_step), the paper also 999"
        case let .layer(l, layers, role):
            return "DoLa \(role) layer \(l) does not exist: this model has layers 0...\(layers) (0 = the embeddings)"
        case .noCandidateLayers:
            return "DoLa needs at least one candidate premature layer, e.g. --param candidate_layers=0,2,4"
        case let .candidateIsMature(l):
            return "DoLa candidate layer \(l) is the mature layer; candidates must be earlier layers"
        }
    }
}
