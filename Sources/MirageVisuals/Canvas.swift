/// An RGB raster to draw on: rows top to bottom, samples `R G B` interleaved. Drawing clips to the canvas.
public struct Canvas: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// `width * height * 3` samples.
    public private(set) var pixels: [UInt8]

    /// A canvas filled with `background`. Sizes below 1 pixel are raised to 1.
    public init(width: Int, height: Int, background: Colour = .white) {
        self.width = max(1, width)
        self.height = max(1, height)
        pixels = [UInt8](repeating: 0, count: self.width * self.height * 3)
        fill(Rect(x: 0, y: 0, width: self.width, height: self.height), background)
    }

    public var bounds: Rect { Rect(x: 0, y: 0, width: width, height: height) }

    /// The colour at column `x`, row `y`; setting outside the canvas does nothing.
    public subscript(x: Int, y: Int) -> Colour {
        get {
            precondition(x >= 0 && x < width && y >= 0 && y < height, "Canvas: (\(x), \(y)) outside \(width)x\(height)")
            let i = (y * width + x) * 3
            return Colour(pixels[i], pixels[i + 1], pixels[i + 2])
        }
        set {
            guard x >= 0, x < width, y >= 0, y < height else { return }
            let i = (y * width + x) * 3
            pixels[i] = newValue.red
            pixels[i + 1] = newValue.green
            pixels[i + 2] = newValue.blue
        }
    }

    /// Paints every pixel of `rect` (clipped).
    public mutating func fill(_ rect: Rect, _ colour: Colour) {
        let r = rect.intersection(bounds)
        guard !r.isEmpty else { return }
        let width = self.width
        pixels.withUnsafeMutableBufferPointer { px in
            for y in r.y..<r.maxY {
                var i = (y * width + r.x) * 3
                for _ in 0..<r.width {
                    px[i] = colour.red
                    px[i + 1] = colour.green
                    px[i + 2] = colour.blue
                    i += 3
                }
            }
        }
    }

    /// Paints a frame `thickness` pixels wide along the inside of `rect`.
    public mutating func stroke(_ rect: Rect, _ colour: Colour, thickness: Int = 1) {
        let t = max(1, min(thickness, rect.width, rect.height))
        fill(Rect(x: rect.x, y: rect.y, width: rect.width, height: t), colour)
        fill(Rect(x: rect.x, y: rect.maxY - t, width: rect.width, height: t), colour)
        fill(Rect(x: rect.x, y: rect.y, width: t, height: rect.height), colour)
        fill(Rect(x: rect.maxX - t, y: rect.y, width: t, height: rect.height), colour)
    }

    /// A straight line between two pixel centres (Bresenham), drawn with a square pen of `thickness` pixels.
    public mutating func drawLine(from a: Point, to b: Point, _ colour: Colour, thickness: Int = 1) {
        let t = max(1, thickness), half = (t - 1) / 2
        var x = a.x, y = a.y
        let dx = abs(b.x - a.x), dy = -abs(b.y - a.y)
        let sx = a.x < b.x ? 1 : -1, sy = a.y < b.y ? 1 : -1
        var error = dx + dy
        while true {
            fill(Rect(x: x - half, y: y - half, width: t, height: t), colour)
            if x == b.x && y == b.y { break }
            let e2 = 2 * error
            if e2 >= dy { error += dy; x += sx }
            if e2 <= dx { error += dx; y += sy }
        }
    }

    /// Draws `text` with the built-in font, its top-left corner at `origin`; each font pixel becomes a
    /// `scale` x `scale` square. Returns the width drawn.
    @discardableResult
    public mutating func drawText(_ text: String, at origin: Point, _ colour: Colour, scale: Int = 1) -> Int {
        let s = max(1, scale)
        var penX = origin.x
        for character in text {
            let glyph = BitmapFont.glyph(for: character)
            for (row, bits) in glyph.enumerated() where bits != 0 {
                for column in 0..<BitmapFont.glyphWidth where bits & (0x10 >> UInt8(column)) != 0 {
                    fill(Rect(x: penX + column * s, y: origin.y + row * s, width: s, height: s), colour)
                }
            }
            penX += BitmapFont.advance * s
        }
        return BitmapFont.width(of: text, scale: s)
    }

    /// Draws `text` rotated 90 degrees counter-clockwise (reading bottom to top), in the box whose top-left
    /// corner is `origin`: the box is `7 * scale` wide and `BitmapFont.width(of: text) ` tall, and the text
    /// starts at its bottom.
    public mutating func drawVerticalText(_ text: String, at origin: Point, _ colour: Colour, scale: Int = 1) {
        let s = max(1, scale)
        let length = BitmapFont.width(of: text, scale: s)
        var penY = origin.y + length  // bottom edge of the first character
        for character in text {
            let glyph = BitmapFont.glyph(for: character)
            for (row, bits) in glyph.enumerated() where bits != 0 {
                for column in 0..<BitmapFont.glyphWidth where bits & (0x10 >> UInt8(column)) != 0 {
                    // Glyph pixel (column, row) -> x = row, y = up from the pen by column.
                    fill(Rect(x: origin.x + row * s, y: penY - (column + 1) * s, width: s, height: s), colour)
                }
            }
            penY -= BitmapFont.advance * s
        }
    }

    /// The canvas as PNG bytes.
    public func png() throws -> [UInt8] {
        try PNGEncoder.encode(width: width, height: height, samples: pixels, format: .rgb)
    }
}

extension String {
    /// At most `limit` characters; longer text is cut and ends in `~`.
    func truncated(to limit: Int) -> String {
        guard count > limit else { return self }
        guard limit > 1 else { return String(prefix(max(0, limit))) }
        return String(prefix(limit - 1)) + "~"
    }
}
