import ArgumentParser
import Foundation
import MirageCLISupport
import MirageData
import MirageMetrics
import MirageStore

struct Reproduce: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reproduce a paper's table from its released outputs.",
        discussion: """
        Each subcommand imports a paper's released outputs as runs in the store, scores them with Mirage's \
        metrics and prints the paper's table with Mirage's numbers beside the published ones.

        Examples:
          mirage reproduce opera
          mirage reproduce opera --from ~/OPERA/log/chair_eval_results
        """,
        subcommands: [Opera.self])

    struct Opera: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rescore OPERA's released captions with CHAIR and print the paper's table beside Mirage's numbers.",
            discussion: """
            OPERA (Huang et al., CVPR 2024) released the captions behind its CHAIR table: four 7B models \
            (InstructBLIP, MiniGPT-4, LLaVA-1.5, Shikra) x greedy, beam search (5 beams) and OPERA, 500 COCO \
            val2014 images each, max_new_tokens 512. This command imports the 12 logs as runs (resumable, \
            each stored once), scores them with CHAIR and prints CHAIR_S / CHAIR_I for every cell: Mirage's \
            number, the number the reference chair.py gives on the same log, and the paper's.

            The logs come from the data store (source opera-logs; downloaded from github.com/shikiw/OPERA on \
            first use and checked against pinned SHA-256 values) or from --from DIR, a folder holding them as \
            <model>-<decoder>.jsonl or in the upstream layout log/chair_eval_results/<model>/<decoder>.jsonl.

            Examples:
              mirage reproduce opera
              mirage reproduce opera --from ../shared/data/chair/opera-logs --format md
              mirage compare --protocol opera-chair512 \\
                  --baseline opera-llava-1.5-greedy
            """)

        enum Format: String, ExpressibleByArgument, CaseIterable { case table, md }

        @OptionGroup var database: DatabaseOptions
        @Option(help: ArgumentHelp("A folder holding the 12 logs (instead of the data store).", valueName: "dir"))
        var from: String?
        @Option(help: "table or md.") var format: Format = .table
        @OptionGroup var chairData: ChairDataOptions
        @Option(name: .long, help: ArgumentHelp(
            "Prebuilt CHAIR ground truth (coco2014_gt_objects.json; default: the data store).", valueName: "file"))
        var groundTruth: String?

        func run() async throws {
            if let from { try InputFile.checkDirectory(from, option: "--from") }
            if let groundTruth { try InputFile.check(groundTruth, option: "--ground-truth") }
            let files = try await locateLogs()
            let scorer = try chairData.resources(groundTruth: groundTruth).scorer(options: ChairOptions())
            let store = try database.open(create: true)
            var cells: [String: (chairS: Double, chairI: Double, run: Int64)] = [:]
            for model in OperaPaper.models {
                for decoder in OperaLogs.decoders {
                    let name = OperaLogs.fileName(model: model.id, decoder: decoder)
                    let url = files[name]!
                    let captions = try ChairCaptionFile.read(url)
                    let importer = CaptionImport(captions: captions, scorer: scorer,
                                                 fileSHA256: OperaLogs.sha256[name]!, keys: ("image_id", "caption"))
                    let outcome = try importer.run(store: store, prompt: OperaPaper.prompt,
                                                   maxNewTokens: OperaPaper.maxNewTokens, quiet: true) { p, hash in
                        NewRun(evalProtocol: p, protocolName: model.protocolName,
                               model: ModelSpec(name: model.id, architecture: model.architecture),
                               decoder: OperaPaper.decoder(decoder), label: "opera-\(model.id)-\(decoder)",
                               sourceHash: hash, sourcePath: url.path, mirageVersion: MirageVersion.string,
                               gitRevision: Provenance.gitRevision)
                    }
                    let m = outcome.metrics
                    cells["\(model.id)-\(decoder)"] = (m["chair_s"] ?? .nan, m["chair_i"] ?? .nan, outcome.run.id)
                    note("  \(model.display) \(OperaPaper.decoderTitles[decoder]!): run \(outcome.run.id)"
                         + (outcome.wasComplete ? " (already stored)" : ", \(outcome.recorded) captions scored"))
                }
            }
            print(OperaPaper.render(cells, format: format, database: store.location), terminator: "")
        }

        /// The 12 logs: from --from (verified against the pinned SHA-256), else the data store (fetched once).
        func locateLogs() async throws -> [String: URL] {
            var out: [String: URL] = [:]
            let source = DataSource.operaLogs
            if let from {
                let folder = URL(fileURLWithPath: from)
                for file in source.files {
                    guard let url = file.importPaths.lazy.map({ folder.appendingPathComponent($0) })
                        .first(where: { FileManager.default.fileExists(atPath: $0.path) }) else {
                        throw ReproduceError.missingLog(file.name, folder: from)
                    }
                    let actual = try SHA256.hex(ofFile: url)
                    guard actual == file.sha256 else { throw ReproduceError.changedLog(url.path, expected: file.sha256!, actual: actual) }
                    out[file.name] = url
                }
                return out
            }
            let dataStore = DataStore()
            if (try? dataStore.locate(source.id)) == nil {
                note("Downloading OPERA's 12 caption logs from github.com/shikiw/OPERA into \(dataStore.root.path) ...")
                try await dataStore.fetch(source.id)
            }
            for file in source.files { out[file.name] = try dataStore.locate(source.id, file: file.name) }
            return out
        }
    }
}

