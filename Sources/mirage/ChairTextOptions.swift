import ArgumentParser
import Foundation

/// Where CHAIR's text resources come from, for commands that run CHAIR through the runner (`run`, `demo`).
struct ChairTextOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("CHAIR synonym list (default: the data store's chair-synonyms).", valueName: "file"))
    var synonyms: String?

    @Option(name: .long, help: ArgumentHelp("NLTK data folder with punkt_tab/english/ and averaged_perceptron_tagger_eng/ (default: the data store).", valueName: "dir"))
    var nltkData: String?

    @Option(name: .long, help: ArgumentHelp("WordNet 3.0 database folder (default: the data store or /usr/share/wordnet).", valueName: "dir"))
    var wordnet: String?

    func resources(groundTruth: String?, threads: Int) -> ChairResources {
        ChairResources(synonyms: synonyms, nltkData: nltkData, wordnet: wordnet, groundTruth: groundTruth,
                       cocoAnnotations: nil, cacheDir: nil, threads: threads)
    }
}
