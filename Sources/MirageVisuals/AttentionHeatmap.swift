import Foundation

/// A response x response attention map drawn as a PNG heatmap: row i is query token i, column j the
/// attended token (only j <= i exists under causal attention; the upper triangle is drawn neutral).
/// Token labels on both axes, the image-token attention mass of each row as a side bar, hallucinated object
/// words marked (red labels and red marker strips), summary-token columns highlighted (blue labels, blue
/// marker strips, and their upper-triangle cells tinted blue). Data cells are never painted over, so every
/// cell's pixels invert to its value. See docs/visuals.md for the exact colour mapping and layout.
public struct AttentionHeatmap: Sendable {
    /// The number of response tokens n.
    public var tokenCount: Int
    /// n x n values, row-major (row = query token); only the lower triangle (column <= row) is drawn.
    public var values: [Float]
    /// One label per token (decoded token text), or empty for index ticks only.
    public var labels: [String]
    /// Per row: the fraction (0...1) of that query's attention that falls on image tokens; empty for no side bar.
    public var imageMass: [Float]
    /// Tokens to mark as hallucinated object words (e.g. from CHAIR).
    public var markedTokens: Set<Int>
    /// Columns to highlight as summary tokens.
    public var highlightedColumns: Set<Int>
    public var title: String
    /// The value that maps to the top of the ramp; nil uses the largest value of the lower triangle.
    public var scaleMaximum: Float?
    /// Exponent applied after normalising (see `ColourScale`); 1 is linear.
    public var gamma: Float
    /// The matrix is at most this many pixels wide (cells shrink, down to 1 pixel, to fit).
    public var maxMatrixSize: Int = 1024
    /// Cells are at most this many pixels wide.
    public var maxCellSize: Int = 24

    /// The most tokens one heatmap draws (a 4096-pixel matrix at 1 pixel per cell).
    public static let maxTokens = 4096
    /// Cells at least this large get token labels; smaller cells get index ticks instead.
    public static let minLabelledCellSize = 8
    /// Token labels are cut to this many characters.
    public static let maxLabelCharacters = 12

    public init(tokenCount: Int, values: [Float], labels: [String] = [], imageMass: [Float] = [],
                markedTokens: Set<Int> = [], highlightedColumns: Set<Int> = [], title: String = "",
                scaleMaximum: Float? = nil, gamma: Float = 1) {
        self.tokenCount = tokenCount
        self.values = values
        self.labels = labels
        self.imageMass = imageMass
        self.markedTokens = markedTokens
        self.highlightedColumns = highlightedColumns
        self.title = title
        self.scaleMaximum = scaleMaximum
        self.gamma = gamma
    }

    /// A heatmap from ragged causal rows: row i holds query token i's attention to tokens 0...i (extra
    /// values are ignored, missing ones drawn as 0), as attention capture records them per generated token.
    public init(lowerTriangularRows rows: [[Float]], labels: [String] = [], imageMass: [Float] = [],
                markedTokens: Set<Int> = [], highlightedColumns: Set<Int> = [], title: String = "",
                scaleMaximum: Float? = nil, gamma: Float = 1) {
        let n = rows.count
        var values = [Float](repeating: 0, count: n * n)
        for (i, row) in rows.enumerated() {
            for j in 0..<min(i + 1, row.count) { values[i * n + j] = row[j] }
        }
        self.init(tokenCount: n, values: values, labels: labels, imageMass: imageMass, markedTokens: markedTokens,
                  highlightedColumns: highlightedColumns, title: title, scaleMaximum: scaleMaximum, gamma: gamma)
    }

    /// Colours of everything that is not a data cell (none of them is a ramp colour).
    public enum Style {
        /// Upper-triangle cells (no value under causal attention).
        public static let neutral = Colour(228, 228, 228)
        /// Upper-triangle cells of a highlighted (summary-token) column.
        public static let columnTint = Colour(196, 222, 250)
        /// Upper-triangle cells of a marked (hallucinated) row not in a highlighted column.
        public static let rowTint = Colour(250, 212, 212)
        /// Marker strips and labels of marked tokens.
        public static let marked = Colour(200, 20, 20)
        /// Marker strips and labels of highlighted columns.
        public static let highlighted = Colour(20, 100, 210)
        /// The empty part of the image-mass bar.
        public static let track = Colour(238, 238, 238)
        public static let text = Colour(40, 40, 40)
        public static let background = Colour.white
    }

