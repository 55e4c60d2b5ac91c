import Foundation
import MirageEngine
import Testing
@testable import MirageVisuals

@Suite struct ColourRampTests {
    @Test func rampIsDistinctAndInvertibleByRedChannel() {
        #expect(ColourRamp.colours.count == 256)
        #expect(Set(ColourRamp.colours).count == 256)
        for (k, c) in ColourRamp.colours.enumerated() {
            #expect(Int(c.red) == k)
            #expect(ColourRamp.index(of: c) == k)
            #expect(ColourRamp.nearest(to: c).index == k)
        }
        // The documented anchors.
        #expect(ColourRamp.colours[0] == Colour(0, 10, 70))
        #expect(ColourRamp.colours[64] == Colour(64, 18, 140))
        #expect(ColourRamp.colours[128] == Colour(128, 40, 120))
        #expect(ColourRamp.colours[192] == Colour(192, 120, 40))
        #expect(ColourRamp.colours[255] == Colour(255, 245, 150))
        // Between anchors: round(10 + 8 * 32 / 64) = 14, round(70 + 70 * 32 / 64) = 105.
        #expect(ColourRamp.colours[32] == Colour(32, 14, 105))
        // No non-data colour of the heatmap is a ramp colour.
        let style = AttentionHeatmap.Style.self
        for c in [style.neutral, style.columnTint, style.rowTint, style.marked, style.highlighted, style.track,
                  style.text, style.background] {
            #expect(ColourRamp.index(of: c) == nil, "\(c) is a ramp colour")
        }
    }

    @Test func scaleMapsValuesAsDocumented() throws {
        let linear = try ColourScale(maximum: 0.5)
        #expect(linear.index(for: 0) == 0)
        #expect(linear.index(for: -1) == 0)
        #expect(linear.index(for: .nan) == 0)
        #expect(linear.index(for: 0.5) == 255)
        #expect(linear.index(for: 7) == 255)
        #expect(linear.index(for: 0.25) == 128)  // 127.5 rounds away from zero
        let root = try ColourScale(maximum: 1, gamma: 0.5)
        #expect(root.index(for: 0.25) == 128)  // sqrt(0.25) * 255 = 127.5
        #expect(abs(root.value(forIndex: 128) - 0.2519) < 1e-3)
        #expect(throws: VisualsError.self) { try ColourScale(maximum: 0) }
        #expect(throws: VisualsError.self) { try ColourScale(maximum: 1, gamma: -1) }
    }
}

@Suite struct AttentionHeatmapTests {
    /// A causal attention pattern: each row a distribution over columns 0...i, with a heavy first column.
    static func attention(_ n: Int, seed: UInt64) -> [Float] {
        var random = TestRandom(seed: seed)
        var values = [Float](repeating: 0, count: n * n)
        for i in 0..<n {
            var row = (0...i).map { j in j == 0 ? 3 : random.unit() * random.unit() }
            let sum = row.reduce(0, +)
            row = row.map { $0 / sum }
            for j in 0...i { values[i * n + j] = row[j] }
            // Garbage in the upper triangle must be ignored.
            for j in (i + 1)..<n { values[i * n + j] = 99 }
        }
        return values
    }

    /// Checks every cell's pixels against the recorded values, the upper-triangle colours and the
    /// image-mass bars, by decoding the PNG.
    func checkPixels(_ heatmap: AttentionHeatmap, png: [UInt8], layout: HeatmapLayout) throws {
        let image = try decodePNG(png)
        #expect(image.width == layout.width && image.height == layout.height)
        let n = heatmap.tokenCount
        let maximum = heatmap.scaleMaximum ?? (0..<n).flatMap { i in (0...i).map { heatmap.values[i * n + $0] } }.max()!
        var mismatches = 0
        for i in 0..<n {
            for j in 0..<n {
                let rect = layout.cellRect(row: i, col: j)
                let first = image.colour(rect.x, rect.y)
                for y in rect.y..<rect.maxY {
                    for x in rect.x..<rect.maxX where image.colour(x, y) != first { mismatches += 1 }
                }
                if j <= i {
                    guard let index = ColourRamp.index(of: first) else { mismatches += 1; continue }
                    // Invert: the ramp step's value must be within half a step of the recorded value.
                    let decoded = Float(index) / 255 * maximum
                    let recorded = min(heatmap.values[i * n + j], maximum)
                    if abs(decoded - recorded) > maximum / 510 * 1.0001 { mismatches += 1 }
                } else {
                    let expected = heatmap.highlightedColumns.contains(j) ? AttentionHeatmap.Style.columnTint
                        : heatmap.markedTokens.contains(i) ? AttentionHeatmap.Style.rowTint : AttentionHeatmap.Style.neutral
                    if first != expected { mismatches += 1 }
                }
            }
        }
        #expect(mismatches == 0, "\(mismatches) cells do not encode their values")
        if !heatmap.imageMass.isEmpty {
            for i in 0..<n {
                let track = layout.imageMassRect(row: i)
                let mass = heatmap.imageMass[i]
                let fill = (0..<track.width).prefix { image.colour(track.x + $0, track.y) != AttentionHeatmap.Style.track }.count
                #expect(abs(Float(fill) / Float(track.width) - mass) <= 0.5 / Float(track.width) + 1e-6, "row \(i) bar length")
                if fill > 0 {
                    let index = ColourRamp.index(of: image.colour(track.x, track.maxY - 1))
                    #expect(index.map { abs(Float($0) / 255 - mass) <= 0.5 / 255 + 1e-6 } == true, "row \(i) bar colour")
                }
            }
        }
    }

