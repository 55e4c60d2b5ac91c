import ArgumentParser
import Foundation

/// Where CHAIR's vocabulary and text-pipeline data come from (`run`, `demo`, and via `ChairDataOptions`
/// `chair`, `import`, `reproduce` and `mirage-bench`).
public struct ChairTextOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("CHAIR synonym list (default: the data store's chair-synonyms).", valueName: "file"))
    public var synonyms: String?

    @Option(name: .long, help: ArgumentHelp("NLTK data folder with punkt_tab/english/ and averaged_perceptron_tagger_eng/ (default: the data store).", valueName: "dir"))
    public var nltkData: String?

    @Option(name: .long, help: ArgumentHelp("WordNet 3.0 database folder (default: the data store or /usr/share/wordnet).", valueName: "dir"))
    public var wordnet: String?

    public init() {}

    public func resources(groundTruth: String?, threads: Int) -> ChairResources {
        ChairResources(synonyms: synonyms, nltkData: nltkData, wordnet: wordnet, groundTruth: groundTruth,
                       cocoAnnotations: nil, cacheDir: nil, threads: threads)
    }
}

/// Options shared by the CHAIR commands for locating the vocabulary and the text pipeline's data, plus threads.
public struct ChairDataOptions: ParsableArguments {
    @OptionGroup public var text: ChairTextOptions

    @Option(name: .long, help: "Worker threads.")
    public var threads = 2

    public init() {}

    public var synonyms: String? { text.synonyms }
    public var nltkData: String? { text.nltkData }
    public var wordnet: String? { text.wordnet }

    public func resources(groundTruth: String? = nil) -> ChairResources {
        text.resources(groundTruth: groundTruth, threads: threads)
    }
}

/// What is missing or cannot be written for a CHAIR command, with the fix.
public enum ChairCommandError: Error, CustomStringConvertible {
    case cannotWrite(String, String)
    case missingData(what: String, fix: String)
    /// The data store lacks a source: its message (which names the fetch/import command) and the flag that
    /// names the data directly.
    case notInStore(String, flag: String)

    public var description: String {
        switch self {
        case .cannotWrite(let path, let why): return "cannot write \(path): \(why)"
        case .missingData(let what, let fix): return "\(what) not found. \(fix)"
        case .notInStore(let message, let flag): return "\(message); or pass \(flag)"
        }
    }
}
