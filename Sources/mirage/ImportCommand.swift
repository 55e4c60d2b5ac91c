import ArgumentParser
import Foundation
import MirageCLISupport
import MirageData
import MirageMetrics
import MirageRunner
import MirageStore

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Store a caption file or a POPE answer file as a run, and score it.",
        discussion: """
        The file becomes one run in the store (see `mirage runs`), labelled with the model and decoder you \
        name, scored item by item (CHAIR or POPE), and its metrics are printed. Every item is committed on \
        its own: an interrupted import resumes when you run the same command again. Importing the same \
        content again is detected by its SHA-256 and names the existing run instead of storing a copy.

        Examples:
          mirage import captions greedy.jsonl --model llava-1.5 --decoder greedy
          mirage import captions out.json --caption-key text --model mine \\
              --decoder opera --decoder-param num_beams=5 --max-new-tokens 512
          mirage import pope answers.jsonl --questions coco_pope_random.json \\
              --parser opera --model llava-1.5 --decoder greedy
        """,
        subcommands: [Captions.self, Pope.self])

    /// What the run is called: model, decoder, labels and the protocol fields a file cannot tell.
    struct RunOptions: ParsableArguments {
        @Option(help: "Model name (e.g. llava-1.5).") var model: String
        @Option(help: "Model architecture, when known (e.g. llava).") var architecture: String = ""
        @Option(help: "Decoder name (e.g. greedy, beam5, opera).") var decoder: String
        @Option(name: .customLong("decoder-param"), help: ArgumentHelp(
            "A decoder parameter as key=value; repeat for several (recorded with the decoder).", valueName: "key=value"))
        var decoderParams: [String] = []
        @Option(help: "A unique label for the run (usable wherever a run id is).") var label: String?
        @Option(name: .customLong("protocol-name"), help: "A name for the protocol, shown instead of its hash.")
        var protocolName: String?
        @Option(help: "The prompt the outputs were generated with (part of the protocol).") var prompt: String?
        @Option(name: .customLong("max-new-tokens"), help: "The generation limit used (part of the protocol).")
        var maxNewTokens: Int?
        @Option(help: "The generation seed, when there was one.") var seed: Int64?

        func validate() throws {
            for p in decoderParams where !p.contains("=") {
                throw ValidationError("--decoder-param takes key=value, got '\(p)'")
            }
            if let label, Int64(label) != nil { throw ValidationError("a label cannot be a number (numbers are run ids)") }
        }

        var decoderSpec: DecoderSpec {
            var params: [String: String] = [:]
            for p in decoderParams {
                let parts = p.split(separator: "=", maxSplits: 1)
                params[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
            return DecoderSpec(name: decoder, parameters: params)
        }

        /// - Parameter expectedItems: the items a complete run has (POPE: the question file's questions); default:
        ///   the file's records.
        func newRun(_ p: EvalProtocol, sourceHash: String, sourcePath: String, expectedItems: Int? = nil) -> NewRun {
            NewRun(evalProtocol: p, protocolName: protocolName,
                   model: ModelSpec(name: model, architecture: architecture), decoder: decoderSpec, seed: seed,
                   label: label, sourceHash: sourceHash, sourcePath: sourcePath, expectedItems: expectedItems,
                   mirageVersion: MirageVersion.string, gitRevision: Provenance.gitRevision)
        }
    }

    struct Captions: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import captions (JSON Lines or a JSON list) and score them with CHAIR.",
            discussion: """
            Each record needs a COCO image id and a caption (keys --image-id-key, --caption-key), as OPERA's \
            chair_eval.py writes them. Every record is one item, duplicates included (the reference scores \
            every line). CHAIR's data come from the data store (`mirage data list`) unless named with the \
            options below.

            Examples:
              mirage import captions greedy.jsonl --model llava-1.5 \\
                  --decoder greedy --label llava-greedy
              mirage import captions caps.json --image-id-key id \\
                  --caption-key text --model m --decoder beam5 \\
                  --max-new-tokens 64 --truncate-incomplete
            """)

        @OptionGroup var database: DatabaseOptions
        @Argument(help: ArgumentHelp("The caption file.", valueName: "file")) var file: String
        @OptionGroup var runOptions: RunOptions
        @Option(name: .long, help: "Key holding the COCO image id in each record.") var imageIdKey = "image_id"
        @Option(name: .long, help: "Key holding the caption text in each record.") var captionKey = "caption"
        @Flag(name: .long, help: "Cut each caption after its last \".\" (OPERA's 64-token protocol).")
        var truncateIncomplete = false
        @Flag(name: .long, help: "Score captions of images without ground truth against no objects, as the reference does.")
        var allowUnknownImages = false
        @OptionGroup var chairData: ChairDataOptions
        @Option(name: .long, help: ArgumentHelp(
            "Prebuilt CHAIR ground truth (coco2014_gt_objects.json; default: the data store).", valueName: "file"))
        var groundTruth: String?

        func run() throws {
            let url = URL(fileURLWithPath: file)
            let captions = try ChairCaptionFile.read(url, imageIdKey: imageIdKey, captionKey: captionKey)
            let scorer = try chairData.resources(groundTruth: groundTruth).scorer(
                options: ChairOptions(truncateIncomplete: truncateIncomplete, allowUnknownImages: allowUnknownImages))
            let importer = CaptionImport(captions: captions, scorer: scorer, fileSHA256: try SHA256.hex(ofFile: url),
                                         keys: (imageIdKey, captionKey))
            let store = try database.open(create: true)
            let outcome = try importer.run(store: store, prompt: runOptions.prompt, maxNewTokens: runOptions.maxNewTokens) {
                runOptions.newRun($0, sourceHash: $1, sourcePath: url.path)
            }
            report(outcome, store: store)
        }
    }

    struct Pope: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import POPE answers (JSON Lines with an answer per line) and score them.",
            discussion: """
            Answers are paired with the question file by question_id when every answer has one, else by \
            order (--align to force either). The parser turns free text into yes/no:
              opera   OPERA's pope_eval.py: "no" if a word is No/not/no/NO or ends in n't, else "yes"
              pope    RUCAIBox/POPE evaluate.py: first sentence only; "no" if it has No/not/no
              strict  the first word must be yes or no; anything else is "unknown" (counted wrong)
            The question file's split (random/popular/adversarial) is recognised from its SHA-256 for the \
            published files; --split names it otherwise. The split is part of the run's identity: the same \
            answers imported under two splits are two runs.

            An answer file that covers only some of the questions is stored as a partial run (expected items = \
            the question file's questions): `mirage runs list` marks it, and `mirage compare` refuses it beside \
            complete runs unless --allow-partial.

            Examples:
              mirage import pope answers.jsonl \\
                  --questions coco_pope_random.json --parser opera \\
                  --model llava-1.5 --decoder greedy
              mirage import pope out.jsonl --answer-key text --questions q.json \\
                  --align order --split popular --parser strict \\
                  --model m --decoder beam5
            """)

        @OptionGroup var database: DatabaseOptions
        @Argument(help: ArgumentHelp("The answer file (JSON Lines).", valueName: "file")) var file: String
        @Option(help: ArgumentHelp("The POPE question file the answers belong to.", valueName: "file")) var questions: String
        @Option(help: "Answer parser: opera, pope or strict.") var parser: POPEAnswerParser = .opera
        @Option(help: "How answers meet questions: auto, order or question-id.") var align: PopeAnswerFile.Alignment = .auto
        @Option(name: .long, help: "Key holding the answer text.") var answerKey = "answer"
        @Option(name: .long, help: "Key holding the question id.") var questionIdKey = "question_id"
        @Option(help: "The split, when the question file is not a published one (random, popular, adversarial).")
        var split: POPESplit?
        @OptionGroup var runOptions: RunOptions

        func run() throws {
            let answersURL = URL(fileURLWithPath: file)
            let questionFile = try POPEQuestionReader.load(URL(fileURLWithPath: questions))
            let answers = try PopeAnswerFile.read(answersURL, answerKey: answerKey, questionIDKey: questionIdKey)
            let pairs = try answers.align(with: questionFile, align)
            let detected = questionFile.variant.known.first?.split
            if let split, let detected, split != detected {
                throw ValidationError("\(questions) is the published \(questionFile.variant.description) question file, "
                    + "whose split is \(detected.rawValue), not \(split.rawValue); leave --split out (or name the file of the "
                    + "\(split.rawValue) split)")
            }
            let splitName = (split ?? detected)?.rawValue
            let evalProtocol = EvalProtocol(
                task: .pope, imageIDs: questionFile.questions.compactMap(\.cocoImageID), promptTemplate: runOptions.prompt,
                maxNewTokens: runOptions.maxNewTokens, questionFile: URL(fileURLWithPath: questions).lastPathComponent,
                questionChecksum: questionFile.sha256, split: splitName, answerParser: parser.rawValue)
            let fileSHA = try SHA256.hex(ofFile: answersURL)
            let sourceHash = ContentHash.sha256Hex(Data(CanonicalJSON.string([
                "task": "pope", "file": fileSHA, "questions": questionFile.sha256, "parser": parser.rawValue,
                "answer_key": answerKey, "question_id_key": questionIdKey,
                "align": answers.resolved(align).rawValue,
                "split": splitName ?? "",
            ]).utf8))
            let items = pairs.enumerated().map { i, pair in
                NewItem(key: String(i), ordinal: i, imageID: pair.0.cocoImageID, questionID: pair.0.questionID,
                        prompt: pair.0.text, outputText: pair.1.text)
            }
            var labels: [Int: POPELabel] = [:]
            for q in questionFile.questions { labels[q.questionID] = q.label }
            let store = try database.open(create: true)
            let newRun = runOptions.newRun(evalProtocol, sourceHash: sourceHash, sourcePath: answersURL.path,
                                           expectedItems: questionFile.questions.count)
            let outcome = try runImport(store: store, newRun: newRun,
                                        items: items, scorer: PopeItemScorer(parser: parser, labels: labels))
            report(outcome, store: store)
        }
    }
}

