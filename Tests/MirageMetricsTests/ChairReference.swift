import Foundation
import Testing
import MirageMetrics
import MirageTestSupport
import MirageText

/// One caption as the reference CHAIR (OPERA's chair.py with NLTK 3.8.1) analysed and scored it,
/// from `../shared/data/chair/reference/<log>.jsonl`.
struct ReferenceCaption: Decodable {
    struct Metrics: Decodable {
        var CHAIRs: Int
        var CHAIRi: Double
        var Recall: Double
    }
    var image_id: Int
    var caption: String
    var tokens: [String]
    var tags: [String]
    var lemmas: [String]
    var words: [String]
    var generated: [String]
    var hallucinated: [String]
    var gt: [String]
    var metrics: Metrics
}

struct ReferenceOverall: Decodable {
    struct Metrics: Decodable {
        var CHAIRs: Double
        var CHAIRi: Double
        var Recall: Double
        var Len: Double
    }
    var overall_metrics: Metrics
}

/// The twelve OPERA logs with reference output.
enum ChairReference {
    static let logNames: [String] = ["instructblip", "llava-1.5", "minigpt4", "shikra"].flatMap { model in
        ["greedy", "beam5", "ours"].map { "\(model)-\($0)" }
    }

    static var isAvailable: Bool {
        SharedData.has("chair/synonyms.txt", "chair/coco2014_gt_objects.json")
            && logNames.allSatisfy { SharedData.has("chair/reference/\($0).jsonl", "chair/opera-logs/\($0).jsonl") }
    }

    static let missingMessage: Comment =
        "skipped: CHAIR reference data (../shared/data/chair: synonyms, ground truth, opera-logs, reference) not found"

    static func load(_ name: String) throws -> (captions: [ReferenceCaption], overall: ReferenceOverall.Metrics) {
        let text = try String(contentsOf: SharedData.url("chair/reference/\(name).jsonl"), encoding: .utf8)
        let lines = text.split(separator: "\n").filter { !$0.isEmpty }
        let decoder = JSONDecoder()
        let captions = try lines.dropLast().map { try decoder.decode(ReferenceCaption.self, from: Data($0.utf8)) }
        let overall = try decoder.decode(ReferenceOverall.self, from: Data(lines.last!.utf8))
        return (captions, overall.overall_metrics)
    }

    /// The OPERA log itself (what a user scores).
    static func log(_ name: String) throws -> [ChairCaption] {
        struct Line: Decodable { var image_id: Int; var caption: String }
        let text = try String(contentsOf: SharedData.url("chair/opera-logs/\(name).jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").filter { !$0.isEmpty }.map {
            let line = try JSONDecoder().decode(Line.self, from: Data($0.utf8))
            return ChairCaption(imageId: line.image_id, caption: line.caption)
        }
    }

    static func vocabulary() throws -> ChairVocabulary {
        try ChairVocabulary(contentsOf: SharedData.url("chair/synonyms.txt"))
    }

    static let groundTruth: Result<ChairGroundTruth, Error> = Result {
        try ChairGroundTruth(prebuiltJSON: SharedData.url("chair/coco2014_gt_objects.json"))
    }
}

/// Replays the reference's tokens, tags and lemmas: isolates CHAIR's rules from the NLP pipeline.
struct ReplayAnalyzer: CaptionAnalyzing {
    let analyses: [String: TextAnalysis]
    init(_ captions: [ReferenceCaption]) {
        var map: [String: TextAnalysis] = [:]
        for c in captions {
            map[c.caption] = TextAnalysis(tokens: c.tokens, tags: c.tags, lemmas: c.lemmas)
        }
        analyses = map
    }
    func analyze(_ caption: String) -> TextAnalysis {
        guard let analysis = analyses[caption] else {
            fatalError("ReplayAnalyzer has no reference analysis for caption: \(caption.prefix(60))")
        }
        return analysis
    }
}

/// Analyses hand-written captions: lower-cases, splits on spaces, and lemmatises through a given table
/// (identity for words not in it). Tags are all "NN".
struct TableAnalyzer: CaptionAnalyzing {
    var lemmas: [String: String] = [:]
    func analyze(_ caption: String) -> TextAnalysis {
        let tokens = caption.lowercased().split(separator: " ").map(String.init)
        return TextAnalysis(tokens: tokens, tags: tokens.map { _ in "NN" },
                            lemmas: tokens.map { lemmas[$0] ?? $0 })
    }
}
