import Foundation
import Testing
import MirageTestSupport
@testable import MirageAnalysis
import MirageEngine
import MirageImaging
import MirageStore
import MirageVisuals

/// `mirage run --record-attention` on a tiny synthetic LLaVA over two real COCO images, then `mirage attention`
/// (PNG decoded and checked cell by cell against the stored values), `mirage analyze overtrust` and
/// `mirage report`.
@Suite struct OvertrustEndToEndTests {
    static let wordnet = SharedData.wordnet
    static var available: Bool { SharedData.chairRunAvailable }
    static let missing = SharedData.chairRunMissingMessage

    func mirage(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
        let result = try runProcess(binary, arguments)
        #expect(result.status == 0, "mirage \(arguments.joined(separator: " ")) failed: \(result.stderr)",
                sourceLocation: sourceLocation)
        return result.stdout
    }

    @Test(.enabled(if: OvertrustEndToEndTests.available, OvertrustEndToEndTests.missing))
    func recordRenderAnalyseReport() throws {
        let dir = TestTemporary.root.appendingPathComponent("mirage-overtrust-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        let ids = [192, 241]
        try mirage(["models", "synth", "--arch", "llava-llama", "--size", "tiny", "--seed", "3", "--out", path("tiny")])
        try Data("""
            task: chair
            prompt: "Please describe this image in detail."
            template: llava15
            max_new_tokens: 20
            images: {ids: [\(ids.map(String.init).joined(separator: ", "))]}
            """.utf8).write(to: URL(fileURLWithPath: path("chair.yaml")))
        let db = path("runs.sqlite")
        try mirage(["run", "--model", path("tiny"), "--protocol", path("chair.yaml"), "--decoder", "greedy",
                    "--images", SharedData.url("coco/images").path,
                    "--ground-truth", SharedData.url("chair/coco2014_gt_objects.json").path,
                    "--synonyms", SharedData.url("chair/synonyms.txt").path, "--nltk-data", SharedData.url("nltk").path,
                    "--wordnet", Self.wordnet, "--threads", "1", "--db", db, "--record-attention"])
        let store = try RunStores.open(db, create: false)
        let keys = try store.itemsWithAttention(run: 1)
        #expect(keys == ids.map(String.init))
        #expect(try mirage(["attention", "1", "--list", "--db", db]) == keys.joined(separator: "\n") + "\n")

        let missing = try runProcess(try #require(BuiltProducts.mirage), ["attention", "1", "999", "--db", db])
        #expect(missing.status != 0 && missing.stderr.contains("no recorded attention for item '999'"))

        // The heatmap's pixels encode the stored values: every lower-triangle cell's colour is the ramp colour of
        // its re-normalised value, and each row's side bar is filled to its image share.
        let key = keys[0]
        try mirage(["attention", "1", key, "--out", path("a.png"), "--db", db, "--nltk-data", SharedData.url("nltk").path])
        let map = try AttentionMap(try #require(try store.attention(run: 1, itemKey: key)))
        #expect(map.count >= 2)
        let png = try ImageDecoder.load(path: path("a.png"))
        let title = "\(try store.run(id: 1).details.label ?? "run 1") item \(key)"      // the command's title
        let layout = try OvertrustFigures.heatmap(map, summary: [], hallucinated: [], title: title).layout()
        #expect(png.width >= layout.matrixOrigin.x + map.count * layout.cellSize)
        let maximum = (0..<map.count).flatMap { i in (0...i).map { map.value(row: i, column: $0) / map.rowTotal[i] } }.max()!
        for i in 0..<map.count {
            for j in 0...i {
                let r = layout.cellRect(row: i, col: j)
                let (red, green, blue) = png[r.x + r.width / 2, r.y + r.height / 2]
                let index = try #require(ColourRamp.index(of: Colour(red, green, blue)), "cell (\(i), \(j)) is not a ramp colour")
                let expected = Int((min(max(map.value(row: i, column: j) / map.rowTotal[i] / maximum, 0), 1) * 255).rounded())
                #expect(abs(index - expected) <= 1, "cell (\(i), \(j))")
            }
            let bar = layout.imageMassRect(row: i)
            let share = map.imageMass[i] / map.rowTotal[i]
            let fill = Int((min(max(share, 0), 1) * Float(HeatmapLayout.imageMassWidth)).rounded())
            if fill > 0 {
                let (red, green, blue) = png[bar.x + fill - 1, bar.y + bar.height / 2]
                #expect(Colour(red, green, blue) == layout.imageMassColour(share), "image bar of row \(i)")
            }
            if fill < bar.width {
                let (red, green, blue) = png[bar.x + fill, bar.y + bar.height / 2]
                #expect(Colour(red, green, blue) == AttentionHeatmap.Style.track, "image bar track of row \(i)")
            }
        }

        let analysis = try mirage(["analyze", "overtrust", "1", "--format", "json", "--db", db,
                                   "--nltk-data", SharedData.url("nltk").path, "--out-dir", path("ot")])
        let json = try JSONSerialization.jsonObject(with: Data(analysis.utf8)) as? [[String: Any]]
        let report = try #require(json?.first?["report"] as? [String: Any])
        #expect(report["responses"] as? Int == 2)
        #expect(FileManager.default.fileExists(atPath: path("ot/overtrust.png")))

        let summary = try mirage(["report", "1", "--out", path("r.html"), "--db", db, "--nltk-data", SharedData.url("nltk").path])
        #expect(summary.contains("2 heatmaps, 1 figure"))
        let html = try String(contentsOfFile: path("r.html"), encoding: .utf8)
        #expect(html.contains("<table") && html.contains("CHAIR_S"))
        #expect(html.components(separatedBy: "<img").count - 1 == 3)             // 2 heatmaps + the over-trust plot
    }
}
