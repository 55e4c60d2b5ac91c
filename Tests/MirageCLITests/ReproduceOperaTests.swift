import Foundation
import Testing
import MirageTestSupport

/// The reference figures table of ../shared/data/README.md: model → (greedy, beam5, OPERA) "CHAIR_S / CHAIR_I".
func referenceFigures() throws -> [String: [String]] {
    let readme = try String(contentsOf: SharedData.url("README.md"), encoding: .utf8)
    guard let start = readme.range(of: "Reference figures for the OPERA logs") else { return [:] }
    var out: [String: [String]] = [:]
    for line in readme[start.upperBound...].split(separator: "\n") where line.hasPrefix("| ") {
        let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        guard cells.count == 4, cells[1].contains("/") else { continue }
        out[cells[0]] = Array(cells[1...3])
    }
    return out
}

@Test(.enabled(if: SharedData.has("chair/opera-logs", "chair/synonyms.txt", "chair/coco2014_gt_objects.json", "nltk")
               && FileManager.default.fileExists(atPath: "/usr/share/wordnet/index.noun"),
               "skipped: needs ../shared/data (OPERA logs, CHAIR data, NLTK models) and WordNet (apt-get install wordnet-base)"))
func reproduceOperaPrintsTheReferenceFigures() throws {
    let scratch = try Scratch()
    defer { scratch.cleanup() }
    let arguments = ["reproduce", "opera", "--from", SharedData.url("chair/opera-logs").path,
                     "--synonyms", SharedData.url("chair/synonyms.txt").path,
                     "--nltk-data", SharedData.url("nltk").path,
                     "--ground-truth", SharedData.url("chair/coco2014_gt_objects.json").path,
                     "--db", scratch.path("runs.sqlite")]
    let output = try mirageOK(arguments)
    let expected = try referenceFigures()
    #expect(expected.count == 4, "could not read the reference table of ../shared/data/README.md")

    // Table rows: "<Model>  <greedy Mirage>  <ref>  <paper>  <beam Mirage>  <ref>  <paper>  <OPERA Mirage> ...".
    let rowNames = ["llava-1.5": "LLaVA-1.5", "instructblip": "InstructBLIP", "minigpt4": "MiniGPT-4", "shikra": "Shikra"]
    var cells = 0
    for (model, figures) in expected {
        let name = try #require(rowNames[model])
        let line = try #require(output.split(separator: "\n").first { $0.hasPrefix(name + " ") }, "no row for \(name)")
        let pairs = line.dropFirst(name.count).components(separatedBy: "  ").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        #expect(pairs.count == 9, "\(line)")
        guard pairs.count == 9 else { continue }
        for (i, figure) in figures.enumerated() {
            #expect(pairs[3 * i] == figure, "\(model) column \(i): Mirage \(pairs[3 * i]), reference \(figure)")
            cells += 1
        }
    }
    #expect(cells == 12)
    #expect(output.contains("All 12 cells equal the reference implementation."))

    // A second run finds every log already stored and prints the same table.
    let again = try mirage(arguments)
    #expect(again.status == 0)
    #expect(again.stdout == output)
    #expect(again.stderr.components(separatedBy: "already stored").count == 13)
}