extension POPEAnswerParser: ExpressibleByArgument {}
extension POPESplit: ExpressibleByArgument {}
extension PopeAnswerFile.Alignment: ExpressibleByArgument {}

/// A caption file ready to be stored and scored with CHAIR.
struct CaptionImport {
    var captions: ChairCaptionFile
    var scorer: ChairScorer
    var fileSHA256: String
    var keys: (imageID: String, caption: String)

    /// - Parameter makeRun: the run to create for (protocol, source hash).
    func run(store: any RunRepository, prompt: String?, maxNewTokens: Int?, quiet: Bool = false,
             makeRun: (EvalProtocol, String) -> NewRun) throws -> RunImporter.Outcome {
        // Unknown images are reported, with their line, before anything is stored.
        if !scorer.options.allowUnknownImages {
            for (i, c) in captions.captions.enumerated() where scorer.groundTruth.objects(for: c.imageId) == nil {
                throw captions.locate(ChairError.unknownImage(imageId: c.imageId, captionIndex: i))
            }
        }
        let vocabulary = ChairItemScorer.vocabularyChecksum(scorer.vocabulary)
        let truth = ChairItemScorer.groundTruthChecksum(scorer.groundTruth)
        var evalProtocol = EvalProtocol(task: .chair, imageIDs: captions.captions.map(\.imageId),
                                        promptTemplate: prompt, maxNewTokens: maxNewTokens,
                                        vocabularyChecksum: vocabulary, groundTruthChecksum: truth)
        if scorer.options.truncateIncomplete { evalProtocol.answerParser = "truncate-incomplete" }
        let sourceHash = ContentHash.sha256Hex(Data(CanonicalJSON.string([
            "task": "chair", "file": fileSHA256, "image_id_key": keys.imageID, "caption_key": keys.caption,
            "truncate_incomplete": String(scorer.options.truncateIncomplete),
            "allow_unknown_images": String(scorer.options.allowUnknownImages),
            "vocabulary": vocabulary, "ground_truth": truth,
        ]).utf8))
        let items = captions.captions.enumerated().map { i, c in
            NewItem(key: String(i), ordinal: i, imageID: c.imageId, prompt: prompt, outputText: c.caption)
        }
        return try runImport(store: store, newRun: makeRun(evalProtocol, sourceHash), items: items,
                             scorer: ChairItemScorer(scorer: scorer), quiet: quiet)
    }
}

