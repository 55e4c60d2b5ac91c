import Foundation

/// One self-contained HTML page (inline CSS, images as `data:` URLs, one tiny inline script, nothing
/// fetched from the network; a Content-Security-Policy forbids it): a run report with settings, metric
/// tables, a comparison against a baseline, figures, and per-item captions with highlighted object words
/// and attention heatmaps. Every piece of text is HTML-escaped. See docs/visuals.md.
public struct HTMLReport: Sendable {
    /// A table of strings.
    public struct Table: Sendable {
        public var caption: String
        public var headers: [String]
        public var rows: [[String]]
        /// Rows drawn highlighted (e.g. the baseline of a comparison).
        public var highlightedRows: Set<Int>

        public init(caption: String = "", headers: [String], rows: [[String]], highlightedRows: Set<Int> = []) {
            self.caption = caption
            self.headers = headers
            self.rows = rows
            self.highlightedRows = highlightedRows
        }
    }

    /// The settings of one run, in the order given.
    public struct Settings: Sendable {
        public var name: String
        public var entries: [(key: String, value: String)]

        public init(name: String, entries: [(key: String, value: String)]) {
            self.name = name
            self.entries = entries
        }
    }

    /// A picture with a caption (e.g. a line plot).
    public struct Figure: Sendable {
        public var title: String
        public var png: [UInt8]
        public var caption: String

        public init(title: String, png: [UInt8], caption: String = "") {
            self.title = title
            self.png = png
            self.caption = caption
        }
    }

    /// What a highlighted caption span is.
    public enum SpanKind: String, Sendable, CaseIterable {
        /// An object word not in the image (CHAIR hallucination).
        case hallucinated
        /// An object word that is in the image.
        case correct
    }

    /// A highlighted range of a caption, in Unicode scalar offsets (Python `str` indices).
    public struct Span: Sendable, Equatable {
        public var range: Range<Int>
        public var kind: SpanKind

        public init(range: Range<Int>, kind: SpanKind) {
            self.range = range
            self.kind = kind
        }

        /// A span from a range of `String.Index` in `text`.
        public init(_ range: Range<String.Index>, in text: String, kind: SpanKind) {
            let scalars = text.unicodeScalars
            let start = scalars.distance(from: scalars.startIndex, to: range.lowerBound)
            self.init(range: start..<(start + scalars.distance(from: range.lowerBound, to: range.upperBound)), kind: kind)
        }

        /// Spans for every whole-word, case-insensitive occurrence of each word (letters and digits
        /// count as word characters), e.g. the object words CHAIR found in a caption.
        public static func occurrences(of words: [String], in text: String, kind: SpanKind) -> [Span] {
            let scalars = Array(text.unicodeScalars)
            let lowered = scalars.map { Character($0).lowercased() }
            func isWord(_ k: Int) -> Bool {
                k >= 0 && k < scalars.count && (CharacterSet.alphanumerics.contains(scalars[k]))
            }
            var spans: [Span] = []
            for word in Set(words.map { $0.lowercased() }) where !word.isEmpty {
                let needle = word.unicodeScalars.map { Character($0).lowercased() }
                guard needle.count <= lowered.count else { continue }
                for start in 0...(lowered.count - needle.count)
                where lowered[start..<(start + needle.count)].elementsEqual(needle)
                    && !isWord(start - 1) && !isWord(start + needle.count) {
                    spans.append(Span(range: start..<(start + needle.count), kind: kind))
                }
            }
            return spans.sorted { $0.range.lowerBound < $1.range.lowerBound }
        }
    }

    /// One evaluated item: its caption with highlights and, optionally, its attention heatmap.
    public struct Item: Sendable {
        public var id: String
        public var caption: String
        public var spans: [Span]
        /// Extra lines shown under the caption (e.g. "CHAIR_i 0.25, hallucinated: dog").
        public var notes: [String]
        public var heatmapPNG: [UInt8]?

        public init(id: String, caption: String, spans: [Span] = [], notes: [String] = [], heatmapPNG: [UInt8]? = nil) {
            self.id = id
            self.caption = caption
            self.spans = spans
            self.notes = notes
            self.heatmapPNG = heatmapPNG
        }
    }