enum ReproduceError: Error, CustomStringConvertible {
    case missingLog(String, folder: String)
    case changedLog(String, expected: String, actual: String)

    var description: String {
        switch self {
        case let .missingLog(name, folder):
            return "\(folder) has no \(name) (looked for <model>-<decoder>.jsonl and log/chair_eval_results/<model>/<decoder>.jsonl). "
                + "Point --from at the folder holding all 12 OPERA logs, or drop --from to download them."
        case let .changedLog(path, expected, actual):
            return "\(path) is not the released OPERA log (sha256 \(actual), expected \(expected)). This command reproduces "
                + "the released logs only; score other captions with `mirage import captions`."
        }
    }
}

/// The OPERA paper's CHAIR table (Huang et al., "OPERA: Alleviating Hallucination in Multi-Modal Large
/// Language Models via Over-Trust Penalty and Retrospection-Allocation", CVPR 2024, CHAIR with
/// max_new_tokens 512), and what OPERA's reference `chair.py` computes on the released logs.
enum OperaPaper {
    struct Model {
        var id: String, display: String, architecture: String, protocolName: String
    }

    /// The paper's column order. InstructBLIP's 500 images differ from the other three models' list.
    static let models = [
        Model(id: "instructblip", display: "InstructBLIP", architecture: "instructblip", protocolName: "opera-chair512-instructblip"),
        Model(id: "minigpt4", display: "MiniGPT-4", architecture: "minigpt4", protocolName: "opera-chair512"),
        Model(id: "llava-1.5", display: "LLaVA-1.5", architecture: "llava", protocolName: "opera-chair512"),
        Model(id: "shikra", display: "Shikra", architecture: "shikra", protocolName: "opera-chair512"),
    ]
    static let prompt = "Please describe this image in detail."
    static let maxNewTokens = 512
    static let decoderTitles = ["greedy": "Greedy", "beam5": "Beam search (5)", "ours": "OPERA"]

    /// The settings of OPERA's evaluation scripts (num_beams 5; OPERA σ=50, r=15, N_can=5, α=1).
    static func decoder(_ name: String) -> DecoderSpec {
        switch name {
        case "beam5": return DecoderSpec(name: "beam", parameters: ["num_beams": "5"])
        case "ours": return DecoderSpec(name: "opera", parameters: ["num_beams": "5", "scale_factor": "50", "threshold": "15",
                                                                     "num_attn_candidates": "5", "penalty_weights": "1"])
        default: return DecoderSpec(name: name)
        }
    }

