import Foundation

/// NLTK 3.8.1's `nltk.word_tokenize(text)` (language "english", `preserve_line=False`), token for token:
/// Punkt sentence splitting with the given parameters, then the improved Treebank tokenizer
/// (`NLTKWordTokenizer`) on each sentence. CHAIR applies it to the Python-lower-cased caption
/// (`PythonStr.lowercased(caption)`, which differs from Swift's `lowercased()` on final sigma).
///
/// ```swift
/// let punkt = try PunktParameters(directory: nltkData.appendingPathComponent("tokenizers/punkt_tab/english"))
/// let tokenizer = WordTokenizer(punkt: punkt)
/// tokenizer.tokenize("A man's dog, e.g. a terrier.")  // ["A", "man", "'s", "dog", ",", "e.g", ".", "a", "terrier", "."]
/// ```
/// Safe to share between threads; tokenizing allocates only per call.
public struct WordTokenizer: Sendable {
    public let sentenceTokenizer: PunktSentenceTokenizer
    private let treebank = TreebankWordTokenizer()

    public init(punkt: PunktParameters) {
        sentenceTokenizer = PunktSentenceTokenizer(parameters: punkt)
    }

    /// `nltk.word_tokenize(text)`.
    public func tokenize(_ text: String) -> [String] {
        let scalars = PyText.scalars(text)
        var tokens: [String] = []
        tokens.reserveCapacity(scalars.count / 4)
        for span in sentenceTokenizer.sentenceSpans(scalars) {
            treebank.tokenize(scalars[span], into: &tokens)
        }
        return tokens
    }

    /// CHAIR's call, `nltk.word_tokenize(caption.lower())`, with Python's `str.lower()`.
    public func tokenizeLowercased(_ caption: String) -> [String] {
        tokenize(PythonStr.lowercased(caption))
    }

    /// The text CHAIR tokenizes (Python's `caption.lower()`) as Unicode scalars, with its Punkt sentence spans
    /// as scalar offsets: the sentences `tokenizeLowercased` splits before word tokenization.
    public func lowercasedSentenceSpans(_ caption: String) -> (scalars: [Unicode.Scalar], sentences: [Range<Int>]) {
        let scalars = PyText.scalars(PythonStr.lowercased(caption))
        return (scalars, sentenceTokenizer.sentenceSpans(scalars))
    }

    /// `NLTKWordTokenizer().tokenize(sentence)`: the word tokenizer alone, without sentence splitting
    /// (`word_tokenize(..., preserve_line=True)`).
    public func tokenizeSentence(_ sentence: String) -> [String] {
        var tokens: [String] = []
        treebank.tokenize(PyText.scalars(sentence)[...], into: &tokens)
        return tokens
    }
}
