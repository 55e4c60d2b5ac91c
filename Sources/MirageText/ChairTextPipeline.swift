import Foundation

/// CHAIR's text pipeline exactly as OPERA's `chair.py` runs it with NLTK 3.8.1:
/// `word_tokenize(caption.lower())`, `pos_tag(tokens)`, then `WordNetLemmatizer().lemmatize(token, pos)`
/// with the Penn tag mapped J→adjective, V→verb, N→noun, R→adverb, anything else noun.
/// Thread-safe: all parts are immutable after loading.
public struct ChairTextPipeline: CaptionAnalyzing {
    private let tokenize: @Sendable (String) -> [String]
    public let tagger: PerceptronTagger
    public let lemmatizer: WordNetLemmatizer

    /// Names the pipeline's exact behaviour (NLTK 3.8.1 semantics). Caches of pipeline output (e.g. CHAIR
    /// ground truth built from COCO captions) are keyed by it: bump it whenever any stage's output changes.
    public static let version = "nltk-3.8.1 word_tokenize+pos_tag+wordnet-3.0-lemmatize/1"

    /// Builds the pipeline from its parts; `tokenizer` must be NLTK's `word_tokenize`.
    public init(tokenizer: @escaping @Sendable (String) -> [String], tagger: PerceptronTagger,
                lemmatizer: WordNetLemmatizer) {
        self.tokenize = tokenizer
        self.tagger = tagger
        self.lemmatizer = lemmatizer
    }

    /// Loads NLTK's `word_tokenize` (Punkt parameters in the punkt_tab layout), the averaged-perceptron
    /// tagger (JSON layout) and WordNet 3.0 from their folders.
    public init(punktDirectory: URL, taggerDirectory: URL, wordnetDirectory: URL) throws {
        let tokenizer = WordTokenizer(punkt: try PunktParameters(directory: punktDirectory))
        self.init(tokenizer: { tokenizer.tokenize($0) }, tagger: try PerceptronTagger(directory: taggerDirectory),
                  lemmatizer: try WordNetLemmatizer(directory: wordnetDirectory))
    }

    public func analyze(_ caption: String) -> TextAnalysis {
        // Python's str.lower(): full Unicode lower-casing including the final-sigma rule.
        let tokens = tokenize(PythonStr.lowercased(caption))
        let tags = tagger.tag(tokens)
        var lemmas: [String] = []
        lemmas.reserveCapacity(tokens.count)
        for (token, tag) in zip(tokens, tags) {
            lemmas.append(lemmatizer.lemmatize(token, pos: WordNetPOS(pennTag: tag)))
        }
        return TextAnalysis(tokens: tokens, tags: tags, lemmas: lemmas)
    }
}
