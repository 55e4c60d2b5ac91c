import Foundation
import MirageKernels

private typealias Lanes = SIMD16<Float>

@inline(__always) private func lanes(_ p: UnsafePointer<Float>) -> Lanes {
    UnsafeRawPointer(p).loadUnaligned(as: Lanes.self)
}

@inline(__always) private func store(_ v: Lanes, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Lanes.self)
}

extension QFormerConfig {
    /// FLOPs of one Q-Former run (2 per multiply-add; LayerNorm, softmax, GELU and bias adds not counted) for `q`
    /// query rows, `t` instruction rows (n = q + t) and `m` image rows of width e (`encoderHiddenSize`), hidden h,
    /// feed-forward f, L layers of which C have cross-attention:
    ///
    ///     L·(8·n·h² + 4·n²·h + 4·n·h·f) + C·(4·q·h² + 4·m·e·h + 4·q·m·h)
    ///
    /// per layer q/k/v and the output dense over all n rows (4 · 2·n·h²), scores and weighted values
    /// (2 · 2·n²·h over all heads), the two feed-forward matrices (query rows and instruction rows each through
    /// their own, 2 · 2·n·h·f); per cross-attention layer the query projection and output dense of the query rows
    /// (2 · 2·q·h²), the key and value projections of the image rows (2 · 2·m·e·h) and attention from the query
    /// rows to the image rows (2 · 2·q·m·h). InstructBLIP-7B (h 768, f 3072, L 12, C 6, e 1408, 32 queries, 257
    /// image rows) with OPERA's CHAIR prompt ("Please describe this image in detail." = 9 BERT tokens with [CLS]
    /// and [SEP]): 14.30 GFLOP; BLIP-2 (queries only): 12.75 GFLOP.
    public func flops(queryRows q: Int, textRows t: Int, imageRows m: Int) -> Double {
        let n = Double(q + t), qd = Double(q), md = Double(m)
        let h = Double(hiddenSize), f = Double(intermediateSize), e = Double(encoderHiddenSize)
        let crossLayers = Double((0..<numLayers).filter(hasCrossAttention).count)
        let perLayer = 8 * n * h * h + 4 * n * n * h + 4 * n * h * f
        let perCrossLayer = 4 * qd * h * h + 4 * md * e * h + 4 * qd * md * h
        return Double(numLayers) * perLayer + crossLayers * perCrossLayer
    }
}

/// Where a Q-Former run's time goes: per operation, the calls, the process CPU time and wall time spent in it and
/// the FLOPs it did (`QFormer.run(…, profile:)`). CPU time counts every worker thread, so on a shared machine it
/// is the measure that excludes time other processes took.
public final class QFormerProfile: @unchecked Sendable {
    public struct Entry: Sendable, Equatable {
        public var calls = 0
        public var cpuSeconds = 0.0
        public var wallSeconds = 0.0
        public var flops = 0.0
    }

    /// Operation names in the order first measured.
    public private(set) var operations: [String] = []
    public private(set) var entries: [String: Entry] = [:]

    public init() {}

    /// Runs `body`, adding its CPU and wall time and `flops` to `operation`'s entry.
    public func measure<T>(_ operation: String, flops: Double, _ body: () throws -> T) rethrows -> T {
        let cpu0 = Self.clock(CLOCK_PROCESS_CPUTIME_ID), wall0 = Self.clock(CLOCK_MONOTONIC)
        let result = try body()
        let cpu = Self.clock(CLOCK_PROCESS_CPUTIME_ID) - cpu0, wall = Self.clock(CLOCK_MONOTONIC) - wall0
        if entries[operation] == nil { operations.append(operation) }
        var entry = entries[operation] ?? Entry()
        entry.calls += 1
        entry.cpuSeconds += cpu
        entry.wallSeconds += wall
        entry.flops += flops
        entries[operation] = entry
        return result
    }

    /// CPU seconds over all operations.
    public var totalCPUSeconds: Double { entries.values.reduce(0) { $0 + $1.cpuSeconds } }

