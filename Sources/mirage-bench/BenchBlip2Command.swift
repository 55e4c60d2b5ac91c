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
        Reads the tower and Q-Former of --model (an InstructBLIP folder in transformers' layout, e.g. written by \
        `mirage models synth --arch instructblip --size 7b`), or else writes a random-weight image encoder with \
        Salesforce/instructblip-vicuna-7b's shapes (EVA ViT-g: hidden 1408, 39 blocks, 16 heads, MLP 6144, 257 rows; \
        Q-Former: BERT-base, 32 queries, cross-attention every 2nd layer) to --work (reused when present; about \
        2.3 GB in f16). Then encodes a random 224×224 image --repeat times, and runs the Q-Former (`QFormer.run`) \
        on each result in InstructBLIP's shape (the queries plus --instruction-tokens rows) and BLIP-2's (queries \
        only). (The former per-layer schedule is test code now: QFormerScheduleTests checks `run` against it bit \
        for bit.)

        Reports FLOPs (2 per multiply-add; EVA: patch GEMM, projections, attention; Q-Former: every matrix product, \
        docs/vision.md), best wall and CPU times, GFLOPS by CPU time over the threads, and that as a share of the \
        f32 FMA ceiling measured in the same process by a short FMA loop (`Kernels.measureFMACeiling`, per core by \
        thread CPU time, × threads) or given with --ceiling. On a shared machine CPU time excludes what other \
        processes took, so the shares stay comparable across load; wall-clock GFLOPS do not. --profile adds where \
        the Q-Former's CPU time goes, per operation. Build with `swift build -c release` first.

        Examples:
          mirage models synth --arch instructblip --size 7b --out /tmp/instructblip-7b
          .build/release/mirage-bench blip2 --model /tmp/instructblip-7b --repeat 3 --profile
          .build/release/mirage-bench blip2 --work /tmp/mirage-eva-g --threads 2 --ceiling 345
        """)

    @Option(name: .long, help: ArgumentHelp("An InstructBLIP folder (transformers layout) to read the tower and Q-Former from.",
                                            valueName: "dir"))
    var model: String?

    @Option(name: .long, help: ArgumentHelp("Folder for the synthetic encoder (without --model).", valueName: "dir"))
    var work = NSTemporaryDirectory() + "mirage-bench-eva-vit-g"

    @Option(name: .long, help: ArgumentHelp("Weight dtype of the synthetic encoder (without --model).", valueName: "f32|f16|bf16"))
    var dtype = "f16"

    @Option(name: .customLong("repeat"), help: "Encodings to time; the best is reported.")
    var repetitions = 2

    @Option(name: .long, help: "Worker threads.")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    @Option(name: .long, help: ArgumentHelp("""
        Q-Former instruction rows of the InstructBLIP shape: 9 is OPERA's CHAIR prompt "Please describe this image \
        in detail." in bert-base-uncased word pieces with [CLS] and [SEP].
        """, valueName: "n"))
    var instructionTokens = 9

    @Option(name: .long, help: ArgumentHelp("f32 FMA ceiling of all threads in GFLOP/s (default: measured here).", valueName: "gflops"))
    var ceiling: Double?

    @Flag(name: .long, help: "Time the tower once (its rows feed the Q-Former) and repeat only the Q-Former.")
    var qformerOnly = false

    @Flag(name: .long, help: "Print where the Q-Former's CPU time goes, per operation.")
    var profile = false

    func validate() throws {
        guard ["f32", "f16", "bf16"].contains(dtype) else { throw ValidationError("--dtype takes f32, f16 or bf16 (got '\(dtype)')") }
        if repetitions < 1 { throw ValidationError("--repeat must be at least 1") }
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
        if instructionTokens < 0 { throw ValidationError("--instruction-tokens must be 0 or more") }
        if let ceiling, ceiling <= 0 { throw ValidationError("--ceiling must be positive GFLOP/s (e.g. 345)") }
    }

    func run() throws {
        try runReportingErrors {
            let (folder, vision, qformerConfig, queryCount) = try encoderFolder()
            let pool = WorkerPool(threadCount: threads)
            let store = try TensorStore(folder: folder)
            let tower = try BlipVisionModel(config: vision, store: store, layout: .transformers(prefix: "vision_model."),
                                            pool: pool)
            let qformer = try QFormer(config: qformerConfig, store: store, names: .instructBlip, pool: pool)
            let perCore = Kernels.measureFMACeiling()
            let peak = ceiling ?? perCore * Double(threads)
            print(String(format: "f32 FMA ceiling: %.1f GFLOP/s per core by thread CPU time (measured); %.1f for %d threads%@",
                         perCore, peak, threads, ceiling == nil ? "" : " (--ceiling)"))
            let side = vision.imageSize
            var random = SystemRandomNumberGenerator()
            let pixels = try PixelTensor(validating: (0..<(3 * side * side)).map { _ in Float.random(in: -2...2, using: &random) },
                                         height: side, width: side)
            let queries = (0..<(queryCount * qformerConfig.hiddenSize)).map { _ in Float.random(in: -0.1...0.1, using: &random) }
            // [CLS] = 101, [SEP] = 102 in bert-base-uncased; the word ids between are arbitrary in-vocabulary rows.
            let instruction = instructionTokens == 0 ? [] : [101] + (0..<max(0, instructionTokens - 2)).map { 2000 + 37 * $0 }
                + (instructionTokens > 1 ? [102] : [])
            let towerFlops = vision.flopsPerImage
            let shapes = [(name: "InstructBLIP (\(queryCount) queries + \(instructionTokens) instruction rows)", ids: instruction),
                          (name: "BLIP-2 (\(queryCount) queries)", ids: [Int]())]
            var best = Double.infinity, bestCPU = Double.infinity
            var bestQ = [Double](repeating: .infinity, count: shapes.count)   // CPU seconds per shape
            var bestQWall = bestQ
            let profiles = shapes.map { _ in QFormerProfile() }
            var rows: [Float] = []
            for i in 0..<repetitions {
                if i == 0 || !qformerOnly {
                    let cpuStart = cpuSeconds()
                    let (encoded, seconds) = try timed { try tower.imageRows(pixels) }
                    let cpu = cpuSeconds() - cpuStart
                    rows = encoded
                    (best, bestCPU) = (min(best, seconds), min(bestCPU, cpu))
                    let owned = towerFlops / (cpu / Double(threads)) / 1e9
                    print(String(format: "  run %d: EVA ViT-g %.3f s wall, CPU %.3f s = %.1f GFLOPS by CPU time (%.0f%% of the ceiling)",
                                 i + 1, seconds, cpu, owned, owned / peak * 100))
                }
                for (s, shape) in shapes.enumerated() {
                    let cpuStart = cpuSeconds()
                    let (_, seconds) = try timed {
                        try qformer.run(queries: queries, queryCount: queryCount, textIDs: shape.ids, image: rows,
                                        imageRows: vision.sequenceLength, profile: profile ? profiles[s] : nil)
                    }
                    let cpu = cpuSeconds() - cpuStart
                    (bestQ[s], bestQWall[s]) = (min(bestQ[s], cpu), min(bestQWall[s], seconds))
                    let flops = qformerConfig.flops(queryRows: queryCount, textRows: shape.ids.count, imageRows: vision.sequenceLength)
                    let owned = flops / (cpu / Double(threads)) / 1e9
                    print(String(format: "  run %d: Q-Former %@: %.4f s wall, CPU %.4f s = %.1f GFLOPS by CPU time (%.0f%% of the ceiling)",
                                 i + 1, shape.name, seconds, cpu, owned, owned / peak * 100))
                }
            }
            if qformerOnly {
                print(String(format: "EVA ViT-g/14: timed once (--qformer-only): %.3f s wall, CPU %.3f s", best, bestCPU))
            } else {
                let owned = towerFlops / (bestCPU / Double(threads)) / 1e9
                print(String(format: "EVA ViT-g/14 (%d threads): %.1f GFLOP per image, best %.3f s = %.1f GFLOPS wall; by CPU time "
                             + "(best %.3f s over %d threads) %.1f GFLOPS = %.0f%% of the %.0f GFLOPS ceiling",
                             threads, towerFlops / 1e9, best, towerFlops / best / 1e9, bestCPU, threads, owned, owned / peak * 100,
                             peak))
            }
            for (s, shape) in shapes.enumerated() {
                let flops = qformerConfig.flops(queryRows: queryCount, textRows: shape.ids.count, imageRows: vision.sequenceLength)
                let owned = flops / (bestQ[s] / Double(threads)) / 1e9
                print(String(format: "Q-Former %@: %.2f GFLOP, best wall %.4f s, best CPU %.4f s = %.1f GFLOPS by CPU time "
                             + "over %d threads = %.0f%% of the %.0f GFLOPS ceiling",
                             shape.name, flops / 1e9, bestQWall[s], bestQ[s], owned, threads, owned / peak * 100, peak))
                if profile { printProfile(profiles[s], title: shape.name) }
            }
        }
    }

    /// The folder to read, its tower and Q-Former configurations and query count: --model as configured, else the
    /// synthetic encoder in --work (written when missing).
    func encoderFolder() throws -> (URL, BlipVisionConfig, QFormerConfig, Int) {
        if let model {
            let folder = URL(fileURLWithPath: model)
            let path = folder.appendingPathComponent("config.json").path
            guard let data = FileManager.default.contents(atPath: path),
                  let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ValidationError("--model \(model): no readable config.json; pass an InstructBLIP folder such as "
                                      + "`mirage models synth --arch instructblip --size 7b --out DIR` writes")
            }
            let vision = try BlipVisionConfig(json: (json["vision_config"] as? [String: Any]) ?? [:], path: path)
            let qformer = try QFormerConfig(json: (json["qformer_config"] as? [String: Any]) ?? [:], path: path)
            return (folder, vision, qformer, (json["num_query_tokens"] as? Int) ?? 32)
        }
        let folder = URL(fileURLWithPath: work).appendingPathComponent(dtype)
        let spec = SyntheticBlip2Spec(instruct: true, size: .sevenB, seed: 1,
                                      dtype: dtype == "f32" ? .f32 : dtype == "f16" ? .f16 : .bf16)
        if !FileManager.default.fileExists(atPath: folder.appendingPathComponent("model.safetensors").path) {
            let (_, seconds) = try timed { try spec.writeImageEncoder(to: folder) }
            print("wrote the encoder to \(folder.path) in \(String(format: "%.1f", seconds)) s")
        }
        return (folder, spec.vision, spec.qformer, spec.numQueryTokens)
    }

    /// One line per operation: calls, CPU seconds summed over the runs, share of the CPU time, GFLOP/s by CPU time
    /// over the threads.
    func printProfile(_ p: QFormerProfile, title: String) {
        let total = p.totalCPUSeconds
        print("  where the CPU time goes, \(title) (\(repetitions) runs, \(String(format: "%.4f", total)) s CPU):")
        for name in p.operations {
            let e = p.entries[name]!
            let gflops = e.flops > 0 && e.cpuSeconds > 0 ? String(format: "%6.1f GFLOPS", e.flops / (e.cpuSeconds / Double(threads)) / 1e9) : ""
            let padded = name.padding(toLength: max(name.count, 44), withPad: " ", startingAt: 0)
            print("    " + padded + String(format: " %4d calls %8.4f s CPU %5.1f%%  ", e.calls, e.cpuSeconds, e.cpuSeconds / total * 100)
                  + gflops)
        }
    }
}
