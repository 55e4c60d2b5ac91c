import Foundation

extension Kernels {
    /// The f32 FMA ceiling of one core, in GFLOP/s (2 per multiply-add) per second of this thread's CPU time:
    /// 16 independent chains of 16-lane FMAs (more than the FMA latency × issue ports of current x86 cores, so
    /// the loop is throughput-bound), `iterations` steps, best of `repeats`. Timed by thread CPU time, so time a
    /// loaded machine gives to other processes does not count; a benchmark that reports its own GFLOPS by CPU time
    /// against this figure, measured in the same process, cancels most of the load (not frequency changes or a
    /// sibling hyperthread's share of the core). ~0.5 ms per million iterations at 5 G FMA/s.
    public static func measureFMACeiling(iterations: Int = 2_000_000, repeats: Int = 5) -> Double {
        var best = Double.infinity
        var sink: Float = 0
        for _ in 0..<max(1, repeats) {
            let start = threadCPUSeconds()
            sink += fmaChains(iterations: iterations, seed: sink)
            best = min(best, threadCPUSeconds() - start)
        }
        // The sink keeps the loop's result alive; it is finite, so this never prints.
        if !sink.isFinite { print("FMA ceiling probe overflowed") }
        return Double(iterations) * 16 * 16 * 2 / best / 1e9
    }

    private static func threadCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    /// 16 accumulators, each `iterations` dependent FMAs; returns a sum of their lanes.
    @inline(never)
    private static func fmaChains(iterations: Int, seed: Float) -> Float {
        let a = F16x16(repeating: 1e-7 + seed * 1e-30), b = F16x16(repeating: 0.5)
        // Distinct starting values, so the compiler cannot merge identical chains into one.
        func start(_ i: Int) -> F16x16 { F16x16(repeating: Float(i) + seed) }
        var c0 = start(0), c1 = start(1), c2 = start(2), c3 = start(3), c4 = start(4), c5 = start(5)
        var c6 = start(6), c7 = start(7), c8 = start(8), c9 = start(9), c10 = start(10), c11 = start(11)
        var c12 = start(12), c13 = start(13), c14 = start(14), c15 = start(15)
        for _ in 0..<iterations {
            c0 = c0.addingProduct(a, b); c1 = c1.addingProduct(a, b); c2 = c2.addingProduct(a, b)
            c3 = c3.addingProduct(a, b); c4 = c4.addingProduct(a, b); c5 = c5.addingProduct(a, b)
            c6 = c6.addingProduct(a, b); c7 = c7.addingProduct(a, b); c8 = c8.addingProduct(a, b)
            c9 = c9.addingProduct(a, b); c10 = c10.addingProduct(a, b); c11 = c11.addingProduct(a, b)
            c12 = c12.addingProduct(a, b); c13 = c13.addingProduct(a, b); c14 = c14.addingProduct(a, b)
            c15 = c15.addingProduct(a, b)
        }
        let sum = ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7)) + ((c8 + c9) + (c10 + c11)) + ((c12 + c13) + (c14 + c15))
        return sum.sum()
    }
}
