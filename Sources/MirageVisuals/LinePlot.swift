import Foundation

/// A line plot of named series of (x, y) points with axes, ticks, grid, axis labels and a legend, drawn
/// as a PNG; e.g. CHAIR_S and CHAIR_I of sub-sentences by the number of summary tokens before them.
public struct LinePlot: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var points: [(x: Double, y: Double)]
        /// nil picks the next colour of `LinePlot.palette`.
        public var colour: Colour?

        public init(name: String, points: [(x: Double, y: Double)], colour: Colour? = nil) {
            self.name = name
            self.points = points
            self.colour = colour
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    public var width: Int = 720
    public var height: Int = 480
    /// Axis ranges; nil extends the data's range to round tick values.
    public var xRange: ClosedRange<Double>?
    public var yRange: ClosedRange<Double>?
    /// When the y range comes from the data, stretch it to include 0 (rates read better from 0).
    public var yIncludesZero: Bool = true

    /// Default series colours, in order.
    public static let palette: [Colour] = [
        Colour(31, 100, 180), Colour(215, 90, 20), Colour(40, 150, 60),
        Colour(190, 30, 45), Colour(120, 70, 170), Colour(100, 100, 100),
    ]
    /// Side of the square marker drawn centred on each point.
    public static let markerSize = 7
    public static let lineThickness = 2
    static let margin = 10
    static let gridColour = Colour(225, 225, 225)
    static let axisColour = Colour(60, 60, 60)

    public init(title: String = "", xLabel: String = "", yLabel: String = "", series: [Series]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
    }

    /// Checks the data and computes axes and where every marker goes.
    public func layout() throws -> PlotLayout {
        var xs: [Double] = [], ys: [Double] = []
        for s in series {
            for (k, p) in s.points.enumerated() {
                guard p.x.isFinite, p.y.isFinite else { throw VisualsError.plotPointNotFinite(series: s.name, index: k) }
                xs.append(p.x)
                ys.append(p.y)
            }
        }
        guard !xs.isEmpty else { throw VisualsError.emptyPlot }
        let xAxis = PlotAxis(range: xRange, dataMin: xs.min()!, dataMax: xs.max()!, includeZero: false)
        let yAxis = PlotAxis(range: yRange, dataMin: ys.min()!, dataMax: ys.max()!, includeZero: yIncludesZero)
        let m = Self.margin
        let yTickWidth = yAxis.ticks.map { BitmapFont.width(of: formatNumber($0)) }.max() ?? 0
        let legendWidth = 8 + 14 + (series.map { BitmapFont.width(of: $0.name) }.max() ?? 0) + m
        let titleHeight = title.isEmpty ? 0 : BitmapFont.lineHeight * 2 + 8
        let left = m + (yLabel.isEmpty ? 0 : BitmapFont.glyphHeight + 8) + yTickWidth + 8
        let top = m + titleHeight + Self.markerSize
        let bottom = height - m - (xLabel.isEmpty ? 0 : BitmapFont.lineHeight + 6) - BitmapFont.lineHeight - 8
        let right = width - legendWidth
        let plotRect = Rect(x: left, y: top, width: max(2, right - left), height: max(2, bottom - top))
        var layout = PlotLayout(plotRect: plotRect, xAxis: xAxis, yAxis: yAxis, markers: [], legendEntries: [])
        layout.markers = series.map { s in s.points.map { layout.pixel(x: $0.x, y: $0.y) } }
        layout.legendEntries = series.indices.map { k in
            Rect(x: plotRect.maxX + 8, y: plotRect.y + k * (BitmapFont.lineHeight + 6), width: 10, height: 10)
        }
        return layout
    }

    /// The colour series `index` is drawn in.
    public func colour(ofSeries index: Int) -> Colour {
        series[index].colour ?? Self.palette[index % Self.palette.count]
    }

    public func render() throws -> (canvas: Canvas, layout: PlotLayout) {
        let layout = try layout()
        var canvas = Canvas(width: width, height: height)
        let r = layout.plotRect
        let text = AttentionHeatmap.Style.text
        // Grid and tick labels.
        for tick in layout.xAxis.ticks {
            let px = layout.pixel(x: tick, y: layout.yAxis.minimum).x
            canvas.fill(Rect(x: px, y: r.y, width: 1, height: r.height), Self.gridColour)
            canvas.fill(Rect(x: px, y: r.maxY, width: 1, height: 4), Self.axisColour)
            let label = formatNumber(tick)
            canvas.drawText(label, at: Point(x: px - BitmapFont.width(of: label) / 2, y: r.maxY + 6), text)
        }
        for tick in layout.yAxis.ticks {
            let py = layout.pixel(x: layout.xAxis.minimum, y: tick).y
            canvas.fill(Rect(x: r.x, y: py, width: r.width, height: 1), Self.gridColour)
            canvas.fill(Rect(x: r.x - 4, y: py, width: 4, height: 1), Self.axisColour)
            let label = formatNumber(tick)
            canvas.drawText(label, at: Point(x: r.x - 6 - BitmapFont.width(of: label), y: py - 3), text)
        }
        canvas.stroke(Rect(x: r.x - 1, y: r.y - 1, width: r.width + 2, height: r.height + 2), Self.axisColour)
        // Axis labels and title.
        if !xLabel.isEmpty {
            let w = BitmapFont.width(of: xLabel)
            canvas.drawText(xLabel, at: Point(x: r.x + (r.width - w) / 2, y: r.maxY + 6 + BitmapFont.lineHeight + 6), text)
        }
        if !yLabel.isEmpty {
            let h = BitmapFont.width(of: yLabel)
            canvas.drawVerticalText(yLabel, at: Point(x: Self.margin, y: r.y + (r.height - h) / 2), text)
        }
        if !title.isEmpty {
            canvas.drawText(title, at: Point(x: Self.margin, y: Self.margin), text, scale: 2)
        }
        // Lines, then markers on top.
        for (k, markers) in layout.markers.enumerated() {
            for (a, b) in zip(markers, markers.dropFirst()) {
                canvas.drawLine(from: a, to: b, colour(ofSeries: k), thickness: Self.lineThickness)
            }
        }
        let half = Self.markerSize / 2
        for (k, markers) in layout.markers.enumerated() {
            for p in markers {
                canvas.fill(Rect(x: p.x - half, y: p.y - half, width: Self.markerSize, height: Self.markerSize), colour(ofSeries: k))
            }
        }
        // Legend right of the plot.
        for (k, swatch) in layout.legendEntries.enumerated() {
            canvas.fill(swatch, colour(ofSeries: k))
            canvas.drawText(series[k].name, at: Point(x: swatch.maxX + 4, y: swatch.y + 1), text)
        }
        return (canvas, layout)
    }

    public func png() throws -> (png: [UInt8], layout: PlotLayout) {
        let (canvas, layout) = try render()
        return (try canvas.png(), layout)
    }
}