    @Test func labelledHeatmapPixelsInvertToTheRecordedValues() throws {
        let n = 24
        var random = TestRandom(seed: 5)
        let words = ["A", " man", " riding", " a", " horse", " next", " to", " a", " dog", ".", " There", " is",
                     " a", " fence", " and", " a", " surfboard", " nearby", ",", " grass", " and", " trees", "é", "."]
        let heatmap = AttentionHeatmap(
            tokenCount: n, values: Self.attention(n, seed: 11), labels: words,
            imageMass: (0..<n).map { _ in random.unit() }, markedTokens: [8, 16], highlightedColumns: [9, 18],
            title: "item 42: last layer, head mean")
        let (png, layout) = try heatmap.png()
        #expect(layout.showsLabels)
        #expect(layout.cellSize == 24)
        try checkPixels(heatmap, png: png, layout: layout)

        let image = try decodePNG(png)
        // Marker strips: red beside marked rows (and above their columns), blue above highlighted columns.
        let rowMark = layout.rowMarkerRect(row: 8), columnMark = layout.columnMarkerRect(col: 9)
        #expect(image.colour(rowMark.x + 1, rowMark.y + 5) == AttentionHeatmap.Style.marked)
        #expect(image.colour(columnMark.x + 5, columnMark.y + 1) == AttentionHeatmap.Style.highlighted)
        #expect(image.colour(layout.rowMarkerRect(row: 3).x + 1, layout.rowMarkerRect(row: 3).y + 5) == .white)
        // Labels: the marked row's label has red ink left of the matrix, a plain row's label has none.
        func inkCount(_ colour: Colour, row: Int) -> Int {
            let y0 = layout.cellRect(row: row, col: 0).y
            return (y0..<(y0 + layout.cellSize)).reduce(0) { sum, y in
                sum + (0..<layout.matrixOrigin.x).filter { image.colour($0, y) == colour }.count
            }
        }
        #expect(inkCount(AttentionHeatmap.Style.marked, row: 16) > 10)
        #expect(inkCount(AttentionHeatmap.Style.highlighted, row: 18) > 10)
        #expect(inkCount(AttentionHeatmap.Style.text, row: 2) > 10)
        #expect(inkCount(AttentionHeatmap.Style.marked, row: 2) == 4 * 0)
    }

    @Test func longResponseShrinksCellsAndStaysBounded() throws {
        let n = 512
        var random = TestRandom(seed: 8)
        let heatmap = AttentionHeatmap(
            tokenCount: n, values: Self.attention(n, seed: 12), labels: (0..<n).map { "tok\($0)" },
            imageMass: (0..<n).map { _ in random.unit() }, markedTokens: [100, 300], highlightedColumns: [50, 51, 400],
            scaleMaximum: 0.05, gamma: 1)
        let (png, layout) = try heatmap.png()
        #expect(layout.cellSize == 2)
        #expect(!layout.showsLabels, "2-pixel cells are too small for labels")
        #expect(layout.tickStep == 10)
        #expect(layout.width < 1200 && layout.height < 1200)
        #expect(png.count < 2_000_000)
        try checkPixels(heatmap, png: png, layout: layout)
    }

    @Test func gammaScaleAndOnePixelCells() throws {
        let n = 40
        let values = Self.attention(n, seed: 2)
        var heatmap = AttentionHeatmap(tokenCount: n, values: values, gamma: 0.5)
        heatmap.maxMatrixSize = 40
        let (png, layout) = try heatmap.png()
        #expect(layout.cellSize == 1)
        let image = try decodePNG(png)
        let maximum = (0..<n).flatMap { i in (0...i).map { values[i * n + $0] } }.max()!
        for i in 0..<n {
            for j in 0...i {
                let r = layout.cellRect(row: i, col: j)
                let index = ColourRamp.index(of: image.colour(r.x, r.y))
                let expected = Int((sqrt(values[i * n + j] / maximum) * 255).rounded())
                #expect(index == expected, "cell (\(i), \(j))")
            }
        }
    }

