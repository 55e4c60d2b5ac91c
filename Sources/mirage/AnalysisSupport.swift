import ArgumentParser
import Foundation
import MirageAnalysis
import MirageCLISupport
import MirageRunner
import MirageText

extension SummaryTokenDetector.Rule: ExpressibleByArgument {}

/// The summary-token detector's parameters, shared by `attention`, `analyze overtrust` and `report`.
struct DetectorOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Columns competing for the maximum: the last N response tokens (default: the whole response, as OPERA's code).", valueName: "N"))
    var window: Int?
    @Option(help: "σ, OPERA's scale_factor.") var scale: Float = 50
    @Option(help: "r: a location is a summary token once it has won more than r steps (OPERA: 15).") var threshold = 15
    @Option(help: "Ignore locations before this response index (OPERA never rolls back to the first 10).")
    var minimumLocation = 10
    @Option(help: "history: count wins over the whole response (OPERA's code); consecutive: only an unbroken run (the paper's wording).")
    var rule: SummaryTokenDetector.Rule = .historyCount
    @Flag(help: "Keep column scores in float32 (OPERA's code stores them as float16, which saturates to +inf).")
    var float32Scores = false

    func detector() throws -> SummaryTokenDetector {
        do {
            return try SummaryTokenDetector(window: window, scale: scale, threshold: threshold,
                                            minimumLocation: minimumLocation, rule: rule, fp16Scores: !float32Scores)
        } catch let error as AnalysisError {
            throw ValidationError(error.description)
        }
    }
}

/// `--nltk-data`: where Punkt's English parameters are (CHAIR's word tokenizer splits the same sentences).
struct PunktOptions: ParsableArguments {
    @Option(help: ArgumentHelp("NLTK data folder with punkt_tab/english (default: the data store; `mirage data fetch punkt`).", valueName: "dir"))
    var nltkData: String?

    func aligner() throws -> CaptionAligner {
        let folder = try ChairResources(nltkData: nltkData, threads: 1)
            .nltkComponent(["punkt_tab/english", "tokenizers/punkt_tab/english"], id: "punkt", flag: "--nltk-data DIR")
        return CaptionAligner(tokenizer: WordTokenizer(punkt: try PunktParameters(directory: folder)))
    }
}

/// `mirage run --record-attention`: the runner calls the recorder after every decoded item.
extension AttentionRecorder: RunItemObserver {}
