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

    /// The numbers of the first match of `pattern` (capture groups) in `text`.
    static func numbers(_ pattern: String, in text: String) throws -> [Double] {
        let regex = try NSRegularExpression(pattern: pattern)
        let range = NSRange(text.startIndex..., in: text)
        let match = try #require(regex.firstMatch(in: text, range: range), "no line matching \(pattern) in:\n\(text)")
        return try (1..<match.numberOfRanges).map { i in
            let field = try #require(Range(match.range(at: i), in: text))
            return try #require(Double(text[field]), "not a number: \(text[field])")
        }
    }

    /// `mirage-bench kernels` states its prefill share against the f32 FMA ceiling it measures (per core ×
    /// threads), not a constant; --peak-gflops replaces it.
    @Test func kernelsPeakIsTheMeasuredFMACeiling() throws {
        let arguments = ["kernels", "--only", "prefill", "--formats", "f32", "--matrices", "k", "--prefill-rows", "24",
                         "--repetitions", "1", "--threads", "2"]
        let measured = try runProcess(try Self.benchBinary(), arguments)
        #expect(measured.status == 0, "\(measured.stderr)")
        let limits = try Self.numbers(#"limits \d+ GB/s, ([0-9.]+) GFLOP/s \(the f32 FMA ceiling measured here, ([0-9.]+) per core × 2 threads\)"#,
                                      in: measured.stdout)
        #expect(limits[1] > 1 && abs(limits[0] - 2 * limits[1]) <= 0.15, "\(measured.stdout)")
        let prefill = try Self.numbers(#"prefill +f32 +n=24 k .* ([0-9.]+) GFLOP/s +([0-9.]+)% of peak"#, in: measured.stdout)
        #expect(abs(prefill[1] - 100 * prefill[0] / limits[0]) <= 0.1 + 0.001 * prefill[1], "\(measured.stdout)")

        let fixed = try runProcess(try Self.benchBinary(), arguments + ["--peak-gflops", "1000"])
        #expect(fixed.status == 0, "\(fixed.stderr)")
        #expect(fixed.stdout.contains("1000.0 GFLOP/s (--peak-gflops; the f32 FMA ceiling measured here is "), "\(fixed.stdout)")
        let share = try Self.numbers(#"prefill +f32 +n=24 k .* ([0-9.]+) GFLOP/s +([0-9.]+)% of peak"#, in: fixed.stdout)
        #expect(abs(share[1] - share[0] / 10) <= 0.1 + 0.001 * share[1], "\(fixed.stdout)")
        let bad = try runProcess(try Self.benchBinary(), ["kernels", "--peak-gflops", "0"])
        #expect(bad.status != 0 && bad.stderr.contains("--peak-gflops must be positive"), "\(bad.stderr)")
    }

    /// `mirage-bench engine` (table form) states the prefill's wall and CPU-time GFLOPS against the measured f32
    /// FMA ceiling × threads, or --ceiling.
    @Test func enginePeakIsTheMeasuredFMACeiling() throws {
        let mirage = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        let dir = TestTemporary.url("mirage-bench-peak")
        defer { try? FileManager.default.removeItem(at: dir) }
        let synth = try runProcess(mirage, ["models", "synth", "--arch", "qwen2", "--size", "tiny", "--seed", "1",
                                            "--out", dir.path])
        #expect(synth.status == 0, "\(synth.stderr)")
        let arguments = ["engine", "--model", dir.path, "--formats", "f16", "--decode-tokens", "4", "--prefill-tokens", "16",
                         "--threads", "1"]
        let measured = try runProcess(try Self.benchBinary(), arguments)
        #expect(measured.status == 0, "\(measured.stderr)")
        let peak = try Self.numbers(#"f32 peak ([0-9.]+) GFLOPS: FMA ceiling measured here, ([0-9.]+) per core by thread CPU time × 1 threads"#,
                                    in: measured.stdout)
        #expect(peak[0] > 1 && abs(peak[0] - peak[1]) <= 0.1, "\(measured.stdout)")
        let row = #"\nf16 .* ([0-9.]+) +([0-9.]+)% +([0-9.]+) +([0-9.]+)%\n"#
        let shares = try Self.numbers(row, in: measured.stdout)
        #expect(abs(shares[1] - 100 * shares[0] / peak[0]) <= 0.1 + 0.001 * shares[1], "\(measured.stdout)")
        #expect(abs(shares[3] - 100 * shares[2] / peak[0]) <= 0.1 + 0.001 * shares[3], "\(measured.stdout)")

        let fixed = try runProcess(try Self.benchBinary(), arguments + ["--ceiling", "1000"])
        #expect(fixed.status == 0, "\(fixed.stderr)")
        #expect(fixed.stdout.contains("f32 peak 1000.0 GFLOPS: --ceiling (measured here: "), "\(fixed.stdout)")
        let fixedShares = try Self.numbers(row, in: fixed.stdout)
        #expect(abs(fixedShares[1] - fixedShares[0] / 10) <= 0.1 + 0.001 * fixedShares[1], "\(fixed.stdout)")
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