/// One axis: its range and tick values.
public struct PlotAxis: Sendable, Equatable {
    public let minimum: Double
    public let maximum: Double
    public let ticks: [Double]

    /// A fixed range gets ticks inside it; a data range is widened to the nearest ticks. Tick spacing is
    /// the smallest of 1, 2, 2.5, 5 x 10^k that gives at most 7 intervals.
    init(range: ClosedRange<Double>?, dataMin: Double, dataMax: Double, includeZero: Bool) {
        var lo = range?.lowerBound ?? dataMin, hi = range?.upperBound ?? dataMax
        if range == nil, includeZero { lo = min(lo, 0); hi = max(hi, 0) }
        if hi - lo <= 0 {
            let pad = lo == 0 ? 1 : abs(lo) * 0.1
            lo -= pad
            hi += pad
        }
        let raw = (hi - lo) / 7
        let decade = pow(10, floor(log10(raw)))
        var step = decade * 10
        for f in [1, 2, 2.5, 5, 10] where f * decade >= raw * (1 - 1e-9) { step = f * decade; break }
        if range == nil {
            lo = floor(lo / step + 1e-9) * step
            hi = ceil(hi / step - 1e-9) * step
        }
        minimum = lo
        maximum = hi
        var ticks: [Double] = []
        var k = ceil(lo / step - 1e-9)
        while k * step <= hi + step * 1e-9 {
            ticks.append(abs(k * step) < step * 1e-9 ? 0 : k * step)
            k += 1
        }
        self.ticks = ticks
    }
}

/// Where a `LinePlot` puts things, in pixels of its PNG.
public struct PlotLayout: Sendable, Equatable {
    /// The data area; x maps onto columns `plotRect.x ... plotRect.maxX - 1`, y onto rows
    /// `plotRect.maxY - 1` (minimum) up to `plotRect.y` (maximum).
    public let plotRect: Rect
    public let xAxis: PlotAxis
    public let yAxis: PlotAxis
    /// Per series, the pixel centre of each point's marker.
    public internal(set) var markers: [[Point]]
    /// Per series, its colour swatch in the legend.
    public internal(set) var legendEntries: [Rect]

    /// The pixel of a data point: `x0 + round((x - xmin) / (xmax - xmin) * (w - 1))`,
    /// `y1 - round((y - ymin) / (ymax - ymin) * (h - 1))` with `y1 = plotRect.maxY - 1`.
    public func pixel(x: Double, y: Double) -> Point {
        let fx = (x - xAxis.minimum) / (xAxis.maximum - xAxis.minimum)
        let fy = (y - yAxis.minimum) / (yAxis.maximum - yAxis.minimum)
        return Point(x: plotRect.x + Int((fx * Double(plotRect.width - 1)).rounded()),
                     y: plotRect.maxY - 1 - Int((fy * Double(plotRect.height - 1)).rounded()))
    }
}