    public var title: String
    /// A line under the title (e.g. the store path and the date).
    public var subtitle: String
    public var settings: [Settings]
    public var metrics: [Table]
    /// Runs against a baseline; its `highlightedRows` are the baseline rows.
    public var comparison: Table?
    public var figures: [Figure]
    public var items: [Item]

    public init(title: String, subtitle: String = "", settings: [Settings] = [], metrics: [Table] = [],
                comparison: Table? = nil, figures: [Figure] = [], items: [Item] = []) {
        self.title = title
        self.subtitle = subtitle
        self.settings = settings
        self.metrics = metrics
        self.comparison = comparison
        self.figures = figures
        self.items = items
    }

    /// Sets `data-rendered` on `<body>` to the number of images that decoded (naturalWidth > 0) once the
    /// page has loaded, so a headless browser can check the pictures.
    static let renderedScript =
        "window.addEventListener('load',function(){var n=0;for(var i=0;i<document.images.length;i++)"
        + "{if(document.images[i].naturalWidth>0)n++;}document.body.setAttribute('data-rendered',String(n));});"

    static let css = """
    body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:24px;color:#222;background:#fff;max-width:1400px}
    h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.25em;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
    h3{font-size:1.05em;margin:16px 0 6px}.subtitle{color:#666;margin:0 0 16px}
    table{border-collapse:collapse;margin:6px 0 14px;font-variant-numeric:tabular-nums}
    caption{text-align:left;font-weight:600;padding:4px 0}
    th,td{border:1px solid #ccc;padding:4px 10px;text-align:left;vertical-align:top}th{background:#f3f3f3}td.num{text-align:right}
    tr.highlight td{background:#fff4c2;font-weight:600}
    dl.settings{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:2px 14px;margin:6px 0 14px}
    dl.settings dt{font-weight:600}dl.settings dd{margin:0;overflow-wrap:anywhere;font-family:ui-monospace,'DejaVu Sans Mono',monospace}
    .item{border:1px solid #ddd;border-radius:6px;padding:10px 14px;margin:12px 0}
    .caption{line-height:1.6;white-space:pre-wrap}
    mark.hallucinated{background:#ffc9c9;color:#8a0000;font-weight:600;padding:0 1px}
    mark.correct{background:#c9f0d0;color:#0a5a1c;padding:0 1px}
    .notes{color:#555;font-size:.92em;margin:4px 0}
    img{display:block;margin:8px 0;image-rendering:pixelated;max-width:100%}
    figure{margin:10px 0}figcaption{color:#555;font-size:.92em}
    .legend{font-size:.9em;color:#555}
    """

    /// The page.
    public func render() throws -> String {
        var h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        h += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
        h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        h += "<title>\(escape(title))</title>\n<style>\n\(Self.css)\n</style>\n"
        h += "<script>\(Self.renderedScript)</script>\n</head>\n<body>\n"
        h += "<h1>\(escape(title))</h1>\n"
        if !subtitle.isEmpty { h += "<p class=\"subtitle\">\(escape(subtitle))</p>\n" }
        if !settings.isEmpty {
            h += "<section id=\"settings\">\n<h2>Settings</h2>\n"
            for run in settings {
                h += "<h3>\(escape(run.name))</h3>\n<dl class=\"settings\">\n"
                for entry in run.entries { h += "<dt>\(escape(entry.key))</dt><dd>\(escape(entry.value))</dd>\n" }
                h += "</dl>\n"
            }
            h += "</section>\n"
        }
        if !metrics.isEmpty {
            h += "<section id=\"metrics\">\n<h2>Metrics</h2>\n"
            for table in metrics { h += try tableHTML(table, cssClass: "metrics") }
            h += "</section>\n"
        }
        if let comparison {
            h += "<section id=\"comparison\">\n<h2>Comparison</h2>\n"
            h += try tableHTML(comparison, cssClass: "comparison")
            h += "</section>\n"
        }
        if !figures.isEmpty {
            h += "<section id=\"figures\">\n<h2>Figures</h2>\n"
            for figure in figures {
                h += "<figure>\n<h3>\(escape(figure.title))</h3>\n"
                h += "<img class=\"figure\" alt=\"\(escape(figure.title))\" src=\"\(dataURL(figure.png))\">\n"
                if !figure.caption.isEmpty { h += "<figcaption>\(escape(figure.caption))</figcaption>\n" }
                h += "</figure>\n"
            }
            h += "</section>\n"
        }
        if !items.isEmpty {
            h += "<section id=\"items\">\n<h2>Items</h2>\n"
            h += "<p class=\"legend\"><mark class=\"hallucinated\">hallucinated object</mark> <mark class=\"correct\">correct object</mark></p>\n"
            for item in items {
                h += "<div class=\"item\" id=\"item-\(anchor(item.id))\">\n<h3>\(escape(item.id))</h3>\n"
                h += "<p class=\"caption\">\(try captionHTML(item))</p>\n"
                for note in item.notes { h += "<p class=\"notes\">\(escape(note))</p>\n" }
                if let png = item.heatmapPNG {
                    h += "<img class=\"heatmap\" alt=\"attention heatmap of \(escape(item.id))\" src=\"\(dataURL(png))\">\n"
                }
                h += "</div>\n"
            }
            h += "</section>\n"
        }
        h += "</body>\n</html>\n"
        return h
    }

