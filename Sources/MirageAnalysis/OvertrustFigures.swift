import Foundation
import MirageVisuals

/// The pictures of the over-trust analysis, built on MirageVisuals.
public enum OvertrustFigures {
    /// The response × response heatmap of a map: OPERA's re-normalised window entries `W[i][j]` (row total
    /// over all keys = 1), the image span's share of each row as the side bar, `hallucinated` tokens marked and
    /// the detected summary-token columns highlighted.
    public static func heatmap(_ map: AttentionMap, summary: [SummaryToken], hallucinated: Set<Int>,
                               title: String) -> AttentionHeatmap {
        let n = map.count
        let imageMass = (0..<n).map { map.normalisedImageMass(row: $0) }
        return AttentionHeatmap(tokenCount: n, values: map.normalisedMatrix, labels: map.labels,
                                imageMass: imageMass.allSatisfy { $0 == 0 } ? [] : imageMass,
                                markedTokens: hallucinated, highlightedColumns: Set(summary.map(\.column)), title: title)
    }

    /// CHAIR_S and CHAIR_I (percent) of sub-sentences against the number of summary tokens before them, one
    /// pair of lines per run (groups without mentions have no CHAIR_I point).
    public static func plot(_ runs: [(name: String, report: OvertrustReport)]) -> LinePlot {
        var series: [LinePlot.Series] = []
        for (name, report) in runs {
            let prefix = runs.count > 1 ? name + " " : ""
            series.append(.init(name: prefix + "CHAIR_S", points: report.groups.compactMap { g in
                g.chairS.isNaN ? nil : (x: Double(g.summaryTokens), y: g.chairS * 100) }))
            series.append(.init(name: prefix + "CHAIR_I", points: report.groups.compactMap { g in
                g.chairI.isNaN ? nil : (x: Double(g.summaryTokens), y: g.chairI * 100) }))
        }
        return LinePlot(title: "CHAIR of sub-sentences by summary tokens before them",
                        xLabel: "summary tokens before the sub-sentence", yLabel: "CHAIR (%)", series: series)
    }
}
