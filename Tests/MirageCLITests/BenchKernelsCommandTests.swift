import Foundation
import Testing
import MirageTestSupport

/// `mirage bench kernels`: the cheap measurements run and report; bad options fail with a usable message.
@Suite struct BenchKernelsCommandTests {
    @Test func poolAndSmallPrefillReport() throws {
        let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        let result = try runProcess(binary, ["bench", "kernels", "--only", "pool,prefill", "--formats", "bf16",
                                             "--matrices", "k", "--prefill-rows", "24", "--repetitions", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("empty parallelFor(2) hot"))
        // Whether the worker got a core in time depends on the machine's load; either line is a report.
        #expect(result.stdout.contains("hot worker picks up a task") || result.stdout.contains("no worker picked up a task"))
        #expect(result.stdout.contains("prefill   bf16 n=24 k"))
        #expect(result.stdout.contains("GFLOP/s"))
    }

    @Test func unknownFormatIsRejected() throws {
        let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        let result = try runProcess(binary, ["bench", "kernels", "--formats", "f64"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("Unknown format 'f64'. Use any of: f32, f16, bf16, q8."))
    }
}