    func tableHTML(_ table: Table, cssClass: String) throws -> String {
        for (k, row) in table.rows.enumerated() where row.count != table.headers.count {
            throw VisualsError.tableRowWidth(table: table.caption, row: k, expected: table.headers.count, actual: row.count)
        }
        var h = "<table class=\"\(cssClass)\">\n"
        if !table.caption.isEmpty { h += "<caption>\(escape(table.caption))</caption>\n" }
        h += "<thead><tr>" + table.headers.map { "<th>\(escape($0))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
        for (k, row) in table.rows.enumerated() {
            h += table.highlightedRows.contains(k) ? "<tr class=\"highlight\">" : "<tr>"
            h += row.map { isNumeric($0) ? "<td class=\"num\">\(escape($0))</td>" : "<td>\(escape($0))</td>" }.joined()
            h += "</tr>\n"
        }
        return h + "</tbody>\n</table>\n"
    }

    /// The caption with `<mark>` around its spans. Overlapping spans: the one starting first wins, the
    /// later one is cut to what remains.
    func captionHTML(_ item: Item) throws -> String {
        let scalars = Array(item.caption.unicodeScalars)
        for span in item.spans where span.range.lowerBound < 0 || span.range.upperBound > scalars.count {
            throw VisualsError.spanOutOfRange(item: item.id, start: span.range.lowerBound, end: span.range.upperBound,
                                              length: scalars.count)
        }
        func text(_ range: Range<Int>) -> String {
            var s = String.UnicodeScalarView()
            s.append(contentsOf: scalars[range])
            return escape(String(s))
        }
        var h = "", position = 0
        for span in item.spans.sorted(by: { $0.range.lowerBound < $1.range.lowerBound }) {
            let start = max(span.range.lowerBound, position)
            guard start < span.range.upperBound else { continue }
            h += text(position..<start)
            h += "<mark class=\"\(span.kind.rawValue)\">\(text(start..<span.range.upperBound))</mark>"
            position = span.range.upperBound
        }
        return h + text(position..<scalars.count)
    }

    /// Numbers (decimal, optionally signed, with a trailing % and/or a "± spread") are right-aligned.
    func isNumeric(_ cell: String) -> Bool {
        var text = cell.trimmingCharacters(in: .whitespaces)
        if text.hasSuffix("%") { text.removeLast() }
        let parts = text.split(separator: "±", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return false }
        return parts.allSatisfy { part in
            let number = part.trimmingCharacters(in: .whitespaces)
            guard let first = number.first, first.isNumber || "+-.".contains(first) else { return false }
            return number.allSatisfy { $0.isASCII && ($0.isNumber || "+-.eE".contains($0)) } && Double(number) != nil
        }
    }

    /// An element id from free text: ASCII letters, digits, `-` and `_` kept, every other run of characters
    /// becomes one `-`.
    func anchor(_ text: String) -> String {
        var out = ""
        for c in text {
            if c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "_") {
                out.append(c)
            } else if !out.hasSuffix("-") {
                out.append("-")
            }
        }
        return out
    }

    func dataURL(_ png: [UInt8]) -> String { "data:image/png;base64," + Data(png).base64EncodedString() }
}

/// `text` safe inside HTML elements and quoted attributes.
public func escapeHTML(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for c in text.unicodeScalars {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.unicodeScalars.append(c)
        }
    }
    return out
}

private func escape(_ text: String) -> String { escapeHTML(text) }
