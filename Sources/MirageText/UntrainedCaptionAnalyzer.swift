import Foundation

/// CHAIR's text pipeline without NLTK's downloaded models, for `mirage demo` on a machine where they are not
/// installed: Treebank words split with an untrained Punkt (no learned abbreviations, collocations or
/// sentence starters), every token tagged `NN`, and WordNet noun lemmas (WordNet comes from Debian's
/// `wordnet-base`, no download).
///
/// Plural object nouns come out as the reference pipeline's ("dogs" → "dog"); it differs where NLTK's
/// tagger would call a word a verb or an adjective (then the reference lemmatizes it as such) and where
/// Punkt's learned abbreviations change a split. Numbers from it are not CHAIR: never report them.
public struct UntrainedCaptionAnalyzer: CaptionAnalyzing {
    /// Keys caches of this analyzer's output (e.g. CHAIR ground truth built from captions) apart from
    /// `ChairTextPipeline.version`.
    public static let version = "untrained-punkt word_tokenize+NN+wordnet-3.0-noun-lemmatize/1"

    private let tokenize: @Sendable (String) -> [String]
    public let lemmatizer: WordNetLemmatizer

    public init(lemmatizer: WordNetLemmatizer) {
        let tokenizer = WordTokenizer(punkt: PunktParameters())
        self.tokenize = { tokenizer.tokenize($0) }
        self.lemmatizer = lemmatizer
    }

    public func analyze(_ caption: String) -> TextAnalysis {
        let tokens = tokenize(PythonStr.lowercased(caption))
        let lemmas = tokens.map { lemmatizer.lemmatize($0, pos: .noun) }
        return TextAnalysis(tokens: tokens, tags: Array(repeating: "NN", count: tokens.count), lemmas: lemmas)
    }
}
