import Foundation
import MirageText

/// CHAIR's object vocabulary and its hard-coded rules, exactly as OPERA's `chair.py`
/// (shikiw/OPERA @ 61426ef, itself Maxlinn's and LisaAnne/Hallucination's) applies them:
///
/// - `synonyms.txt`: one line per COCO category, `head, synonym, ...`; each line is `strip()`ped and split
///   on the exact string `", "`. Every entry maps to its line's head (the *node word*). The double-space
///   quirks are kept on purpose: `" motor bike"` and `" cheesecake"` keep their leading space and can
///   therefore never match a caption word.
/// - the two-word table (pairs merged left to right after lemmatisation), `baby X` / `adult X`,
///   `passenger jet|train`, and the overrides `bow tie`→tie, `toilet seat`→toilet, `wine glas`→wine glass;
/// - the toilet/seat rule: when both `toilet` and `seat` occur, every `seat` is dropped.
public struct ChairVocabulary: Sendable, Hashable {
    /// Every entry of the synonym file in file order, duplicates kept (e.g. "bike" twice).
    public let entries: [String]
    /// The head of every line (80 COCO category names for the reference file), in file order.
    public let nodeWords: [String]
    /// Entry → node word. When an entry occurs on two lines the later line wins (Python dict assignment).
    public let nodeWordByEntry: [String: String]
    /// Lemma pair `"a b"` → what the pair is replaced by.
    public let doubleWords: [String: String]

    /// The reference's common "double words" of COCO captions, each mapping to itself
    /// (OPERA `chair.py`, `coco_double_words`; duplicates in that list do not matter for a map).
    public static let referenceDoubleWords: [String] = [
        "motor bike", "motor cycle", "air plane", "traffic light", "street light", "traffic signal",
        "stop light", "fire hydrant", "stop sign", "parking meter", "suit case", "sports ball",
        "baseball bat", "baseball glove", "tennis racket", "wine glass", "hot dog", "cell phone",
        "mobile phone", "teddy bear", "hair drier", "potted plant", "bow tie", "laptop computer",
        "stove top oven", "home plate", "train track",
    ]
    /// `baby X` and `adult X` map to `X` (stops "baby"/"adult" from firing person).
    public static let referenceAnimalWords: [String] = [
        "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "animal", "cub",
    ]
    /// `passenger X` maps to `X` (stops "passenger" from firing person).
    public static let referenceVehicleWords: [String] = ["jet", "train"]
    /// Overrides applied last, so they win over the tables above.
    public static let referenceOverrides: [(String, String)] = [
        ("bow tie", "tie"), ("toilet seat", "toilet"), ("wine glas", "wine glass"),
    ]

    /// Parses the text of a `synonyms.txt` and adds the reference's two-word rules.
    /// - Throws: `ChairError.invalidSynonyms` when the text holds no entry at all.
    public init(synonymsText: String) throws {
        var entries: [String] = []
        var heads: [String] = []
        var inverse: [String: String] = [:]
        // Python's `splitlines()`: no extra empty line after a final newline.
        var lines = synonymsText.split(omittingEmptySubsequences: false, whereSeparator: { $0.isNewline })
        if lines.last?.isEmpty == true { lines.removeLast() }
        for rawLine in lines {
            let line = Self.pythonStrip(rawLine)
            // `"".split(", ")` is `[""]` in Python: an empty line contributes the entry "" (harmless).
            let synonyms = line.components(separatedBy: ", ")
            guard let head = synonyms.first else { continue }
            if !line.isEmpty { heads.append(head) }
            entries.append(contentsOf: synonyms)
            for synonym in synonyms { inverse[synonym] = head }
        }
        guard !heads.isEmpty else {
            throw ChairError.invalidSynonyms("the synonym list is empty; expected one line per COCO category, "
                                             + "\"head, synonym, ...\" (CHAIR's data/synonyms.txt)")
        }
        var doubles: [String: String] = [:]
        for pair in Self.referenceDoubleWords { doubles[pair] = pair }
        for animal in Self.referenceAnimalWords {
            doubles["baby \(animal)"] = animal
            doubles["adult \(animal)"] = animal
        }
        for vehicle in Self.referenceVehicleWords { doubles["passenger \(vehicle)"] = vehicle }
        for (pair, target) in Self.referenceOverrides { doubles[pair] = target }
        self.entries = entries
        self.nodeWords = heads
        self.nodeWordByEntry = inverse
        self.doubleWords = doubles
    }

    /// Reads a `synonyms.txt` file.
    public init(contentsOf url: URL) throws {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw ChairError.unreadableFile(url.path, "\(error.localizedDescription)")
        }
        do {
            try self.init(synonymsText: text)
        } catch ChairError.invalidSynonyms(let why) {
            throw ChairError.invalidSynonyms("\(url.path): \(why)")
        }
    }

    /// The node word (COCO category) for a vocabulary entry, or nil when the word is not an object.
    @inlinable
    public func nodeWord(for word: String) -> String? { nodeWordByEntry[word] }

    /// Runs CHAIR's word rules on one caption's lemmas (`caption_to_words` after lemmatisation).
    public func words(fromLemmas lemmas: [String]) -> ChairWords {
        // 1. Greedy left-to-right merge of adjacent pairs found in the two-word table.
        var merged: [String] = []
        var starts: [Int] = []
        merged.reserveCapacity(lemmas.count)
        starts.reserveCapacity(lemmas.count)
        var i = 0
        while i < lemmas.count {
            // Python joins `words[i:i+2]`; at the end that is the last word alone, which is looked up too.
            let key = i + 1 < lemmas.count ? lemmas[i] + " " + lemmas[i + 1] : lemmas[i]
            if let replacement = doubleWords[key] {
                merged.append(replacement)
                starts.append(i)
                i += 2
            } else {
                merged.append(lemmas[i])
                starts.append(i)
                i += 1
            }
        }
        // 2. "the seat of the toilet" must not fire chair: with both words present every "seat" goes.
        let dropSeats = merged.contains("toilet") && merged.contains("seat")
        // 3. Keep vocabulary entries and map each to its node word; duplicates are kept.
        var mentions: [ChairWords.Mention] = []
        for (k, word) in merged.enumerated() {
            if dropSeats && word == "seat" { continue }
            if let node = nodeWordByEntry[word] {
                mentions.append(.init(word: word, nodeWord: node, tokenIndex: starts[k]))
            }
        }
        return ChairWords(words: merged, mentions: mentions)
    }

    /// Python's `str.strip()`: removes leading and trailing whitespace.
    static func pythonStrip(_ s: Substring) -> String {
        var scalars = Substring.UnicodeScalarView(s.unicodeScalars)
        while let first = scalars.first, first.properties.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.properties.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}

/// The words CHAIR sees in one caption.
public struct ChairWords: Sendable, Hashable, Codable {
    /// One object mention: the vocabulary entry as written after merging, its node word, and the index
    /// of its (first) token in the caption's tokens.
    public struct Mention: Sendable, Hashable, Codable {
        public var word: String
        public var nodeWord: String
        public var tokenIndex: Int
        public init(word: String, nodeWord: String, tokenIndex: Int) {
            self.word = word
            self.nodeWord = nodeWord
            self.tokenIndex = tokenIndex
        }
    }
    /// The lemmas after two-word merging, punctuation included, *before* the toilet/seat rule: the
    /// reference's `raw_words`, whose count is the caption's `Len`.
    public var words: [String]
    /// Object mentions in caption order, duplicates kept.
    public var mentions: [Mention]
}