    /// Checks the inputs and computes where everything goes.
    public func layout() throws -> HeatmapLayout {
        let n = tokenCount
        guard n > 0 else { throw VisualsError.emptyHeatmap }
        guard n <= Self.maxTokens else { throw VisualsError.heatmapTooLarge(tokens: n, limit: Self.maxTokens) }
        guard values.count == n * n else {
            throw VisualsError.heatmapValueCount(tokens: n, expected: n * n, actual: values.count)
        }
        guard labels.isEmpty || labels.count == n else { throw VisualsError.heatmapLabelCount(tokens: n, actual: labels.count) }
        guard imageMass.isEmpty || imageMass.count == n else {
            throw VisualsError.heatmapImageMassCount(tokens: n, actual: imageMass.count)
        }
        var largest: Float = 0
        for i in 0..<n {
            for j in 0...i {
                let v = values[i * n + j]
                guard v.isFinite else { throw VisualsError.nonFiniteValue(what: "attention value (row \(i), column \(j)), element", index: i * n + j) }
                largest = max(largest, v)
            }
        }
        for (i, m) in imageMass.enumerated() where !m.isFinite {
            throw VisualsError.nonFiniteValue(what: "image mass of row", index: i)
        }
        for t in markedTokens where t < 0 || t >= n { throw VisualsError.tokenIndexOutOfRange(what: "a marked token", index: t, tokens: n) }
        for t in highlightedColumns where t < 0 || t >= n {
            throw VisualsError.tokenIndexOutOfRange(what: "a highlighted column", index: t, tokens: n)
        }
        let scale = try ColourScale(maximum: scaleMaximum ?? (largest > 0 ? largest : 1), gamma: gamma)
        return HeatmapLayout(tokenCount: n, labels: labels, hasImageMass: !imageMass.isEmpty, title: title,
                             scale: scale, maxMatrixSize: maxMatrixSize, maxCellSize: maxCellSize,
                             keyEntries: keyEntries)
    }

    /// The marker key under the legend: one entry per kind of mark in use.
    var keyEntries: [(text: String, colour: Colour)] {
        (markedTokens.isEmpty ? [] : [("hallucinated object", Style.marked)])
            + (highlightedColumns.isEmpty ? [] : [("summary token", Style.highlighted)])
    }

    /// The heatmap drawn on a canvas, with its layout.
    public func render() throws -> (canvas: Canvas, layout: HeatmapLayout) {
        let layout = try layout()
        let n = tokenCount
        let style = Style.self
        var canvas = Canvas(width: layout.width, height: layout.height, background: style.background)
        let ramp = ColourRamp.colours
        for i in 0..<n {
            for j in 0..<n {
                let colour: Colour
                if j <= i {
                    colour = ramp[layout.scale.index(for: values[i * n + j])]
                } else if highlightedColumns.contains(j) {
                    colour = style.columnTint
                } else if markedTokens.contains(i) {
                    colour = style.rowTint
                } else {
                    colour = style.neutral
                }
                canvas.fill(layout.cellRect(row: i, col: j), colour)
            }
        }
        // Marker strips: left of each row, above each column.
        for t in 0..<n {
            let rowColour = markedTokens.contains(t) ? style.marked : (highlightedColumns.contains(t) ? style.highlighted : nil)
            if let rowColour { canvas.fill(layout.rowMarkerRect(row: t), rowColour) }
            let columnColour = highlightedColumns.contains(t) ? style.highlighted : (markedTokens.contains(t) ? style.marked : nil)
            if let columnColour { canvas.fill(layout.columnMarkerRect(col: t), columnColour) }
        }
        // Labels (token text, or index ticks when cells are small).
        for t in 0..<n {
            guard let text = layout.labelText(token: t) else { continue }
            let colour = markedTokens.contains(t) ? style.marked : (highlightedColumns.contains(t) ? style.highlighted : style.text)
            canvas.drawText(text, at: layout.rowLabelOrigin(token: t, text: text), colour)
            canvas.drawVerticalText(text, at: layout.columnLabelOrigin(token: t, text: text), colour)
        }
        // Image-mass side bar.
        if layout.hasImageMass {
            for i in 0..<n {
                let track = layout.imageMassRect(row: i)
                canvas.fill(track, style.track)
                let fill = layout.imageMassFillWidth(imageMass[i])
                canvas.fill(Rect(x: track.x, y: track.y, width: fill, height: track.height), layout.imageMassColour(imageMass[i]))
            }
            canvas.drawText("image", at: layout.imageMassCaptionOrigin, style.text)
        }
        // Title and colour legend.
        if !title.isEmpty { canvas.drawText(title, at: Point(x: HeatmapLayout.margin, y: HeatmapLayout.margin), style.text, scale: 2) }
        let legend = layout.legendRect
        for k in 0..<256 { canvas.fill(Rect(x: legend.x + k, y: legend.y, width: 1, height: legend.height), ramp[k]) }
        let captionY = legend.maxY + 3
        canvas.drawText("0", at: Point(x: legend.x, y: captionY), style.text)
        let top = layout.legendMaximumText
        canvas.drawText(top, at: Point(x: legend.maxX - BitmapFont.width(of: top), y: captionY), style.text)
        canvas.drawText(layout.legendCaption, at: Point(x: legend.maxX + 8, y: legend.y + 1), style.text)
        var keyX = legend.x
        for entry in keyEntries {
            canvas.fill(Rect(x: keyX, y: layout.keyY, width: 8, height: 8), entry.colour)
            keyX += 12 + canvas.drawText(entry.text, at: Point(x: keyX + 12, y: layout.keyY + 1), style.text) + 16
        }
        return (canvas, layout)
    }

