import ArgumentParser
import Foundation
import MirageCLISupport
import MirageVisuals

/// `mirage-bench visuals`: rendering and PNG encoding time of a long-response attention heatmap, a line
/// plot and an HTML report.
struct BenchVisualsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "visuals",
        abstract: "Time drawing and PNG-encoding attention heatmaps, line plots and HTML reports.",
        discussion: """
        Renders a synthetic causal attention map of --tokens response tokens (the default, a long \
        response, is 512: 2-pixel cells, ~1.1 MP) --repeat times, reports the best render and encode times, the PNG size \
        and the encoder's input throughput, then does the same for a line plot and a two-item HTML report. \
        With --output, writes heatmap.png, plot.png and report.html there to look at.

        EXAMPLE:
          swift build -c release
          .build/release/mirage-bench visuals --tokens 512 --output /tmp/visuals
        """)

    @Option(name: .long, help: "Response tokens of the synthetic heatmap (1...4096).")
    var tokens = 512

    @Option(name: .customLong("repeat"), help: "Timed repetitions; the fastest is reported.")
    var repetitions = 3

    @Option(name: .long, help: ArgumentHelp("Folder to write heatmap.png, plot.png and report.html into.", valueName: "dir"))
    var output: String?

    func validate() throws {
        guard (1...AttentionHeatmap.maxTokens).contains(tokens) else {
            throw ValidationError("--tokens must be between 1 and \(AttentionHeatmap.maxTokens).")
        }
        guard repetitions >= 1 else { throw ValidationError("--repeat must be at least 1.") }
    }

    func run() throws {
        try runReportingErrors {
            let heatmap = Self.syntheticHeatmap(tokens: tokens)
            var render = Double.infinity, encode = Double.infinity
            var png: [UInt8] = [], layout: HeatmapLayout?
            for _ in 0..<repetitions {
                let (drawn, renderSeconds) = try timed { try heatmap.render() }
                let (bytes, encodeSeconds) = try timed { try drawn.canvas.png() }
                render = min(render, renderSeconds)
                encode = min(encode, encodeSeconds)
                png = bytes
                layout = drawn.layout
            }
            let l = layout!
            let raw = Double(l.width * l.height * 3)
            print("heatmap \(tokens)x\(tokens) tokens: \(l.width)x\(l.height) px, \(l.cellSize)-px cells, labels \(l.showsLabels ? "shown" : "as index ticks every \(l.tickStep)")")
            print(String(format: "  render %.1f ms, PNG encode %.1f ms (%.0f MB/s of RGB input), PNG %.1f kB (%.1f%% of raw); total %.1f ms",
                         render * 1000, encode * 1000, raw / encode / 1e6, Double(png.count) / 1000,
                         Double(png.count) / raw * 100, (render + encode) * 1000))

            let plot = LinePlot(title: "CHAIR by summary tokens", xLabel: "summary tokens before the sub-sentence",
                                yLabel: "CHAIR (%)", series: [
                                    .init(name: "CHAIR_S", points: [(0, 12.5), (1, 18), (2, 24.4), (3, 31), (4, 33.2)]),
                                    .init(name: "CHAIR_I", points: [(0, 5.1), (1, 7.9), (2, 10.2), (3, 14.8), (4, 16)]),
                                ])
            var plotSeconds = Double.infinity, plotPNG: [UInt8] = []
            for _ in 0..<repetitions {
                let (bytes, seconds) = try timed { try plot.png().png }
                plotSeconds = min(plotSeconds, seconds)
                plotPNG = bytes
            }
            print(String(format: "line plot %dx%d px: %.1f ms, PNG %.1f kB", plot.width, plot.height, plotSeconds * 1000,
                         Double(plotPNG.count) / 1000))

            let small = Self.syntheticHeatmap(tokens: min(tokens, 40))
            let report = HTMLReport(
                title: "mirage-bench visuals", subtitle: "synthetic data",
                settings: [.init(name: "synthetic", entries: [("tokens", String(tokens))])],
                metrics: [.init(caption: "CHAIR", headers: ["run", "CHAIR_S", "CHAIR_I"], rows: [["synthetic", "44.6", "12.8"]])],
                comparison: .init(caption: "against greedy", headers: ["run", "CHAIR_S", "delta"],
                                  rows: [["greedy", "51.2", ""], ["synthetic", "44.6", "-6.6"]], highlightedRows: [0]),
                figures: [.init(title: "CHAIR by summary tokens", png: plotPNG)],
                items: [
                    .init(id: "long", caption: "A synthetic caption with a dog and a surfboard.",
                          spans: HTMLReport.Span.occurrences(of: ["surfboard"], in: "A synthetic caption with a dog and a surfboard.", kind: .hallucinated)
                              + HTMLReport.Span.occurrences(of: ["dog"], in: "A synthetic caption with a dog and a surfboard.", kind: .correct),
                          heatmapPNG: png),
                    .init(id: "short", caption: "A shorter one.", heatmapPNG: try small.png().png),
                ])
            let (html, htmlSeconds) = try timed { try report.render() }
            print(String(format: "HTML report (2 heatmaps, 1 figure): %.1f ms, %.1f kB", htmlSeconds * 1000, Double(html.utf8.count) / 1000))

            if let output {
                let folder = URL(fileURLWithPath: output)
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                try Data(png).write(to: folder.appendingPathComponent("heatmap.png"))
                try Data(plotPNG).write(to: folder.appendingPathComponent("plot.png"))
                try Data(html.utf8).write(to: folder.appendingPathComponent("report.html"))
                print("wrote heatmap.png, plot.png and report.html to \(folder.path)")
            }
        }
    }

    /// A causal attention pattern with an attention sink on token 0 and a few column-wise "summary" tokens
    /// that later rows attend to, as over-trust analyses see them. Deterministic.
    static func syntheticHeatmap(tokens n: Int) -> AttentionHeatmap {
        var values = [Float](repeating: 0, count: n * n)
        let summaries = Set(stride(from: n / 5, to: n, by: max(1, n / 4)))
        var state: UInt64 = 0x1234_5678
        func unit() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(state >> 40) / Float(1 << 24)
        }
        var imageMass = [Float](repeating: 0, count: n)
        for i in 0..<n {
            var sum: Float = 0
            for j in 0...i {
                var w = unit() * 0.3 + (j == 0 ? 6 : 0) + (j == i ? 1 : 0)
                if summaries.contains(j), j < i { w += 2.5 }
                values[i * n + j] = w
                sum += w
            }
            for j in 0...i { values[i * n + j] /= sum }
            imageMass[i] = 0.6 * Float(n - i) / Float(n) + 0.1 * unit()
        }
        let words = ["The", " image", " shows", " a", " dog", " on", " a", " surfboard", ".", " It"]
        return AttentionHeatmap(tokenCount: n, values: values, labels: (0..<n).map { words[$0 % words.count] },
                                imageMass: imageMass, markedTokens: Set(stride(from: 7, to: n, by: 10)),
                                highlightedColumns: summaries, title: "synthetic attention, \(n) tokens", gamma: 0.5)
    }
}
