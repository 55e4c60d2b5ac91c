import Foundation
import MirageEngine
import Testing
@testable import MirageVisuals

/// A report with everything: settings, a metrics table, a comparison with a baseline row, a figure, and
/// two items with heatmaps (items carry text that needs escaping).
func sampleReport(heatmaps: Int = 2) throws -> HTMLReport {
    var items: [HTMLReport.Item] = []
    for k in 0..<heatmaps {
        let n = 16
        let heatmap = AttentionHeatmap(tokenCount: n, values: AttentionHeatmapTests.attention(n, seed: UInt64(k)),
                                       labels: (0..<n).map { "t\($0)" }, imageMass: (0..<n).map { Float($0) / Float(n) },
                                       markedTokens: [5], highlightedColumns: [7], title: "item \(k)")
        let caption = "A dog & a <cat> sit on a \"bench\" near a surfboard."
        items.append(HTMLReport.Item(
            id: "COCO_val2014_\(k)", caption: caption,
            spans: HTMLReport.Span.occurrences(of: ["surfboard", "cat"], in: caption, kind: .hallucinated)
                + HTMLReport.Span.occurrences(of: ["dog", "bench"], in: caption, kind: .correct),
            notes: ["CHAIR_i 0.5 (2 of 4 objects hallucinated)"], heatmapPNG: try heatmap.png().png))
    }
    let plot = try LinePlotTests.plot.png().png
    return HTMLReport(
        title: "Run <opera-7b> & friends", subtitle: "store runs.sqlite",
        settings: [.init(name: "opera", entries: [("decoder", "opera"), ("beams", "5"), ("penalty", "1 < 2")])],
        metrics: [.init(caption: "CHAIR", headers: ["run", "CHAIR_S", "CHAIR_I"], rows: [["opera", "44.6", "12.8"]])],
        comparison: .init(caption: "vs greedy", headers: ["run", "CHAIR_S", "delta"],
                          rows: [["greedy", "51.2", ""], ["opera", "44.6", "-6.6"]], highlightedRows: [0]),
        figures: [.init(title: "CHAIR by summary tokens", png: plot)],
        items: items)
}

@Suite struct HTMLReportTests {
    @Test func pageIsSelfContainedAndEscaped() throws {
        let html = try sampleReport().render()
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(html.contains("<title>Run &lt;opera-7b&gt; &amp; friends</title>"))
        #expect(!html.contains("<opera-7b>"))
        #expect(html.contains("<dt>penalty</dt><dd>1 &lt; 2</dd>"))
        #expect(html.contains("<tr class=\"highlight\"><td>greedy</td><td class=\"num\">51.2</td><td></td></tr>"))
        #expect(html.contains("A <mark class=\"correct\">dog</mark> &amp; a &lt;<mark class=\"hallucinated\">cat</mark>&gt; sit on a &quot;<mark class=\"correct\">bench</mark>&quot; near a <mark class=\"hallucinated\">surfboard</mark>."))
        #expect(html.components(separatedBy: "src=\"data:image/png;base64,").count == 4)  // 2 heatmaps + 1 figure
        // Nothing from the network: no http(s) URLs, and a CSP that only allows inline code and data: images.
        #expect(!html.contains("http://") && !html.contains("https://") && !html.contains("src=\"//"))
        #expect(html.contains("default-src 'none'; img-src data:"))
        // The embedded PNG decodes to the heatmap.
        let start = html.range(of: "class=\"heatmap\"")!.upperBound
        let src = html[start...].range(of: "base64,")!.upperBound
        let end = html[src...].firstIndex(of: "\"")!
        let png = Data(base64Encoded: String(html[src..<end]))!
        #expect(try decodePNG([UInt8](png)).width > 100)
    }

    @Test func spansUseUnicodeScalarOffsetsAndOverlapsAreCut() throws {
        let caption = "Café: a dog, a dogs' bowl."
        let spans = HTMLReport.Span.occurrences(of: ["Dog"], in: caption, kind: .hallucinated)
        #expect(spans == [HTMLReport.Span(range: 8..<11, kind: .hallucinated)])  // not "dogs"
        let index = caption.range(of: "bowl")!
        #expect(HTMLReport.Span(index, in: caption, kind: .correct).range == 21..<25)
        let item = HTMLReport.Item(id: "x", caption: caption,
                                   spans: [.init(range: 6..<11, kind: .correct), .init(range: 8..<14, kind: .hallucinated)])
        let html = try HTMLReport(title: "t", items: [item]).captionHTML(item)
        #expect(html == "Café: <mark class=\"correct\">a dog</mark><mark class=\"hallucinated\">, a</mark> dogs&#39; bowl.")
        let bad = HTMLReport.Item(id: "y", caption: "abc", spans: [.init(range: 2..<9, kind: .correct)])
        #expect(throws: VisualsError.spanOutOfRange(item: "y", start: 2, end: 9, length: 3)) {
            try HTMLReport(title: "t", items: [bad]).render()
        }
        let report = HTMLReport(title: "t")
        #expect(report.anchor("opera · item 42/<x>") == "opera-item-42-x-")
        #expect(["12.8", "-6.6", "+1.5%", "3", "0.1 ± 0.02", ".5"].allSatisfy(report.isNumeric))
        #expect(!["", "greedy", "n/a", "-", "1e", "v1.2"].contains(where: report.isNumeric))
        let ragged = HTMLReport(title: "t", metrics: [.init(caption: "m", headers: ["a", "b"], rows: [["1"]])])
        #expect(throws: VisualsError.tableRowWidth(table: "m", row: 0, expected: 2, actual: 1)) { try ragged.render() }
    }
}