    private static func clock(_ id: clockid_t) -> Double {
        var t = timespec()
        clock_gettime(id, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}

extension Optional where Wrapped == QFormerProfile {
    /// `body`, measured when there is a profile.
    func measure<T>(_ operation: String, flops: Double, _ body: () throws -> T) rethrows -> T {
        switch self {
        case .some(let profile): return try profile.measure(operation, flops: flops, body)
        case .none: return try body()
        }
    }
}

extension QFormer {
    /// Multi-head attention without the projections: per head (heads in parallel on the pool),
    /// `context[r, head·d + j] = Σ_c softmax_c(d^-½ · q_r·k_c) · v_c[j]` for the n rows of `q` (stride hidden) against
    /// `keyRows` keys and values (`keyStride` floats apart, head slices at `head·d`); `context` has stride hidden.
    ///
    /// The sums run in the former scalar loops' order, one product added at a time starting from 0 (scores: over
    /// the head's d dimensions for each key; weighted values: over the keys for each dimension), with 16 keys or 16
    /// dimensions side by side in SIMD lanes and several accumulators in flight, so every score and output is
    /// bit-identical to the per-layer reference's loops (`runPerLayer`, test code). The keys are transposed per head
    /// (d rows of keys, padded to 16).
    func attend(q: UnsafePointer<Float>, rows n: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                keyStride ld: Int, keyRows m: Int, into context: UnsafeMutablePointer<Float>) {
        let h = config.hiddenSize, d = config.headDim
        let scale = 1 / Float(d).squareRoot()
        let padded = (m + 15) / 16 * 16
        pool.parallelFor(config.numHeads) { head in
            let off = head * d
            let transposed = UnsafeMutablePointer<Float>.allocate(capacity: d * padded)
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: padded)
            defer { transposed.deallocate(); scores.deallocate() }
            for j in 0..<d { (transposed + j * padded + m).initialize(repeating: 0, count: padded - m) }
            for c in 0..<m {
                let key = keys + c * ld + off
                for j in 0..<d { transposed[j * padded + c] = key[j] }
            }
            for r in 0..<n {
                Self.scores(q + r * h + off, transposed, depth: d, keys: padded, scale: scale, into: scores)
                Kernels.softmax(scores, count: m)
                Self.weightedValues(scores, values + off, stride: ld, keys: m, depth: d, into: context + r * h + off)
            }
        }
    }

    /// Σ_i x[i]·p[i·stride + lane] over i < count in order, one product added at a time from 0, for 64 lanes
    /// (4 accumulators in flight) or 16.
    @inline(__always)
    private static func sums64(_ x: UnsafePointer<Float>, count: Int, _ p: UnsafePointer<Float>,
                               stride: Int) -> (Lanes, Lanes, Lanes, Lanes) {
        var a0 = Lanes(), a1 = Lanes(), a2 = Lanes(), a3 = Lanes()
        var p = p
        for i in 0..<count {
            let xi = Lanes(repeating: x[i])
            a0 = a0 + xi * lanes(p)
            a1 = a1 + xi * lanes(p + 16)
            a2 = a2 + xi * lanes(p + 32)
            a3 = a3 + xi * lanes(p + 48)
            p += stride
        }
        return (a0, a1, a2, a3)
    }

    @inline(__always)
    private static func sums16(_ x: UnsafePointer<Float>, count: Int, _ p: UnsafePointer<Float>, stride: Int) -> Lanes {
        var a = Lanes()
        var p = p
        for i in 0..<count {
            a = a + Lanes(repeating: x[i]) * lanes(p)
            p += stride
        }
        return a
    }

    /// s[c] = (Σ_j q[j]·kᵀ[j][c]) · scale for c < keys (a multiple of 16), j in order from 0.
    private static func scores(_ q: UnsafePointer<Float>, _ kt: UnsafePointer<Float>, depth d: Int, keys: Int,
                               scale: Float, into s: UnsafeMutablePointer<Float>) {
        let scaleLanes = Lanes(repeating: scale)
        var c = 0
        while c + 64 <= keys {
            let (a0, a1, a2, a3) = sums64(q, count: d, kt + c, stride: keys)
            store(a0 * scaleLanes, s + c)
            store(a1 * scaleLanes, s + c + 16)
            store(a2 * scaleLanes, s + c + 32)
            store(a3 * scaleLanes, s + c + 48)
            c += 64
        }
        while c < keys {
            store(sums16(q, count: d, kt + c, stride: keys) * scaleLanes, s + c)
            c += 16
        }
    }

    /// out[j] = Σ_c p[c]·v[c·stride + j] for j < depth, c in order from 0.
    private static func weightedValues(_ p: UnsafePointer<Float>, _ v: UnsafePointer<Float>, stride: Int, keys m: Int,
                                       depth d: Int, into out: UnsafeMutablePointer<Float>) {
        var j = 0
        while j + 64 <= d {
            let (a0, a1, a2, a3) = sums64(p, count: m, v + j, stride: stride)
            store(a0, out + j)
            store(a1, out + j + 16)
            store(a2, out + j + 32)
            store(a3, out + j + 48)
            j += 64
        }
        while j + 16 <= d {
            store(sums16(p, count: m, v + j, stride: stride), out + j)
            j += 16
        }
        while j < d {
            var sum: Float = 0
            for c in 0..<m { sum += p[c] * v[c * stride + j] }
            out[j] = sum
            j += 1
        }
    }
}
