import ArgumentParser
import Foundation
import MirageCLISupport
import MirageEngine
import MirageImaging
import MirageKernels

/// `mirage-bench vision`: one image through a CLIP ViT-L/14-336-shaped tower.
struct BenchVision: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vision",
        abstract: "Time a CLIP ViT-L/14-336 vision tower (LLaVA-1.5's) encoding one image, in GFLOPS.",
        discussion: """
        Writes a random-weight tower with ViT-L/14-336 shapes (hidden 1024, 24 layers, 16 heads, MLP 4096, \
        577 tokens) to --work (reused when present), then encodes a random 336×336 image --repeat times \
        through all 24 layers and reports the best time, the achieved GFLOPS (patch GEMM + per-layer \
        projections and attention, 2 FLOPs per multiply-add), by wall and by CPU time, as shares of the f32 FMA \
        ceiling measured in the same process (`Kernels.measureFMACeiling`, per core by thread CPU time, × \
        threads; as `mirage-bench blip2`). On a shared machine the CPU-time share is the comparable one. Build \
        with `swift build -c release` first.

        Example:
          .build/release/mirage-bench vision --work /tmp/mirage-vit-l --dtype f16
        """)

    @Option(name: .long, help: ArgumentHelp("Folder for the synthetic tower.", valueName: "dir"))
    var work = NSTemporaryDirectory() + "mirage-bench-vit-l14-336"

    @Option(name: .long, help: ArgumentHelp("Weight dtype.", valueName: "f32|f16|bf16"))
    var dtype = "f16"

    @Option(name: .customLong("repeat"), help: "Encodings to time; the best is reported.")
    var repetitions = 3

    @Option(name: .long, help: "Worker threads.")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard ["f32", "f16", "bf16"].contains(dtype) else { throw ValidationError("--dtype takes f32, f16 or bf16 (got '\(dtype)')") }
        if repetitions < 1 { throw ValidationError("--repeat must be at least 1") }
    }

    func run() throws {
        try runReportingErrors {
            let folder = URL(fileURLWithPath: work).appendingPathComponent(dtype)
            let spec = SyntheticVisionSpec(kind: .clip, size: .l14_336, seed: 1,
                                           dtype: dtype == "f32" ? .f32 : dtype == "f16" ? .f16 : .bf16)
            if !FileManager.default.fileExists(atPath: folder.appendingPathComponent("model.safetensors").path) {
                let (_, seconds) = try timed { try spec.write(to: folder) }
                print("wrote the tower to \(folder.path) in \(String(format: "%.1f", seconds)) s")
            }
            let config = spec.config
            let pool = WorkerPool(threadCount: threads)
            let tower = try loadVisionTower(config: config, store: TensorStore(folder: folder), prefix: "vision_model.", pool: pool)
            var random = SystemRandomNumberGenerator()
            let count = 3 * config.imageSize * config.imageSize
            let pixels = try PixelTensor(validating: (0..<count).map { _ in Float.random(in: -2...2, using: &random) },
                                         height: config.imageSize, width: config.imageSize)
            let perCore = Kernels.measureFMACeiling()
            let peak = perCore * Double(threads)
            print(String(format: "f32 FMA ceiling: %.1f GFLOP/s per core by thread CPU time (measured); %.1f for %d threads",
                         perCore, peak, threads))
            let flops = Self.flops(config)
            var best = Double.infinity, bestCPU = Double.infinity
            for i in 0..<repetitions {
                let cpuStart = cpuSeconds()
                let (_, seconds) = try timed { try tower.hiddenStates(pixels, layers: [config.numLayers]) }
                let cpu = cpuSeconds() - cpuStart
                best = min(best, seconds)
                bestCPU = min(bestCPU, cpu)
                print(String(format: "  run %d: %.3f s (%.1f GFLOPS), CPU %.3f s", i + 1, seconds, flops / seconds / 1e9, cpu))
            }
            let gflops = flops / best / 1e9
            print(String(format: "ViT-L/14-336 (%@ weights, %d threads): %.1f GFLOP per image, best %.3f s = %.1f GFLOPS, %.0f%% of the %.0f GFLOPS ceiling",
                         dtype, threads, flops / 1e9, best, gflops, gflops / peak * 100, peak))
            // On a shared machine wall time includes waiting for a core; CPU time / threads is the time with
            // the cores to ourselves (spin-waiting workers count as busy, so this never flatters).
            let owned = flops / (bestCPU / Double(threads)) / 1e9
            print(String(format: "  by CPU time (%.3f s over %d threads): %.1f GFLOPS, %.0f%% of the ceiling", bestCPU, threads, owned,
                         owned / peak * 100))
            let ceiling = Self.gemmCeiling(config, pool: pool)
            print(String(format: "  Kernels.linear alone on the fc1 shape (f32), by CPU time: %.1f GFLOPS, %.0f%% of the ceiling", ceiling,
                         ceiling / peak * 100))
        }
    }

    /// The GEMM kernel alone on the MLP's fc1 shape (577 × 1024 → 4096, f32), best of 5 by CPU time: the
    /// ceiling the tower's projections run against.
    static func gemmCeiling(_ c: VisionConfig, pool: WorkerPool) -> Double {
        let n = c.sequenceLength, k = c.hiddenSize, m = c.intermediateSize
        let weights = AlignedBuffer(byteCount: m * k * 4)
        let w = weights.pointer.bindMemory(to: Float.self, capacity: m * k)
        for i in 0..<(m * k) { w[i] = Float(i % 17) * 0.01 - 0.08 }
        let matrix = WeightMatrix(rows: m, cols: k, format: .f32, data: weights.pointer, owner: weights)
        let x = (0..<(n * k)).map { Float($0 % 13) * 0.1 - 0.6 }
        var y = [Float](repeating: 0, count: n * m)
        var best = Double.infinity
        for _ in 0..<5 {
            let start = cpuSeconds()
            x.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { yb in
                Kernels.linear(xb.baseAddress!, n: n, weight: matrix, bias: nil, into: yb.baseAddress!, pool: pool)
            }}
            best = min(best, (cpuSeconds() - start) / Double(pool.threadCount))
        }
        return 2 * Double(n * k * m) / best / 1e9
    }

    /// FLOPs of one image through every layer: patch GEMM, q/k/v/out and MLP GEMMs, QKᵀ and PV.
    static func flops(_ c: VisionConfig) -> Double {
        let n = Double(c.sequenceLength), h = Double(c.hiddenSize), m = Double(c.intermediateSize)
        let patch = 2 * Double(c.numPatches) * Double(c.numChannels * c.patchSize * c.patchSize) * h
        let perLayer = 2 * n * (4 * h * h + 2 * h * m) + 2 * 2 * n * n * h
        return patch + Double(c.numLayers) * perLayer
    }
}
