import Benchmark
import MirageBenchSupport
import MirageKernels

/// The linear kernels and the worker pool on Qwen2-0.5B projection shapes (the work of `mirage-bench kernels`,
/// at sizes that take seconds): decode (n = 1) and 5-row beam steps through 4 layers' 7 projections, a
/// 128-row prefill of the gate projection, and an empty parallelFor. q8 runs in both precisions: "q8 fast"
/// takes the int8 dot products (vpdpbusd).
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .cpuTotal, .mallocCountTotal],
                                           warmupIterations: 2, maxDuration: .seconds(3), maxIterations: 50)
    let pool = WorkerPool(threadCount: BenchmarkSupport.threads)
    let hidden = 896, intermediate = 4864, kv = 2 * 64, query = 14 * 64
    let shapes = [(query, hidden), (kv, hidden), (kv, hidden), (hidden, hidden),
                  (intermediate, hidden), (intermediate, hidden), (hidden, intermediate)]

    let q8 = LayerWeights(format: .q8, shapes: shapes, layers: 4)
    let variants: [(String, LayerWeights, Precision)] = [
        ("f16", LayerWeights(format: .f16, shapes: shapes, layers: 4), .exact),
        ("bf16", LayerWeights(format: .bf16, shapes: shapes, layers: 4), .exact),
        ("q8", q8, .exact), ("q8 fast", q8, .fast),
    ]
    for (name, layers, precision) in variants {
        func matrices() -> [WeightMatrix] { layers.matrices.map { $0.withPrecision(precision) } }
        for n in [1, 5] {
            Benchmark("linear \(name) n=\(n), 4 layers × 7 projections") { benchmark in
                let weights = matrices()
                let x = UnsafeMutablePointer<Float>.allocate(capacity: n * intermediate)
                let y = UnsafeMutablePointer<Float>.allocate(capacity: n * intermediate)
                defer { x.deallocate(); y.deallocate() }
                for i in 0..<(n * intermediate) { x[i] = Float(i % 13) * 0.01 - 0.06 }
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    for w in weights { Kernels.linear(x, n: n, weight: w, bias: nil, into: y, pool: pool) }
                }
                benchmark.stopMeasurement()
                blackHole(y[0])
            }
        }
        Benchmark("prefill \(name) n=128, gate 4864×896") { benchmark in
            let gate = matrices()[4]
            let n = 128
            let x = UnsafeMutablePointer<Float>.allocate(capacity: n * gate.cols)
            let y = UnsafeMutablePointer<Float>.allocate(capacity: n * gate.rows)
            defer { x.deallocate(); y.deallocate() }
            for i in 0..<(n * gate.cols) { x[i] = Float(i % 13) * 0.01 - 0.06 }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                Kernels.linear(x, n: n, weight: gate, bias: nil, into: y, pool: pool)
            }
            benchmark.stopMeasurement()
            blackHole(y[0])
        }
    }

    Benchmark("pool: 1,000 empty parallelFor calls") { benchmark in
        for _ in benchmark.scaledIterations {
            for _ in 0..<1000 { pool.parallelFor(pool.threadCount) { _ in } }
        }
    }
}

/// Random weights of `layers` layers, made when a benchmark of this format first runs (not at registration,
/// so `--filter` runs only pay for what they measure).
final class LayerWeights {
    let format: WeightFormat
    let shapes: [(Int, Int)]
    let layers: Int

    init(format: WeightFormat, shapes: [(Int, Int)], layers: Int) {
        self.format = format
        self.shapes = shapes
        self.layers = layers
    }

    lazy var matrices: [WeightMatrix] = {
        var seed: UInt32 = 1
        return (0..<layers).flatMap { _ in
            shapes.map { rows, cols in
                seed &+= 1
                return BenchmarkSupport.randomMatrix(rows: rows, cols: cols, format: format, seed: seed)
            }
        }
    }()
}
