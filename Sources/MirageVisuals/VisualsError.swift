/// Why a picture or report could not be made. Every case says what to do about it.
public enum VisualsError: Error, CustomStringConvertible, Equatable {
    case invalidImageSize(width: Int, height: Int)
    case sampleCountMismatch(expected: Int, actual: Int)
    case emptyHeatmap
    case heatmapTooLarge(tokens: Int, limit: Int)
    case heatmapValueCount(tokens: Int, expected: Int, actual: Int)
    case heatmapLabelCount(tokens: Int, actual: Int)
    case heatmapImageMassCount(tokens: Int, actual: Int)
    case nonFiniteValue(what: String, index: Int)
    case tokenIndexOutOfRange(what: String, index: Int, tokens: Int)
    case invalidScale(String)
    case emptyPlot
    case plotPointNotFinite(series: String, index: Int)
    case spanOutOfRange(item: String, start: Int, end: Int, length: Int)
    case tableRowWidth(table: String, row: Int, expected: Int, actual: Int)

    public var description: String {
        switch self {
        case let .invalidImageSize(w, h):
            return "cannot make a \(w)x\(h) image: width and height must be between 1 and \(PNGEncoder.maxSide) pixels"
        case let .sampleCountMismatch(expected, actual):
            return "the raster has \(actual) samples but its size needs \(expected): pass width * height * channels samples"
        case .emptyHeatmap:
            return "the attention heatmap has no tokens: pass at least one response token"
        case let .heatmapTooLarge(tokens, limit):
            return "the attention heatmap has \(tokens) tokens, more than the \(limit) it can draw: pass a window of the response (a range of tokens) instead"
        case let .heatmapValueCount(tokens, expected, actual):
            return "the attention matrix for \(tokens) tokens needs \(expected) values (\(tokens)x\(tokens), row-major, row = query token), but \(actual) were given"
        case let .heatmapLabelCount(tokens, actual):
            return "the heatmap has \(tokens) tokens but \(actual) labels: pass one label per token (or none)"
        case let .heatmapImageMassCount(tokens, actual):
            return "the heatmap has \(tokens) tokens but \(actual) image-mass values: pass one per token (or none)"
        case let .nonFiniteValue(what, index):
            return "\(what) \(index) is not a finite number: check the recorded attention for NaN or infinity"
        case let .tokenIndexOutOfRange(what, index, tokens):
            return "\(what) names token \(index), but the heatmap has tokens 0..<\(tokens)"
        case let .invalidScale(detail):
            return "invalid colour scale: \(detail)"
        case .emptyPlot:
            return "the line plot has no points: pass at least one series with at least one (x, y) point"
        case let .plotPointNotFinite(series, index):
            return "point \(index) of series \"\(series)\" is not finite: drop NaN or infinite values before plotting"
        case let .spanOutOfRange(item, start, end, length):
            return "highlight \(start)..<\(end) of item \"\(item)\" lies outside its caption of \(length) characters (Unicode scalars): compute offsets on the same caption text"
        case let .tableRowWidth(table, row, expected, actual):
            return "row \(row) of table \"\(table)\" has \(actual) cells but the table has \(expected) columns"
        }
    }
}