    @Test func raggedCausalRowsFillTheLowerTriangle() throws {
        let heatmap = AttentionHeatmap(lowerTriangularRows: [[1], [0.25, 0.75], [0.5, 0.25]])
        #expect(heatmap.tokenCount == 3)
        #expect(heatmap.values == [1, 0, 0, 0.25, 0.75, 0, 0.5, 0.25, 0])
        let (png, layout) = try heatmap.png()
        let image = try decodePNG(png)
        let cell = layout.cellRect(row: 1, col: 0)
        #expect(ColourRamp.index(of: image.colour(cell.x, cell.y)) == 64)  // round(0.25 * 255) = 63.75 -> 64
        let upper = layout.cellRect(row: 0, col: 2)
        #expect(image.colour(upper.x, upper.y) == AttentionHeatmap.Style.neutral)
    }

    @Test func invalidInputsSayWhatToDo() {
        #expect(throws: VisualsError.emptyHeatmap) { try AttentionHeatmap(tokenCount: 0, values: []).layout() }
        #expect(throws: VisualsError.heatmapValueCount(tokens: 2, expected: 4, actual: 3)) {
            try AttentionHeatmap(tokenCount: 2, values: [1, 0, 1]).layout()
        }
        #expect(throws: VisualsError.heatmapLabelCount(tokens: 2, actual: 1)) {
            try AttentionHeatmap(tokenCount: 2, values: [1, 0, 0.5, 0.5], labels: ["a"]).layout()
        }
        #expect(throws: VisualsError.tokenIndexOutOfRange(what: "a highlighted column", index: 2, tokens: 2)) {
            try AttentionHeatmap(tokenCount: 2, values: [1, 0, 0.5, 0.5], highlightedColumns: [2]).layout()
        }
        #expect(throws: VisualsError.self) { try AttentionHeatmap(tokenCount: 2, values: [1, 0, .nan, 0.5]).layout() }
        #expect(throws: VisualsError.heatmapTooLarge(tokens: 5000, limit: 4096)) {
            try AttentionHeatmap(tokenCount: 5000, values: []).layout()
        }
        let message = VisualsError.heatmapValueCount(tokens: 2, expected: 4, actual: 3).description
        #expect(message.contains("row-major"))
    }
}

@Suite struct CanvasTests {
    @Test func fontCoversPrintableASCIIWithDistinctGlyphs() {
        #expect(BitmapFont.art.count == 95)
        for (k, line) in BitmapFont.art.enumerated() {
            let rows = line.split(separator: " ")
            #expect(rows.count == 7 && rows.allSatisfy { $0.count == 5 }, "glyph \(k)")
        }
        let printable = BitmapFont.glyphs.dropFirst()  // all but space
        #expect(Set(printable).count == printable.count, "two glyphs look the same")
        #expect(BitmapFont.glyph(for: "é") == BitmapFont.glyph(for: "?"))
    }

    @Test func textAndVerticalTextPlaceGlyphPixels() throws {
        var canvas = Canvas(width: 40, height: 40)
        let width = canvas.drawText("T", at: Point(x: 2, y: 3), .black, scale: 2)
        #expect(width == 10)
        // 'T': top row full (5 columns -> 10 pixels at scale 2), then the stem in column 2.
        for x in 2..<12 { #expect(canvas[x, 3] == .black && canvas[x, 4] == .black) }
        #expect(canvas[2, 5] == .white)
        #expect(canvas[6, 8] == .black && canvas[7, 16] == .black)
        var vertical = Canvas(width: 20, height: 20)
        vertical.drawVerticalText("T", at: Point(x: 1, y: 1), .black)
        // Rotated counter-clockwise: the T's top bar becomes the leftmost column, running up from the bottom.
        for y in 1..<6 { #expect(vertical[1, y] == .black) }
        #expect(vertical[2, 3] == .black && vertical[2, 2] == .white)  // the stem leaves the bar's middle
        let png = try canvas.png()
        #expect(try decodePNG(png).colour(6, 8) == .black)
    }

    @Test func linesAndFillsClip() {
        var canvas = Canvas(width: 10, height: 10)
        canvas.fill(Rect(x: -5, y: -5, width: 8, height: 8), .black)
        #expect(canvas[2, 2] == .black && canvas[3, 3] == .white)
        canvas.drawLine(from: Point(x: 0, y: 9), to: Point(x: 9, y: 0), Colour(255, 0, 0))
        for k in 0..<10 { #expect(canvas[k, 9 - k] == Colour(255, 0, 0)) }
        canvas.drawLine(from: Point(x: -20, y: 5), to: Point(x: 30, y: 5), Colour(0, 0, 255), thickness: 3)
        #expect(canvas[5, 4] == Colour(0, 0, 255) && canvas[5, 6] == Colour(0, 0, 255) && canvas[5, 7] == .white)
    }
}
