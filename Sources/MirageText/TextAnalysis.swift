/// What CHAIR's text pipeline produces for one caption: NLTK 3.8.1's
/// `word_tokenize(caption.lower())`, `pos_tag(tokens)` and
/// `WordNetLemmatizer().lemmatize(token, pos)` with the tag mapped J→adjective, V→verb, N→noun,
/// R→adverb, anything else noun.
public struct TextAnalysis: Sendable, Hashable, Codable {
    public var tokens: [String]
    /// Penn Treebank tags, one per token.
    public var tags: [String]
    /// Lemmas, one per token.
    public var lemmas: [String]

    public init(tokens: [String], tags: [String], lemmas: [String]) {
        precondition(tokens.count == tags.count && tokens.count == lemmas.count,
                     "tokens, tags and lemmas must have one entry per token")
        self.tokens = tokens
        self.tags = tags
        self.lemmas = lemmas
    }
}

/// Anything that turns a caption into tokens, tags and lemmas the way CHAIR's reference does.
/// Implementations must be safe to call from several threads at once.
public protocol CaptionAnalyzing: Sendable {
    func analyze(_ caption: String) -> TextAnalysis
}

/// WordNet's parts of speech as the lemmatizer takes them.
public enum WordNetPOS: String, Sendable, CaseIterable {
    case noun = "n", verb = "v", adjective = "a", adverb = "r"

    /// The mapping CHAIR applies to a Penn tag: J→adjective, V→verb, N→noun, R→adverb, else noun.
    public init(pennTag: String) {
        switch pennTag.utf8.first {  // bytes, not Character: no grapheme breaking per token
        case UInt8(ascii: "J"): self = .adjective
        case UInt8(ascii: "V"): self = .verb
        case UInt8(ascii: "R"): self = .adverb
        default: self = .noun
        }
    }
}
