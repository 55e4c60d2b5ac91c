import ArgumentParser
import Foundation
import MirageCLISupport
import MirageBenchSupport
import MirageKernels
import Synchronization

/// `mirage-bench kernels`: throughput of the linear kernels and the worker pool on Qwen2-0.5B shapes,
/// reported against this machine's physical limits.
struct BenchKernelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Measure the SIMD kernels and worker pool against the machine's limits.",
        discussion: """
        Runs on random weights shaped like Qwen2-0.5B (hidden 896, intermediate 4864, 14 query / 2 \
        key-value heads of 64, vocabulary 151936) and prints, for each weight format:

          decode   n = 1 through all layers' 7 projections plus the LM head (weights far larger than \
        the caches, so every byte comes from DRAM): GB/s and the fraction of --bandwidth.
          beams    the same with n = 5 rows, as a time ratio to n = 1 (weights are read once).
          midn     n = --midn-rows rows (OPERA's 25 candidate rows) through all layers' 7 projections, \
        weights from DRAM, on the mid-n path and on the GEMM path: GFLOP/s, the fraction of \
        --peak-gflops, and the time over the memory floor (bytes / --bandwidth); * marks the path \
        `linear` takes at that n.
          prefill  n = 576 rows (one image's tokens) through one layer's projections: GFLOP/s and the \
        fraction of --peak-gflops.
          pool     the cost of one empty parallelFor while the workers are hot, and how fast a hot \
        worker picks up a task.
          decode-ab  for a loaded machine: whole n = 1 decode passes alternating the 4-row-quad kernel \
        (B, the default) with the one-row-at-a-time kernel (A) --repetitions times each, then passes with \
        n = 2 and 5 rows; prints the best wall time and the mean process CPU time (getrusage, all threads) \
        per pass and the ratios B / A and n / 1. Not part of the default set.
          midn-ab  the same for the mid-n path at each --midn-rows n over all layers' projections: f16/bf16 \
        weights widened to f32 once per tile (B; the default from 6 input groups, n ≥ 31) against at every \
        input group's load (A). Not part of the default set.
          int8-ab  q8 with int8 dot products (--precision fast, AVX512-VNNI) on a loaded machine: n = 5 \
        passes alternating 5 inputs as one tile (B, the default) with two tiles of 3 + 2 (A), and n = 1 \
        passes, --repetitions times each; best wall and mean process CPU time per pass, B / A and n5 / n1. \
        Only for --formats q8; not part of the default set.

        The machine may be shared, so work is timed in pieces of ~0.05–2 ms (single matrices, slices \
        of the LM head; in prefill, packing x and then 128-feature slices of the product); each piece \
        keeps its best time over --repetitions runs and a figure is the sum of those bests. On a busy \
        machine, `nice -n -10 mirage-bench kernels` keeps other processes from taking the second core \
        mid-piece. The peak defaults to the f32 FMA ceiling measured in this process (`Kernels.measureFMACeiling`: \
        a short FMA loop timed by thread CPU time, per core, × --threads), so the shares fit the machine the \
        bench runs on; --peak-gflops fixes it instead. Build with `swift build -c release` first; debug numbers \
        are meaningless.

        Examples:
          mirage-bench kernels
          mirage-bench kernels --formats f16,bf16 --repetitions 10
          mirage-bench kernels --only prefill --prefill-rows 576
          mirage-bench kernels --only midn --formats bf16 --midn-rows 9,16,25,32,48
          mirage-bench kernels --only prefill --peak-gflops 345      # a fixed peak instead of the measured one
        """
    )

    @Option(help: "Weight formats to measure, comma-separated (f32, f16, bf16, q8).")
    var formats: String = "f32,f16,bf16,q8"

    @Option(help: "Which measurements to run, comma-separated (decode, beams, midn, prefill, pool, decode-ab, midn-ab, int8-ab).")
    var only: String = "decode,beams,midn,prefill,pool"

    @Option(help: "Transformer layers in the decode and mid-n measurements (Qwen2-0.5B has 24).")
    var layers: Int = 24

    @Option(help: "Prefill only these projections, comma-separated (q, k, v, o, gate, up, down).")
    var matrices: String = "q,k,v,o,gate,up,down"

    @Option(help: "Rows of x in the prefill measurement.")
    var prefillRows: Int = 576

    @Option(help: ArgumentHelp("Rows of x in the mid-n measurement, comma-separated (9…128).", valueName: "list"))
    var midnRows: String = "25"

    @Option(help: "Runs of every piece; each piece's best time counts.")
    var repetitions: Int = 5

    @Option(help: "Worker-pool threads, the caller included.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "The machine's DRAM bandwidth in GB/s, the decode limit.")
    var bandwidth: Double = 45

    @Option(help: ArgumentHelp("The fp32 peak of all threads in GFLOP/s, the prefill and mid-n limit (default: the f32 FMA ceiling measured here, `Kernels.measureFMACeiling` per core × --threads).", valueName: "gflops"))
    var peakGflops: Double?

    func validate() throws {
        if let peakGflops, peakGflops <= 0 { throw ValidationError("--peak-gflops must be positive GFLOP/s (e.g. 345), or left out to measure it") }
        guard layers >= 1, prefillRows >= 1, repetitions >= 1, threads >= 1 else {
            throw ValidationError("--layers, --prefill-rows, --repetitions and --threads must be at least 1.")
        }
        for name in formatList where WeightFormat(rawValue: name) == nil {
            throw ValidationError("Unknown format '\(name)'. Use any of: f32, f16, bf16, q8.")
        }
        for name in measurementList where !["decode", "beams", "midn", "prefill", "pool", "decode-ab", "midn-ab", "int8-ab"].contains(name) {
            throw ValidationError("Unknown measurement '\(name)'. Use any of: decode, beams, midn, prefill, pool, decode-ab, midn-ab, int8-ab.")
        }
        guard !midnRowList.isEmpty, midnRowList.allSatisfy({ $0 > Kernels.decodeMaxRows && $0 <= Kernels.midNRowLimit }),
              midnRowList.count == midnRows.split(separator: ",").count else {
            throw ValidationError("--midn-rows: comma-separated row counts from \(Kernels.decodeMaxRows + 1) to \(Kernels.midNRowLimit) (e.g. 25 or 9,16,25,32).")
        }
    }

    private var formatList: [String] { formats.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
    private var midnRowList: [Int] { midnRows.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
    private var measurementList: [String] { only.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }

    func run() throws {
        let pool = WorkerPool(threadCount: threads)
        let benchmark = KernelBenchmark(pool: pool, repetitions: repetitions)
        let measurements = Set(measurementList)
        // The FMA loop is timed by thread CPU time, so the ceiling holds on a shared machine; the pieces below
        // are timed by wall clock (best of --repetitions), so their share of it is a lower bound there.
        let perCore = Kernels.measureFMACeiling()
        let peakGflops = self.peakGflops ?? perCore * Double(pool.threadCount)
        let source = self.peakGflops == nil
            ? String(format: "the f32 FMA ceiling measured here, %.1f per core × %d threads", perCore, pool.threadCount)
            : String(format: "--peak-gflops; the f32 FMA ceiling measured here is %.1f per core", perCore)
        print(String(format: "threads %d, best per piece of %d runs; limits %.0f GB/s, %.1f GFLOP/s (%@)", pool.threadCount,
                     repetitions, bandwidth, peakGflops, source as NSString))
        if measurements.contains("pool") {
            let nanoseconds = benchmark.poolDispatchNanoseconds()
            print(String(format: "pool      empty parallelFor(%d) hot: %.2f µs per call", pool.threadCount, nanoseconds / 1000))
            if pool.threadCount > 1 {
                let handoff = benchmark.poolHandoff()
                if handoff.picked > 0 {
                    print(String(format: "pool      hot worker picks up a task in %.2f µs (median; %.0f%% of calls within 200 µs)",
                                 handoff.nanoseconds / 1000, 100 * handoff.picked))
                } else {
                    print("pool      no worker picked up a task within 200 µs: the other cores are busy (see `uptime`)")
                }
            }
        }
        for format in formatList.compactMap(WeightFormat.init(rawValue:)) {
            if measurements.contains("decode-ab") { benchmark.decodeAB(BenchModel(format: format, layers: layers)) }
            if measurements.contains("int8-ab") {
                if format != .q8 {
                    print("int8-ab   \(format.rawValue): skipped, int8 dot products are for q8 weights (--formats q8)")
                } else if !Kernels.usesInt8DotProducts {
                    print("int8-ab   q8: skipped, this CPU has no AVX512-VNNI (fast q8 computes as exact)")
                } else {
                    benchmark.int8AB(BenchModel(format: format, layers: layers))
                }
            }
            if measurements.contains("midn-ab") {
                let matrices = BenchModel(format: format, layers: layers, withHead: false).layerMatrices.joined().map(\.1)
                for n in midnRowList { benchmark.midNAB(matrices, n: n) }
            }
            if measurements.contains("decode") || measurements.contains("beams") {
                let model = BenchModel(format: format, layers: layers)
                let one = benchmark.decodeSeconds(model, n: 1)
                let bytes = Double(model.byteCount)
                print(String(format: "decode    %-4@ n=1  %4d layers + LM head  %7.1f MB  %7.2f ms  %6.1f GB/s  %5.1f%% of DRAM",
                             format.rawValue, layers, bytes / 1e6, one * 1e3, bytes / one / 1e9,
                             100 * bytes / one / 1e9 / bandwidth))
                let head = benchmark.headSeconds(model, n: 1)
                let headBytes = Double(model.head.byteCount)
                print(String(format: "decode    %-4@ n=1  LM head only           %7.1f MB  %7.2f ms  %6.1f GB/s  %5.1f%% of DRAM",
                             format.rawValue, headBytes / 1e6, head * 1e3, headBytes / head / 1e9,
                             100 * headBytes / head / 1e9 / bandwidth))
                if measurements.contains("beams") {
                    let five = benchmark.decodeSeconds(model, n: 5)
                    print(String(format: "beams     %-4@ n=5  %7.2f ms  = %.2f× the n=1 time",
                                 format.rawValue, five * 1e3, five / one))
                }
            }
            if measurements.contains("midn") {
                let model = BenchModel(format: format, layers: layers, withHead: false)
                let matrices = model.layerMatrices.joined().map(\.1)
                let bytes = Double(matrices.reduce(0) { $0 + $1.byteCount })
                let floor = bytes / (bandwidth * 1e9)
                for n in midnRowList {
                    let flops = 2 * Double(n) * Double(matrices.reduce(0) { $0 + $1.rows * $1.cols })
                    for path in [Kernels.LinearPath.midN, .gemm] {
                        let seconds = benchmark.matricesSeconds(matrices, n: n, path: path)
                        let chosen = Kernels.path(n: n, format: format) == path ? "*" : " "
                        print(String(format: "midn      %-4@ n=%-3d %4d layers %-5@%@ %7.2f ms  %6.1f GFLOP/s  %5.1f%% of peak  %5.2f× the memory floor (%.2f ms)",
                                     format.rawValue, n, layers, path == .midN ? "mid-n" : "GEMM", chosen, seconds * 1e3,
                                     flops / seconds / 1e9, 100 * flops / seconds / 1e9 / peakGflops, seconds / floor, floor * 1e3))
                    }
                }
            }
            if measurements.contains("prefill") {
                let layer = BenchModel(format: format, layers: 1, withHead: false)
                var totalFlops = 0.0, totalSeconds = 0.0
                let selected = Set(matrices.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                for (name, matrix) in layer.layerMatrices[0] where selected.contains(name) {
                    let seconds = benchmark.linearSeconds(matrix, n: prefillRows)
                    let flops = 2 * Double(prefillRows) * Double(matrix.rows) * Double(matrix.cols)
                    totalFlops += flops
                    totalSeconds += seconds
                    print(String(format: "prefill   %-4@ n=%d %-6@ %5d×%-5d  %7.2f ms  %6.1f GFLOP/s  %5.1f%% of peak",
                                 format.rawValue, prefillRows, name, matrix.rows, matrix.cols, seconds * 1e3,
                                 flops / seconds / 1e9, 100 * flops / seconds / 1e9 / peakGflops))
                }
                print(String(format: "prefill   %-4@ n=%d layer total     %7.2f ms  %6.1f GFLOP/s  %5.1f%% of peak",
                             format.rawValue, prefillRows, totalSeconds * 1e3, totalFlops / totalSeconds / 1e9,
                             100 * totalFlops / totalSeconds / 1e9 / peakGflops))
            }
        }
    }
}

/// Random weights with Qwen2-0.5B's projection shapes.
private struct BenchModel {
    static let hidden = 896, intermediate = 4864, headDim = 64, queryHeads = 14, keyValueHeads = 2, vocabulary = 151_936

    let layerMatrices: [[(String, WeightMatrix)]]
    let head: WeightMatrix

    init(format: WeightFormat, layers: Int, withHead: Bool = true) {
        let h = Self.hidden, kv = Self.keyValueHeads * Self.headDim
        let shapes = [("q", Self.queryHeads * Self.headDim, h), ("k", kv, h), ("v", kv, h), ("o", h, h),
                      ("gate", Self.intermediate, h), ("up", Self.intermediate, h), ("down", h, Self.intermediate)]
        var seed: UInt32 = 1
        layerMatrices = (0..<layers).map { _ in
            shapes.map { name, rows, cols in
                seed &+= 1
                return (name, BenchmarkSupport.randomMatrix(rows: rows, cols: cols, format: format, seed: seed))
            }
        }
        head = BenchmarkSupport.randomMatrix(rows: withHead ? Self.vocabulary : 1, cols: h, format: format, seed: 7)
    }

    var byteCount: Int { layerMatrices.joined().reduce(head.byteCount) { $0 + $1.1.byteCount } }
}

/// Timing helpers. On a shared machine a whole pass is rarely undisturbed, so work is timed in pieces of
/// ~0.05–2 ms: each piece keeps its best time over all repetitions and a figure is the sum of those bests.
/// Decode pieces run in model order every repetition, so each finds its weights evicted from the caches
/// by the ~1 GB streamed since its last run.
private struct KernelBenchmark {
    let pool: WorkerPool
    let repetitions: Int

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Sum over pieces of each piece's best time (seconds); one warm-up pass first.
    func bestPerPiece(pieces: Int, run: (Int) -> Void) -> Double {
        var best = [UInt64](repeating: .max, count: pieces)
        for repetition in 0...repetitions {
            for piece in 0..<pieces {
                let start = Self.now()
                run(piece)
                let elapsed = Self.now() - start
                if repetition > 0 { best[piece] = min(best[piece], elapsed) }
            }
        }
        return Double(best.reduce(0, +)) / 1e9
    }

    /// The decode pieces: every projection of every layer, then the LM head in 32 row slices.
    func decodePieces(_ model: BenchModel, includeLayers: Bool = true) -> [WeightMatrix] {
        var pieces = includeLayers ? model.layerMatrices.joined().map(\.1) : []
        let head = model.head
        let slice = (head.rows + 31) / 32
        for start in stride(from: 0, to: head.rows, by: slice) {
            pieces.append(head.rowSlice(start..<min(head.rows, start + slice)))
        }
        return pieces
    }

    func decodeSeconds(_ model: BenchModel, n: Int) -> Double {
        matricesSeconds(decodePieces(model), n: n)
    }

    func headSeconds(_ model: BenchModel, n: Int) -> Double {
        matricesSeconds(decodePieces(model, includeLayers: false), n: n)
    }

    /// Best-per-piece time of `linear` with n rows over each matrix in turn (on `path`, or the path
    /// `linear` picks).
    func matricesSeconds(_ matrices: [WeightMatrix], n: Int, path: Kernels.LinearPath? = nil) -> Double {
        let width = matrices.map { max($0.rows, $0.cols) }.max() ?? 1
        let x = UnsafeMutablePointer<Float>.allocate(capacity: n * width)
        let y = UnsafeMutablePointer<Float>.allocate(capacity: n * width)
        defer { x.deallocate(); y.deallocate() }
        for i in 0..<(n * width) { x[i] = Float(i % 13) * 0.01 - 0.06 }
        return bestPerPiece(pieces: matrices.count) { piece in
            let matrix = matrices[piece]
            Kernels.linear(x, n: n, weight: matrix, bias: nil, into: y, pool: pool,
                           path: path ?? Kernels.path(n: n, format: matrix.format))
        }
    }

    /// Prefill time of one matrix: packing x (one piece) plus the GEMM (or, for n ≤ midNMaxRows, the
    /// mid-n kernel) from the packed input in slices of 128 output features, which together are exactly
    /// one whole call.
    func linearSeconds(_ matrix: WeightMatrix, n: Int) -> Double {
        let x = UnsafeMutablePointer<Float>.allocate(capacity: n * matrix.cols)
        let y = UnsafeMutablePointer<Float>.allocate(capacity: n * matrix.rows)
        defer { x.deallocate(); y.deallocate() }
        for i in 0..<(n * matrix.cols) { x[i] = Float(i % 13) * 0.01 - 0.06 }
        let slices = stride(from: 0, to: matrix.rows, by: 128).map { matrix.rowSlice($0..<min(matrix.rows, $0 + 128)) }
        if n <= Kernels.decodeMaxRows { // the decode path: nothing to pack
            return bestPerPiece(pieces: slices.count) { piece in
                Kernels.linear(x, n: n, weight: slices[piece], bias: nil, into: y, pool: pool)
            }
        }
        let pack = bestPerPiece(pieces: 1) { _ in
            _ = Kernels.packInput(x, n: n, cols: matrix.cols, for: matrix, pool: pool)
        }
        let packed = Kernels.packInput(x, n: n, cols: matrix.cols, for: matrix, pool: pool)
        return pack + bestPerPiece(pieces: slices.count) { piece in
            Kernels.linear(packed, weight: slices[piece], bias: nil, into: y, pool: pool)
        }
    }

    /// One whole pass of `linear` with n rows over the decode pieces: (wall, process CPU) seconds.
    func decodePass(_ pieces: [WeightMatrix], n: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) -> (Double, Double) {
        let cpu0 = Self.processCPUSeconds(), start = Self.now()
        for matrix in pieces { Kernels.linear(x, n: n, weight: matrix, bias: nil, into: y, pool: pool) }
        return (Double(Self.now() - start) / 1e9, Self.processCPUSeconds() - cpu0)
    }

    /// User + system CPU time of the process (all threads), seconds.
    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// The A/B passes' common part: a fixed x of up to 5 rows, one warm-up pass with `warmUpRows` rows,
    /// then `repetitions` rounds of `round`, which calls `pass(key, n)` for each whole pass of `linear`
    /// with n ≤ 5 rows over `pieces` it wants timed. Per key: the best wall time and the mean process CPU
    /// time of its passes, in seconds.
    func alternatingPasses(_ pieces: [WeightMatrix], warmUpRows: Int,
                           _ round: (_ pass: (String, Int) -> Void) -> Void) -> (wall: [String: Double], cpu: [String: Double]) {
        let width = pieces.map { max($0.rows, $0.cols) }.max() ?? 1
        let x = UnsafeMutablePointer<Float>.allocate(capacity: 5 * width)
        let y = UnsafeMutablePointer<Float>.allocate(capacity: 5 * width)
        defer { x.deallocate(); y.deallocate() }
        for i in 0..<(5 * width) { x[i] = Float(i % 13) * 0.01 - 0.06 }
        var wall: [String: Double] = [:], cpu: [String: Double] = [:]
        _ = decodePass(pieces, n: warmUpRows, x: x, y: y)
        for _ in 0..<repetitions {
            round { key, n in
                let pass = decodePass(pieces, n: n, x: x, y: y)
                wall[key] = min(wall[key] ?? .infinity, pass.0)
                cpu[key, default: 0] += pass.1 / Double(repetitions)
            }
        }
        return (wall, cpu)
    }

    /// `decode-ab`: n = 1 passes alternating the one-row kernel (A) and the 4-row quads (B), then n = 2
    /// and 5 passes (B); best wall and mean CPU per pass.
    func decodeAB(_ model: BenchModel) {
        defer { Kernels.setDecodeOneRowAtATime(false) }
        let (wall, cpu) = alternatingPasses(decodePieces(model), warmUpRows: 1) { pass in
            for (key, oneRow) in [("A", true), ("B", false)] {
                Kernels.setDecodeOneRowAtATime(oneRow)
                pass(key, 1)
            }
            Kernels.setDecodeOneRowAtATime(false)
            pass("n2", 2)
            pass("n5", 5)
        }
        let format = model.head.format.rawValue as NSString
        for key in ["A", "B", "n2", "n5"] {
            print(String(format: "decode-ab %-4@ %-2@  best %7.2f ms  mean CPU %7.2f ms  (B = n1 quads, A = n1 one row)",
                         format, key as NSString, wall[key]! * 1e3, cpu[key]! * 1e3))
        }
        print(String(format: "decode-ab %-4@ B/A wall %.3f CPU %.3f;  n2/n1 wall %.3f CPU %.3f;  n5/n1 wall %.3f CPU %.3f",
                     format, wall["B"]! / wall["A"]!, cpu["B"]! / cpu["A"]!, wall["n2"]! / wall["B"]!,
                     cpu["n2"]! / cpu["B"]!, wall["n5"]! / wall["B"]!, cpu["n5"]! / cpu["B"]!))
    }

    /// `int8-ab`: n = 5 passes over the model with fast q8 weights alternating two tiles of 3 + 2 inputs (A)
    /// and one tile of 5 (B), and n = 1 passes; best wall and mean CPU per pass.
    func int8AB(_ model: BenchModel) {
        defer { Kernels.setInt8WideTiles(true) }
        let (wall, cpu) = alternatingPasses(decodePieces(model).map { $0.withPrecision(.fast) }, warmUpRows: 5) { pass in
            for (key, wide) in [("A", false), ("B", true)] {
                Kernels.setInt8WideTiles(wide)
                pass(key, 5)
            }
            pass("n1", 1)
        }
        for key in ["A", "B", "n1"] {
            print(String(format: "int8-ab   q8 fast %-2@  best %7.2f ms  mean CPU %7.2f ms  (A = n5 as 3 + 2, B = n5 as one tile)",
                         key as NSString, wall[key]! * 1e3, cpu[key]! * 1e3))
        }
        print(String(format: "int8-ab   q8 fast B/A wall %.3f CPU %.3f;  n5/n1 A wall %.3f CPU %.3f, B wall %.3f CPU %.3f",
                     wall["B"]! / wall["A"]!, cpu["B"]! / cpu["A"]!, wall["A"]! / wall["n1"]!, cpu["A"]! / cpu["n1"]!,
                     wall["B"]! / wall["n1"]!, cpu["B"]! / cpu["n1"]!))
    }

    /// `midn-ab`: passes of `linear` with n rows over `matrices`, alternating f16/bf16 widening at every
    /// group's load (A) and once per tile (B); best wall and mean CPU per pass.
    func midNAB(_ matrices: [WeightMatrix], n: Int) {
        let width = matrices.map { max($0.rows, $0.cols) }.max() ?? 1
        let x = UnsafeMutablePointer<Float>.allocate(capacity: n * width)
        let y = UnsafeMutablePointer<Float>.allocate(capacity: n * width)
        defer { x.deallocate(); y.deallocate(); Kernels.setMidNWidensOnce(true) }
        for i in 0..<(n * width) { x[i] = Float(i % 13) * 0.01 - 0.06 }
        var wall: [Bool: Double] = [:], cpu: [Bool: Double] = [:]
        _ = decodePass(matrices, n: n, x: x, y: y) // warm-up
        for _ in 0..<repetitions {
            for once in [false, true] {
                Kernels.setMidNWidensOnce(once)
                let pass = decodePass(matrices, n: n, x: x, y: y)
                wall[once] = min(wall[once] ?? .infinity, pass.0)
                cpu[once, default: 0] += pass.1 / Double(repetitions)
            }
        }
        let format = (matrices.first?.format.rawValue ?? "") as NSString
        print(String(format: "midn-ab   %-4@ n=%-3d A (widen per group) best %7.2f ms CPU %7.2f ms;  B (widen once) best %7.2f ms CPU %7.2f ms;  B/A wall %.3f CPU %.3f",
                     format, n, wall[false]! * 1e3, cpu[false]! * 1e3, wall[true]! * 1e3, cpu[true]! * 1e3,
                     wall[true]! / wall[false]!, cpu[true]! / cpu[false]!))
    }

    /// Mean cost of an empty parallelFor over all threads, measured over many back-to-back calls.
    func poolDispatchNanoseconds() -> Double {
        let calls = 2000
        let seconds = bestPerPiece(pieces: 1) { _ in
            for _ in 0..<calls { pool.parallelFor(pool.threadCount) { _ in } }
        }
        return seconds / Double(calls) * 1e9
    }

    /// Median time for a hot worker to pick up a task: each call's task 0 waits (up to 200 µs) until
    /// another thread has started task 1. Returns the median and the fraction of calls where it did.
    func poolHandoff() -> (nanoseconds: Double, picked: Double) {
        let started = Atomic<Int>(0)
        var samples: [UInt64] = []
        var picked = 0
        for call in 1...2000 {
            let start = Self.now()
            var pickedUp = false
            pool.parallelFor(2) { t in
                if t == 1 { started.store(call, ordering: .releasing); return }
                while started.load(ordering: .acquiring) != call && Self.now() - start < 200_000 {}
            }
            let elapsed = Self.now() - start
            pickedUp = elapsed < 200_000
            if pickedUp { picked += 1; samples.append(elapsed) }
        }
        samples.sort()
        let median = samples.isEmpty ? Double.nan : Double(samples[samples.count / 2])
        return (median, Double(picked) / 2000)
    }
}