    /// PNG bytes of the heatmap, with its layout.
    public func png() throws -> (png: [UInt8], layout: HeatmapLayout) {
        let (canvas, layout) = try render()
        return (try canvas.png(), layout)
    }
}

/// Where an `AttentionHeatmap` puts everything, in pixels of its PNG.
public struct HeatmapLayout: Sendable, Equatable {
    public static let margin = 10
    static let markerWidth = 4
    static let gap = 2
    /// Width of the image-mass bar.
    public static let imageMassWidth = 48

    public let tokenCount: Int
    /// Side of one cell in pixels: `max(1, min(maxCellSize, maxMatrixSize / tokenCount))`.
    public let cellSize: Int
    /// Whether token labels are drawn (cells of at least `AttentionHeatmap.minLabelledCellSize` pixels and
    /// labels given); otherwise every `tickStep`-th token gets its index.
    public let showsLabels: Bool
    /// Index tick spacing when labels are not shown: the smallest of 1, 2, 5, 10, 20, 50, ... whose span
    /// is at least 16 pixels.
    public let tickStep: Int
    /// The top-left corner of cell (0, 0).
    public let matrixOrigin: Point
    public let hasImageMass: Bool
    /// The colour scale of the data cells.
    public let scale: ColourScale
    /// The 256 x 10 ramp legend; column k shows ramp colour k.
    public let legendRect: Rect
    public let width: Int
    public let height: Int
    let labels: [String]
    let labelExtent: Int

    /// The top of the marker key line (red: hallucinated object, blue: summary token) under the legend.
    let keyY: Int

    init(tokenCount n: Int, labels: [String], hasImageMass: Bool, title: String, scale: ColourScale,
         maxMatrixSize: Int, maxCellSize: Int, keyEntries: [(text: String, colour: Colour)]) {
        tokenCount = n
        self.scale = scale
        self.hasImageMass = hasImageMass
        let cell = max(1, min(maxCellSize, maxMatrixSize / n))
        cellSize = cell
        showsLabels = !labels.isEmpty && cell >= AttentionHeatmap.minLabelledCellSize
        self.labels = labels.map { $0.truncated(to: AttentionHeatmap.maxLabelCharacters) }
        var step = 1
        let steps = [1, 2, 5]
        var k = 0, decade = 1
        while true {
            step = steps[k] * decade
            if step * cell >= 16 { break }
            k += 1
            if k == steps.count { k = 0; decade *= 10 }
        }
        tickStep = step
        let longest = showsLabels ? (self.labels.map(\.count).max() ?? 1) : String(n - 1).count
        labelExtent = BitmapFont.width(of: String(repeating: "x", count: max(1, longest)))
        let m = Self.margin, g = Self.gap, mw = Self.markerWidth
        let titleHeight = title.isEmpty ? 0 : BitmapFont.lineHeight * 2 + 6
        matrixOrigin = Point(x: m + labelExtent + g + mw + g, y: m + titleHeight + labelExtent + g + mw + g)
        let side = n * cell
        let legendY = matrixOrigin.y + side + (hasImageMass ? 16 : 10)
        legendRect = Rect(x: matrixOrigin.x, y: legendY, width: 256, height: 10)
        let barRight = hasImageMass ? matrixOrigin.x + side + 8 + Self.imageMassWidth : matrixOrigin.x + side
        let legendCaptionWidth = BitmapFont.width(of: Self.legendCaption(scale))
        keyY = legendRect.maxY + 3 + BitmapFont.lineHeight + 6
        let keyWidth = keyEntries.reduce(0) { $0 + 12 + BitmapFont.width(of: $1.text) + 16 }
        width = max(barRight, legendRect.maxX + 8 + legendCaptionWidth, legendRect.x + keyWidth,
                    m + BitmapFont.width(of: title, scale: 2)) + m
        height = (keyEntries.isEmpty ? legendRect.maxY + 3 + BitmapFont.lineHeight : keyY + 8) + m
    }

