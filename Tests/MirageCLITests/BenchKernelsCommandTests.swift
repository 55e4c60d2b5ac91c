import Foundation
import Testing
import MirageTestSupport

/// `mirage-bench kernels`: the cheap measurements run and report; bad options fail with a usable message.
/// Also: the measurements live in `mirage-bench`, not in the researcher's `mirage`.
@Suite struct BenchKernelsCommandTests {
    static func benchBinary() throws -> URL {
        try #require(BuiltProducts.mirageBench, "the mirage-bench executable was not built next to the tests")
    }

    @Test func poolAndSmallPrefillReport() throws {
        let result = try runProcess(try Self.benchBinary(), ["kernels", "--only", "pool,prefill", "--formats", "bf16",
                                                             "--matrices", "k", "--prefill-rows", "24", "--repetitions", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("empty parallelFor(2) hot"))
        // Whether the worker got a core in time depends on the machine's load; either line is a report.
        #expect(result.stdout.contains("hot worker picks up a task") || result.stdout.contains("no worker picked up a task"))
        #expect(result.stdout.contains("prefill   bf16 n=24 k"))
        #expect(result.stdout.contains("GFLOP/s"))
    }

    @Test func unknownFormatIsRejected() throws {
        let result = try runProcess(try Self.benchBinary(), ["kernels", "--formats", "f64"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("Unknown format 'f64'. Use any of: f32, f16, bf16, q8."))
    }

    /// `mirage-bench engine --tsv` (what Benchmarks/side-by-side reads): a header and one line per format with
    /// positive rates.
    @Test func engineTSVHasOneLinePerFormat() throws {
        let mirage = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        let dir = TestTemporary.url("mirage-bench-tsv")
        defer { try? FileManager.default.removeItem(at: dir) }
        let synth = try runProcess(mirage, ["models", "synth", "--arch", "qwen2", "--size", "tiny", "--seed", "1",
                                            "--out", dir.path])
        #expect(synth.status == 0, "\(synth.stderr)")
        let result = try runProcess(try Self.benchBinary(), ["engine", "--model", dir.path, "--formats", "f16,q8", "--tsv",
                                                             "--decode-tokens", "4", "--prefill-tokens", "16", "--threads", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
        #expect(lines.count == 3, "\(result.stdout)")
        #expect(lines.first == ["format", "decode_tok_s", "prefill_tok_s", "batch5_ratio"])
        for (line, format) in zip(lines.dropFirst(), ["f16", "q8"]) {
            #expect(line.count == 4 && line[0] == format, "\(line)")
            for value in line.dropFirst() { #expect((Double(value) ?? 0) > 0, "\(line)") }
        }
    }

    /// `mirage --help` is the researcher's tool: no bench subcommand; `mirage-bench --help` lists the areas.
    @Test func benchmarksAreASeparateExecutable() throws {
        let mirage = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        let help = try runProcess(mirage, ["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("chair") && help.stdout.contains("run"))
        #expect(!help.stdout.contains("bench"), "\(help.stdout)")
        let old = try runProcess(mirage, ["bench", "kernels"])
        #expect(old.status != 0)

        let bench = try runProcess(try Self.benchBinary(), ["--help"])
        #expect(bench.status == 0)
        for area in ["kernels", "engine", "decoders", "runner", "store", "chair"] {
            #expect(bench.stdout.contains(area), "mirage-bench --help lacks \(area): \(bench.stdout)")
        }
        let version = try runProcess(try Self.benchBinary(), ["--version"])
        #expect(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                == (try runProcess(mirage, ["--version"])).stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
