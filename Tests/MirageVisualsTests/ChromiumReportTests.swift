import Foundation
import MirageEngine
import MirageImaging
import MirageTestSupport
import Testing
@testable import MirageVisuals

/// Renders a report in headless Chromium (Debian package `chromium`, installed by `.ci/run`): the DOM must
/// hold the tables and report two decoded images, and a screenshot must show the heatmaps' ramp colours.
enum Chromium {
    static let names = ["chromium", "chromium-headless-shell", "chromium-browser"]

    /// The first Chromium binary on PATH, if any.
    static let binary: URL? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for name in names {
            for dir in path.split(separator: ":") {
                let candidate = URL(fileURLWithPath: String(dir)).appendingPathComponent(name)
                if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            }
        }
        return nil
    }()

    static let missingMessage: Comment =
        "skipped: no chromium or chromium-headless-shell on PATH (Debian: apt-get install chromium)"

    /// Runs Chromium headless on `page` with extra arguments; returns standard output. Standard error (where
    /// Chromium logs D-Bus and GPU noise) is discarded. Gives up after `timeout` seconds.
    static func run(_ arguments: [String], page: URL, in folder: URL, timeout: TimeInterval = 120) throws -> String {
        let process = Process()
        process.executableURL = binary
        let profile = folder.appendingPathComponent("profile-\(UUID().uuidString)")
        process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--no-first-run", "--hide-scrollbars", "--user-data-dir=\(profile.path)"]
            + arguments + [page.absoluteString]
        let outFile = folder.appendingPathComponent("stdout-\(UUID().uuidString).txt")
        _ = FileManager.default.createFile(atPath: outFile.path, contents: nil)
        let out = try FileHandle(forWritingTo: outFile)
        defer { try? out.close() }
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            throw ChromiumTimeout(seconds: timeout)
        }
        return (try? String(contentsOf: outFile, encoding: .utf8)) ?? ""
    }

    struct ChromiumTimeout: Error, CustomStringConvertible {
        var seconds: TimeInterval
        var description: String { "chromium did not finish within \(Int(seconds)) s" }
    }
}

@Suite struct ChromiumReportTests {
    /// A report with a comparison table and two heatmaps, small enough to fit a 1200x1600 window.
    static func report() throws -> (html: String, heatmaps: [[UInt8]]) {
        var heatmaps: [[UInt8]] = []
        var items: [HTMLReport.Item] = []
        for k in 0..<2 {
            let n = 10
            let heatmap = AttentionHeatmap(tokenCount: n, values: AttentionHeatmapTests.attention(n, seed: UInt64(40 + k)),
                                           labels: (0..<n).map { "w\($0)" }, imageMass: (0..<n).map { 1 - Float($0) / 10 },
                                           markedTokens: [3], highlightedColumns: [6], title: "item \(k)")
            let png = try heatmap.png().png
            heatmaps.append(png)
            items.append(.init(id: "item-\(k)", caption: "A cat on a sofa next to a dog.",
                               spans: HTMLReport.Span.occurrences(of: ["dog"], in: "A cat on a sofa next to a dog.", kind: .hallucinated),
                               heatmapPNG: png))
        }
        let report = HTMLReport(
            title: "Chromium check",
            comparison: .init(caption: "against greedy", headers: ["run", "CHAIR_S", "CHAIR_I"],
                              rows: [["greedy", "51.2", "14.1"], ["opera", "44.6", "12.8"]], highlightedRows: [0]),
            items: items)
        return (try report.render(), heatmaps)
    }

    /// Pixels within 3 levels per channel of a ramp colour (ramp entry k has red k, so only k = red +- 3
    /// can be that close), excluding greys.
    static func rampPixelCount(_ image: RGBImage) -> Int {
        let ramp = ColourRamp.colours
        var count = 0
        image.pixels.withUnsafeBufferPointer { px in
            var i = 0
            while i < px.count {
                let r = Int(px[i]), g = Int(px[i + 1]), b = Int(px[i + 2])
                i += 3
                if r == g && g == b { continue }
                for k in max(0, r - 3)...min(255, r + 3) {
                    let c = ramp[k]
                    if abs(Int(c.green) - g) <= 3 && abs(Int(c.blue) - b) <= 3 { count += 1; break }
                }
            }
        }
        return count
    }

    @Test(.enabled(if: Chromium.binary != nil, Chromium.missingMessage), .timeLimit(.minutes(4)))
    func reportRendersInHeadlessChromium() throws {
        let folder = TestTemporary.root.appendingPathComponent("mirage-chromium-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (html, heatmaps) = try Self.report()
        let page = folder.appendingPathComponent("report.html")
        try Data(html.utf8).write(to: page)

        // The DOM after load: the comparison table with its baseline row, two images that decoded.
        let dom = try Chromium.run(["--dump-dom"], page: page, in: folder)
        #expect(dom.contains("data-rendered=\"2\""), "the page did not report 2 decoded images:\n\(dom.prefix(400))")
        #expect(dom.contains("<table class=\"comparison\">"))
        #expect(dom.contains("<tr class=\"highlight\"><td>greedy</td>"))
        #expect(dom.components(separatedBy: "class=\"heatmap\"").count == 3)

        // The screenshot: as many ramp-coloured pixels as the two heatmap PNGs hold (cells, legends, bars).
        let shot = folder.appendingPathComponent("shot.png")
        _ = try Chromium.run(["--screenshot=\(shot.path)", "--window-size=1200,1600"], page: page, in: folder)
        let image = try ImageDecoder.load(path: shot.path)
        #expect(image.width == 1200 && image.height == 1600)
        let expected = try heatmaps.reduce(0) { $0 + Self.rampPixelCount(try decodePNG($1)) }
        let seen = Self.rampPixelCount(image)
        #expect(expected > 2 * 10 * 10 * 24 * 24 / 2, "the heatmaps themselves should be mostly ramp colours")
        #expect(Double(seen) >= 0.95 * Double(expected) && Double(seen) <= 1.05 * Double(expected) + 2000,
                "screenshot shows \(seen) ramp-coloured pixels, the two heatmaps hold \(expected)")
        // Not blank: the baseline row's highlight colour (#fff4c2) shows, and the title's dark grey text
        // (#222, anti-aliased greys) sits in the top 80 rows.
        var highlight = 0, titleInk = 0
        for y in 0..<image.height {
            for x in 0..<image.width {
                let p = image[x, y]
                if p == (255, 244, 194) { highlight += 1 }
                if y < 80, p.0 == p.1, p.1 == p.2, p.0 < 100 { titleInk += 1 }
            }
        }
        #expect(highlight > 500, "the comparison table's baseline row is not visible (\(highlight) pixels)")
        #expect(titleInk > 200, "the page title is not visible (\(titleInk) dark pixels)")
    }
}