    /// The pixels of cell (row, col): `cellSize` square at `matrixOrigin + (col, row) * cellSize`.
    public func cellRect(row: Int, col: Int) -> Rect {
        Rect(x: matrixOrigin.x + col * cellSize, y: matrixOrigin.y + row * cellSize, width: cellSize, height: cellSize)
    }

    /// The whole image-mass bar of a row (track), right of the matrix; `imageMassFillWidth` pixels from its
    /// left are painted in `imageMassColour`, the rest in `AttentionHeatmap.Style.track`.
    public func imageMassRect(row: Int) -> Rect {
        Rect(x: matrixOrigin.x + tokenCount * cellSize + 8, y: matrixOrigin.y + row * cellSize,
             width: Self.imageMassWidth, height: cellSize)
    }

    /// `round(clamp(mass, 0, 1) * imageMassWidth)`.
    public func imageMassFillWidth(_ mass: Float) -> Int {
        Int((min(max(mass, 0), 1) * Float(Self.imageMassWidth)).rounded())
    }

    /// Ramp colour `round(clamp(mass, 0, 1) * 255)`: the bar's colour encodes the mass too.
    public func imageMassColour(_ mass: Float) -> Colour {
        ColourRamp.colours[Int((min(max(mass, 0), 1) * 255).rounded())]
    }

    /// The red/blue strip left of a row.
    public func rowMarkerRect(row: Int) -> Rect {
        Rect(x: matrixOrigin.x - Self.gap - Self.markerWidth, y: matrixOrigin.y + row * cellSize,
             width: Self.markerWidth, height: cellSize)
    }

    /// The red/blue strip above a column.
    public func columnMarkerRect(col: Int) -> Rect {
        Rect(x: matrixOrigin.x + col * cellSize, y: matrixOrigin.y - Self.gap - Self.markerWidth,
             width: cellSize, height: Self.markerWidth)
    }

    /// The text drawn beside row/column `token`, if any.
    public func labelText(token: Int) -> String? {
        if showsLabels { return labels[token] }
        return token % tickStep == 0 ? String(token) : nil
    }

    func rowLabelOrigin(token: Int, text: String) -> Point {
        let right = matrixOrigin.x - 2 * Self.gap - Self.markerWidth
        let centre = matrixOrigin.y + token * cellSize + cellSize / 2
        return Point(x: right - BitmapFont.width(of: text), y: centre - BitmapFont.glyphHeight / 2)
    }

    func columnLabelOrigin(token: Int, text: String) -> Point {
        let bottom = matrixOrigin.y - 2 * Self.gap - Self.markerWidth
        let centre = matrixOrigin.x + token * cellSize + cellSize / 2
        return Point(x: centre - BitmapFont.glyphHeight / 2, y: bottom - BitmapFont.width(of: text))
    }

    var imageMassCaptionOrigin: Point {
        Point(x: matrixOrigin.x + tokenCount * cellSize + 8, y: matrixOrigin.y + tokenCount * cellSize + 4)
    }

    var legendMaximumText: String { formatNumber(Double(scale.maximum)) }
    var legendCaption: String { Self.legendCaption(scale) }

    static func legendCaption(_ scale: ColourScale) -> String {
        scale.gamma == 1 ? "attention" : "attention (gamma \(formatNumber(Double(scale.gamma))))"
    }
}

/// A short decimal for axis ticks and legends: up to 4 significant digits, no trailing zeros.
func formatNumber(_ value: Double) -> String {
    if value == 0 || !value.isFinite { return value == 0 ? "0" : String(value) }
    let magnitude = abs(value)
    if magnitude >= 1e6 || magnitude < 1e-4 { return String(format: "%.3g", value) }
    let decimals = max(0, 3 - Int(floor(log10(magnitude))))
    var s = String(format: "%.\(decimals)f", value)
    if s.contains(".") {
        while s.hasSuffix("0") { s.removeLast() }
        if s.hasSuffix(".") { s.removeLast() }
    }
    return s == "-0" ? "0" : s
}
