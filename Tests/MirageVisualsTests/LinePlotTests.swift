import Foundation
import MirageEngine
import Testing
@testable import MirageVisuals

@Suite struct LinePlotTests {
    /// The paper's Figure 2 b/c shape: CHAIR_S and CHAIR_I against the number of summary tokens before a sub-sentence.
    static let plot = LinePlot(
        title: "CHAIR by summary tokens", xLabel: "summary tokens before the sub-sentence", yLabel: "CHAIR (%)",
        series: [
            .init(name: "CHAIR_S", points: [(0, 12.5), (1, 18.0), (2, 24.4), (3, 31.0), (4, 33.2)]),
            .init(name: "CHAIR_I", points: [(0, 5.1), (1, 7.9), (2, 10.2), (3, 14.8), (4, 16.0)]),
        ])

    @Test func markersLandAtTheirDataCoordinates() throws {
        let (png, layout) = try Self.plot.png()
        let image = try decodePNG(png)
        #expect(image.width == 720 && image.height == 480)
        // Axes: x 0...4 in steps of 1 (raw step 4/7 -> 1), y widened to include 0, 0...35 in steps of 5.
        #expect(layout.xAxis.ticks == [0, 1, 2, 3, 4])
        #expect(layout.yAxis.minimum == 0 && layout.yAxis.maximum == 35)
        #expect(layout.yAxis.ticks == [0, 5, 10, 15, 20, 25, 30, 35])
        let r = layout.plotRect
        for (k, series) in Self.plot.series.enumerated() {
            let colour = LinePlot.palette[k]
            for (p, point) in series.points.enumerated() {
                // The documented mapping, computed here independently of the layout's own function.
                let x = r.x + Int(((point.x - 0) / 4 * Double(r.width - 1)).rounded())
                let y = r.maxY - 1 - Int(((point.y - 0) / 35 * Double(r.height - 1)).rounded())
                #expect(layout.markers[k][p] == Point(x: x, y: y))
                // The whole 7x7 marker square has the series colour.
                for dy in -3...3 {
                    for dx in -3...3 { #expect(image.colour(x + dx, y + dy) == colour, "series \(k) point \(p)") }
                }
            }
            let swatch = layout.legendEntries[k]
            #expect(image.colour(swatch.x + 5, swatch.y + 5) == colour)
        }
        // Lines join consecutive points: the midpoint of the first CHAIR_S segment is drawn.
        let a = layout.markers[0][0], b = layout.markers[0][1]
        let mid = Point(x: (a.x + b.x) / 2, y: (a.y + b.y) / 2)
        let near = (-1...1).flatMap { dy in (-1...1).map { image.colour(mid.x + $0, mid.y + dy) } }
        #expect(near.contains(LinePlot.palette[0]))
        // Axis frame drawn one pixel outside the plot area.
        #expect(image.colour(r.x - 1, r.y + r.height / 2) == LinePlot.axisColour)
    }

    @Test func fixedRangesAndDegenerateData() throws {
        var plot = LinePlot(series: [.init(name: "flat", points: [(1, 0.5), (2, 0.5)])])
        plot.yIncludesZero = false
        let layout = try plot.layout()
        #expect(layout.yAxis.minimum < 0.5 && layout.yAxis.maximum > 0.5)
        plot.xRange = 0...10
        plot.yRange = 0...1
        let fixed = try plot.layout()
        #expect(fixed.xAxis.minimum == 0 && fixed.xAxis.maximum == 10)
        #expect(fixed.xAxis.ticks == [0, 2, 4, 6, 8, 10])
        #expect(fixed.markers[0][0] == fixed.pixel(x: 1, y: 0.5))
        #expect(throws: VisualsError.emptyPlot) { try LinePlot(series: []).layout() }
        #expect(throws: VisualsError.plotPointNotFinite(series: "s", index: 1)) {
            try LinePlot(series: [.init(name: "s", points: [(0, 1), (1, .nan)])]).layout()
        }
    }

    @Test func numbersAreFormattedCompactly() {
        #expect(formatNumber(0) == "0")
        #expect(formatNumber(35) == "35")
        #expect(formatNumber(0.25) == "0.25")
        #expect(formatNumber(0.1 + 0.2) == "0.3")
        #expect(formatNumber(1234.5678) == "1235")
        #expect(formatNumber(0.000123) == "0.000123")
        #expect(formatNumber(-2.5) == "-2.5")
    }
}