/// Imports with progress on standard error, naming a run that already holds this content.
func runImport(store: any RunRepository, newRun: NewRun, items: [NewItem], scorer: any ItemScoring,
               quiet: Bool = false) throws -> RunImporter.Outcome {
    if let hash = newRun.sourceHash, let existing = try store.run(sourceHash: hash), !quiet {
        let what = "run \(existing.id)\(existing.label.map { " (\($0))" } ?? ""): \(existing.model.name) \(existing.decoder.display)"
        if existing.status == .complete {
            note("This content was already imported as \(what). Nothing to do; `mirage runs delete \(existing.id)` removes it.")
        } else {
            note("Resuming the interrupted import of \(what).")
        }
    }
    var lastShown = Date.distantPast
    let isTerminal = isatty(STDERR_FILENO) != 0
    return try RunImporter(store: store).importRun(newRun, items: items, scorer: scorer) { done, total in
        guard isTerminal, !quiet, Date().timeIntervalSince(lastShown) > 0.2 || done == total else { return }
        lastShown = Date()
        FileHandle.standardError.write(Data("\r  \(done)/\(total) items\(done == total ? "\n" : "")".utf8))
    }
}

func note(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Prints what an import stored and its headline metrics.
func report(_ outcome: RunImporter.Outcome, store: any RunRepository) {
    let r = outcome.run, m = outcome.metrics
    if let expected = r.expectedItems, let stored = try? store.recordedItemKeys(run: r.id).count, stored < expected {
        note("warning: run \(r.id) is partial: \(stored) of \(expected) items (\(expected - stored) missing). Its metrics cover "
             + "the stored items only; `mirage compare` refuses it beside complete runs unless --allow-partial.")
    }
    if !outcome.wasComplete {
        print("Stored run \(r.id)\(r.label.map { " (\($0))" } ?? ""): \(r.model.name) \(r.decoder.display), "
              + "\(Int(m["items"] ?? 0)) items, protocol \(r.protocolRecord.display), in \(store.location).")
    } else {
        print("Run \(r.id)\(r.label.map { " (\($0))" } ?? ""): \(r.model.name) \(r.decoder.display), protocol \(r.protocolRecord.display).")
    }
    switch r.task {
    case .chair:
        print("CHAIRs     : \(percent(m["chair_s"]))\nCHAIRi     : \(percent(m["chair_i"]))\n"
              + "Recall     : \(percent(m["recall"]))\nLen        : \(percent(m["len"]))")
    case .pope:
        print("Accuracy   : \(percent(m["accuracy"]))\nPrecision  : \(percent(m["precision"]))\n"
              + "Recall     : \(percent(m["recall"]))\nF1         : \(percent(m["f1"]))\nYes ratio  : \(percent(m["yes_ratio"]))"
              + ((m["unknown"] ?? 0) > 0 ? "\nUnknown    : \(Int(m["unknown"]!))" : ""))
    }
}