    /// CHAIR_S / CHAIR_I in percent as OPERA's chair.py prints them on the released logs (../shared/data/README.md).
    static let reference: [String: (Double, Double)] = [
        "llava-1.5-greedy": (44.8, 12.7), "llava-1.5-beam5": (48.8, 13.8), "llava-1.5-ours": (44.6, 12.7),
        "instructblip-greedy": (58.8, 23.7), "instructblip-beam5": (55.6, 15.8), "instructblip-ours": (46.4, 14.2),
        "minigpt4-greedy": (31.6, 9.8), "minigpt4-beam5": (30.2, 9.4), "minigpt4-ours": (25.8, 9.4),
        "shikra-greedy": (55.8, 15.4), "shikra-beam5": (50.2, 13.3), "shikra-ours": (36.0, 12.0),
    ]

    /// The paper's table (CVPR 2024, CHAIR, max_new_tokens 512). The small gaps to `reference` are the
    /// paper's: the released logs are reruns.
    static let paper: [String: (Double, Double)] = [
        "llava-1.5-greedy": (45.0, 14.7), "llava-1.5-beam5": (48.8, 13.9), "llava-1.5-ours": (44.6, 12.8),
        "instructblip-greedy": (58.8, 23.7), "instructblip-beam5": (55.6, 15.8), "instructblip-ours": (46.4, 14.2),
        "minigpt4-greedy": (31.8, 9.9), "minigpt4-beam5": (30.6, 9.5), "minigpt4-ours": (26.2, 9.5),
        "shikra-greedy": (55.8, 15.4), "shikra-beam5": (50.4, 13.3), "shikra-ours": (36.2, 12.1),
    ]

    static func render(_ cells: [String: (chairS: Double, chairI: Double, run: Int64)], format: Reproduce.Opera.Format,
                       database: String) -> String {
        func pair(_ s: Double, _ i: Double) -> String { String(format: "%.1f / %.1f", s, i) }
        func mirage(_ key: String) -> String {
            guard let c = cells[key] else { return "n/a" }
            return "\(percent(c.chairS)) / \(percent(c.chairI))"
        }
        var mismatches: [String] = []
        for (key, ref) in reference where mirage(key) != pair(ref.0, ref.1) { mismatches.append(key) }
        let header = ["Model"] + OperaLogs.decoders.flatMap { d in
            let t = decoderTitles[d]!
            return ["\(t) (Mirage)", "ref.", "paper"]
        }
        var rows: [[String]] = []
        for model in models {
            var row = [model.display]
            for d in OperaLogs.decoders {
                let key = "\(model.id)-\(d)"
                row += [mirage(key), pair(reference[key]!.0, reference[key]!.1), pair(paper[key]!.0, paper[key]!.1)]
            }
            rows.append(row)
        }
        var out = "OPERA (Huang et al., CVPR 2024), CHAIR on the released captions: CHAIR_S / CHAIR_I (%), 500 COCO val2014 images each, max_new_tokens 512.\n"
            + "Mirage = this scorer; ref. = OPERA's chair.py on the same logs; paper = the published table.\n\n"
        switch format {
        case .table:
            out += alignedTable([header] + rows)
        case .md:
            out += "| " + header.joined(separator: " | ") + " |\n|---|" + String(repeating: "---:|", count: header.count - 1) + "\n"
            out += rows.map { "| " + $0.joined(separator: " | ") + " |" }.joined(separator: "\n") + "\n"
        }
        out += "\n" + (mismatches.isEmpty
            ? "All 12 cells equal the reference implementation. The paper's figures differ slightly because the released logs are reruns.\n"
            : "Differs from the reference in: \(mismatches.sorted().joined(separator: ", ")).\n")
        let ids = cells.values.map(\.run).sorted()
        out += "Stored as runs \(ids.first.map(String.init) ?? "")–\(ids.last.map(String.init) ?? "") in \(database) (labels opera-<model>-<decoder>); "
            + "e.g. `mirage compare --protocol opera-chair512 --baseline opera-llava-1.5-greedy`.\n"
        return out
    }
}
