import ArgumentParser
import Foundation
import MirageCLISupport
import MirageEngine
import MirageKernels
import MirageImaging

/// `mirage-bench blip2`: one image through EVA ViT-g/14 and the InstructBLIP Q-Former.
struct BenchBlip2: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "blip2",
        abstract: "Time EVA ViT-g/14 (BLIP-2 / InstructBLIP's tower) and the Q-Former on one 224-pixel image.",
        discussion: """
        Writes a random-weight image encoder with Salesforce/instructblip-vicuna-7b's shapes (EVA ViT-g: hidden 1408, \
        39 blocks, 16 heads, MLP 6144, 257 rows; Q-Former: BERT-base, 32 queries, cross-attention every 2nd layer) to \
        --work (reused when present; about 2.3 GB in f16), then encodes a random 224×224 image --repeat times and runs \
        the Q-Former with a 16-token instruction on the result. Reports the best wall time, the tower's GFLOPS \
        (2 FLOPs per multiply-add: patch GEMM, projections, attention) and the CPU time. Build with \
        `swift build -c release` first.

        Example:
          .build/release/mirage-bench blip2 --work /tmp/mirage-eva-g --threads 2
        """)

    @Option(name: .long, help: ArgumentHelp("Folder for the synthetic encoder.", valueName: "dir"))
    var work = NSTemporaryDirectory() + "mirage-bench-eva-vit-g"

    @Option(name: .long, help: ArgumentHelp("Weight dtype.", valueName: "f32|f16|bf16"))
    var dtype = "f16"

    @Option(name: .customLong("repeat"), help: "Encodings to time; the best is reported.")
    var repetitions = 2

    @Option(name: .long, help: "Worker threads.")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard ["f32", "f16", "bf16"].contains(dtype) else { throw ValidationError("--dtype takes f32, f16 or bf16 (got '\(dtype)')") }
        if repetitions < 1 { throw ValidationError("--repeat must be at least 1") }
    }

    func run() throws {
        try runReportingErrors {
            let folder = URL(fileURLWithPath: work).appendingPathComponent(dtype)
            let spec = SyntheticBlip2Spec(instruct: true, size: .sevenB, seed: 1,
                                          dtype: dtype == "f32" ? .f32 : dtype == "f16" ? .f16 : .bf16)
            if !FileManager.default.fileExists(atPath: folder.appendingPathComponent("model.safetensors").path) {
                let (_, seconds) = try timed { try spec.writeImageEncoder(to: folder) }
                print("wrote the encoder to \(folder.path) in \(String(format: "%.1f", seconds)) s")
            }
            let pool = WorkerPool(threadCount: threads)
            let store = try TensorStore(folder: folder)
            let vision = try BlipVisionModel(config: spec.vision, store: store, layout: .transformers(prefix: "vision_model."),
                                             pool: pool)
            let qformer = try QFormer(config: spec.qformer, store: store, names: .instructBlip, pool: pool)
            let side = spec.vision.imageSize
            var random = SystemRandomNumberGenerator()
            let pixels = try PixelTensor(validating: (0..<(3 * side * side)).map { _ in Float.random(in: -2...2, using: &random) },
                                         height: side, width: side)
            let queries = (0..<(spec.numQueryTokens * spec.qformer.hiddenSize)).map { _ in Float.random(in: -0.1...0.1, using: &random) }
            let instruction = (0..<16).map { 5 + $0 }
            let flops = spec.vision.flopsPerImage
            var best = Double.infinity, bestCPU = Double.infinity, bestQ = Double.infinity, bestQCPU = Double.infinity
            for i in 0..<repetitions {
                var cpuStart = cpuSeconds()
                let (rows, seconds) = try timed { try vision.imageRows(pixels) }
                let cpu = cpuSeconds() - cpuStart
                cpuStart = cpuSeconds()
                let (_, qSeconds) = try timed {
                    try qformer.run(queries: queries, queryCount: spec.numQueryTokens, textIDs: instruction, image: rows,
                                    imageRows: spec.vision.sequenceLength)
                }
                let qCPU = cpuSeconds() - cpuStart
                (best, bestCPU, bestQ, bestQCPU) = (min(best, seconds), min(bestCPU, cpu), min(bestQ, qSeconds), min(bestQCPU, qCPU))
                print(String(format: "  run %d: EVA ViT-g %.3f s (%.1f GFLOPS), CPU %.3f s; Q-Former %.3f s, CPU %.3f s",
                             i + 1, seconds, flops / seconds / 1e9, cpu, qSeconds, qCPU))
            }
            print(String(format: "EVA ViT-g/14 (%@ weights, %d threads): %.1f GFLOP per image, best %.3f s = %.1f GFLOPS "
                         + "(by CPU time over %d threads: %.1f GFLOPS)", dtype, threads, flops / 1e9, best, flops / best / 1e9,
                         threads, flops / (bestCPU / Double(threads)) / 1e9))
            print(String(format: "Q-Former (32 queries + 16 instruction tokens, 12 layers): best %.3f s, CPU %.3f s", bestQ, bestQCPU))
        }
    }
}
