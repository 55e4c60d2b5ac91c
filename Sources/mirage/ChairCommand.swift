import ArgumentParser
import Foundation
import MirageCLISupport
import MirageData
import MirageMetrics
import MirageText

/// `mirage chair`: score captions with CHAIR exactly as OPERA's chair.py does.
struct ChairCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chair",
        abstract: "Score image captions for object hallucination with CHAIR (as OPERA's chair.py).",
        discussion: """
        CHAIR (Rohrbach et al., 2018) finds the COCO objects a caption mentions and checks each against the \
        objects really in the image (instance annotations plus objects named in the human captions). \
        The text pipeline is NLTK 3.8.1's, reproduced exactly: word_tokenize(caption.lower()), the averaged \
        perceptron tagger, and the WordNet lemmatizer. Output lines and rounding match the reference:

          CHAIRs    : 44.6   % of captions with a hallucinated object
          CHAIRi    : 12.7   % of object mentions that are hallucinated
          Recall    : 79.2   % of ground-truth objects mentioned
          Len       : 92.7   mean tokens per caption (two-word objects merged)

        INPUT is JSON Lines, one {"image_id": <COCO id>, "caption": "..."} per line (what OPERA's \
        chair_eval.py writes), or a JSON list of such objects. Use --image-id-key/--caption-key for other \
        key names.

        DATA: the synonym list, Punkt parameters, POS tagger and WordNet come from the data store \
        (`mirage data fetch chair-synonyms punkt pos-tagger wordnet`), or from the folders you name. \
        Ground truth: --ground-truth FILE (prebuilt {"<image id>": [objects]} JSON), --coco-annotations DIR \
        (built from the COCO 2014 annotations and cached), or else the data store's chair-ground-truth \
        or coco-annotations-2014.

        EXAMPLES:
          Score an OPERA log with the data store's data:
            mirage chair --captions log/llava-1.5/ours.jsonl
          Full-precision metrics and per-caption objects as JSON:
            mirage chair --captions ours.jsonl --json
          Other key names, prebuilt ground truth:
            mirage chair --captions out.json --image-id-key question_id \\
                --caption-key text --ground-truth coco2014_gt_objects.json
          OPERA's 64-token protocol (drop an unfinished last sentence):
            mirage chair --captions short.jsonl --truncate-incomplete
          Hallucinated objects with token positions, per caption, to a file:
            mirage chair --captions ours.jsonl --details ours-details.json
        """)

    @Option(name: .long, help: ArgumentHelp("Captions to score: JSON Lines or a JSON list.", valueName: "file"))
    var captions: String

    @Option(name: .long, help: "Key holding the COCO image id in each record.")
    var imageIdKey = "image_id"

    @Option(name: .long, help: "Key holding the caption text in each record.")
    var captionKey = "caption"

    @Option(name: .long, help: ArgumentHelp(
        "Prebuilt ground truth JSON {\"<image id>\": [\"node word\", ...]} (e.g. coco2014_gt_objects.json).",
        valueName: "file"))
    var groundTruth: String?

    @Option(name: .long, help: ArgumentHelp(
        "Build the ground truth from COCO 2014 annotations in this folder (instances_/captions_{train,val}2014.json); cached after the first build.",
        valueName: "dir"))
    var cocoAnnotations: String?

    @Option(name: .long, help: ArgumentHelp("Cache folder for ground truth built from COCO annotations (default: the data store's cache).", valueName: "dir"))
    var cacheDir: String?

    @Flag(name: .long, help: "Cut each caption after its last \".\" (drops an unfinished last sentence; OPERA's 64-token protocol).")
    var truncateIncomplete = false

    @Flag(name: .long, help: "Score captions of images without ground truth against an empty object set, as the reference silently does, instead of failing.")
    var allowUnknownImages = false

    @Flag(name: .long, help: "Print full-precision metrics and per-caption detail as JSON instead of the reference's lines.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("Also write per-caption detail (objects, hallucinations with token positions) to this JSON file.", valueName: "file"))
    var details: String?

    @Flag(name: .long, help: "Print to standard error how long each stage took (reading captions, loading each resource, scoring).")
    var timings = false

    @OptionGroup var data: ChairDataOptions

    func validate() throws {
        if groundTruth != nil && cocoAnnotations != nil {
            throw ValidationError("pass either --ground-truth or --coco-annotations, not both")
        }
        if data.threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        do {
            if let groundTruth { try InputFile.check(groundTruth, option: "--ground-truth") }
            var clock = StageClock(enabled: timings)
            let file = try clock.time("captions") {
                try ChairCaptionFile.read(URL(fileURLWithPath: try InputFile.check(captions, option: "--captions")),
                                          imageIdKey: imageIdKey, captionKey: captionKey)
            }
            var resources = data.resources(groundTruth: groundTruth)
            resources.cocoAnnotations = cocoAnnotations
            resources.cacheDir = cacheDir
            let scorer = try resources.scorer(options: ChairOptions(truncateIncomplete: truncateIncomplete,
                                                                    allowUnknownImages: allowUnknownImages),
                                              clock: &clock)
            let run: ChairRunResult
            do {
                run = try clock.time("scoring \(file.captions.count) captions") { try scorer.score(file.captions) }
            } catch {
                throw file.locate(error)
            }
            clock.report()
            let report = ChairReport(file: captions, run: run)
            if json {
                print(String(decoding: try report.encoded(), as: UTF8.self))
            } else {
                print(run.metrics.referenceReport)
            }
            if let details {
                do {
                    try report.encoded().write(to: URL(fileURLWithPath: details))
                } catch {
                    throw ChairCommandError.cannotWrite(details, error.localizedDescription)
                }
            }
        } catch let error as ValidationError {
            throw error
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}

/// The JSON written by `--json` and `--details`: full-precision metrics and each caption's objects.
struct ChairReport: Encodable {
    struct Metrics: Encodable {
        var CHAIRs, CHAIRi, Recall, Len, Precision, F1: Double
        var captions, hallucinated_captions, mentions, hallucinated_mentions, distinct_mentions: Int
        var recalled_objects, ground_truth_objects, words: Int
    }
    struct Mention: Encodable {
        var word: String
        var node_word: String
        var token_index: Int
    }
    struct Caption: Encodable {
        var image_id: Int
        var caption: String
        var mentioned: [String]
        var hallucinated: [Mention]
        var ground_truth: [String]
        /// Tokens of the scored text; `token_index` points into this list.
        var tokens: [String]
        var words: [String]
        var CHAIRs: Int
        var CHAIRi, Recall, Precision, F1: Double
    }
    var file: String
    var overall_metrics: Metrics
    var captions: [Caption]

    init(file: String, run: ChairRunResult) {
        self.file = file
        let m = run.metrics, c = m.counts
        overall_metrics = Metrics(
            CHAIRs: m.chairS, CHAIRi: m.chairI, Recall: m.recall, Len: m.len, Precision: m.objectPrecision,
            F1: m.objectF1, captions: c.captions, hallucinated_captions: c.hallucinatedCaptions,
            mentions: c.mentions, hallucinated_mentions: c.hallucinatedMentions,
            distinct_mentions: c.distinctMentions, recalled_objects: c.recalledObjects,
            ground_truth_objects: c.groundTruthObjects, words: c.words)
        captions = run.captions.map { r in
            Caption(image_id: r.imageId, caption: r.scoredText, mentioned: r.generated,
                    hallucinated: r.hallucinated.map {
                        Mention(word: $0.word, node_word: $0.nodeWord, token_index: $0.tokenIndex)
                    },
                    ground_truth: r.groundTruth, tokens: r.analysis.tokens, words: r.words, CHAIRs: r.metrics.chairS,
                    CHAIRi: r.metrics.chairI, Recall: r.metrics.recall, Precision: r.metrics.precision,
                    F1: r.metrics.f1)
        }
    }

    func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return try encoder.encode(self)
    }
}
