import Foundation

/// BERT's WordPiece tokenizer as transformers 5.24's `BertTokenizer` runs it (the tokenizers library's
/// BertNormalizer, BertPreTokenizer, WordPiece model and [CLS] … [SEP] template; huggingface/tokenizers,
/// tokenizers/src/normalizers/bert.rs, pre_tokenizers/bert.rs, models/wordpiece/mod.rs). InstructBLIP's Q-Former
/// reads its instruction through it (the `qformer_tokenizer/` folder of a transformers checkpoint).
///
/// Steps: drop NUL, U+FFFD and other control/format characters (keeping tab, newline, return) and turn every
/// whitespace character into a space; surround CJK ideographs with spaces; with lowercasing (and `strip_accents`
/// unset or true) decompose (NFD) and drop non-spacing marks; lowercase; split on whitespace and isolate each
/// punctuation character (Unicode P* and ASCII punctuation such as `$`, `+`, `^`); then split each word
/// greedily into the longest vocabulary pieces (`##` marks a continuation). A word longer than 100 characters, or
/// one that does not split, becomes `[UNK]`.
public struct BertTokenizer: Sendable {
    public let vocabulary: [String: Int]
    public let lowercase: Bool
    public let stripAccents: Bool
    public let splitChineseCharacters: Bool
    public let maxCharactersPerWord: Int
    public let unknownToken: String
    public let unknownID: Int
    public let clsID: Int
    public let sepID: Int

    public init(vocabulary: [String: Int], lowercase: Bool = true, stripAccents: Bool? = nil,
                splitChineseCharacters: Bool = true, maxCharactersPerWord: Int = 100,
                unknownToken: String = "[UNK]", clsToken: String = "[CLS]", sepToken: String = "[SEP]") throws {
        func id(_ token: String) throws -> Int {
            guard let id = vocabulary[token] else {
                throw TokenizerError.malformed(file: "vocab.txt", detail: "the vocabulary has no \(token) token; "
                                                 + "use the qformer_tokenizer folder saved with the model")
            }
            return id
        }
        self.vocabulary = vocabulary
        self.lowercase = lowercase
        // transformers: strip_accents None follows do_lower_case.
        self.stripAccents = stripAccents ?? lowercase
        self.splitChineseCharacters = splitChineseCharacters
        self.maxCharactersPerWord = maxCharactersPerWord
        self.unknownToken = unknownToken
        unknownID = try id(unknownToken)
        clsID = try id(clsToken)
        sepID = try id(sepToken)
    }

    /// Reads a tokenizer folder: the vocabulary from tokenizer.json (`model.vocab`) or vocab.txt (one token a line,
    /// id = line number), the options from tokenizer_config.json (`do_lower_case`, `strip_accents`,
    /// `tokenize_chinese_chars`).
    public init(folder: URL) throws {
        let json = folder.appendingPathComponent("tokenizer.json"), text = folder.appendingPathComponent("vocab.txt")
        var vocabulary: [String: Int] = [:]
        var maxChars = 100, unknown = "[UNK]"
        if FileManager.default.fileExists(atPath: json.path) {
            guard let object = (try? JSONSerialization.jsonObject(with: Data(contentsOf: json))) as? [String: Any],
                  let model = object["model"] as? [String: Any], let vocab = model["vocab"] as? [String: Int] else {
                throw TokenizerError.malformed(file: json.path, detail: "expected a WordPiece tokenizer.json with model.vocab")
            }
            vocabulary = vocab
            maxChars = (model["max_input_chars_per_word"] as? Int) ?? 100
            unknown = (model["unk_token"] as? String) ?? "[UNK]"
        } else if FileManager.default.fileExists(atPath: text.path) {
            guard let contents = try? String(contentsOf: text, encoding: .utf8) else {
                throw TokenizerError.malformed(file: text.path, detail: "not UTF-8 text")
            }
            var lines = contents.split(separator: "\n", omittingEmptySubsequences: false).map {
                $0.hasSuffix("\r") ? String($0.dropLast()) : String($0)
            }
            if lines.last == "" { lines.removeLast() }
            for (i, line) in lines.enumerated() where vocabulary[line] == nil { vocabulary[line] = i }
        } else {
            throw TokenizerError.missingFile(path: text.path)
        }
        var config: [String: Any] = [:]
        let configURL = folder.appendingPathComponent("tokenizer_config.json")
        if let data = try? Data(contentsOf: configURL) {
            guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw TokenizerError.malformed(file: configURL.path, detail: "not a JSON object")
            }
            config = object
        }
        try self.init(vocabulary: vocabulary, lowercase: (config["do_lower_case"] as? Bool) ?? true,
                      stripAccents: config["strip_accents"] as? Bool,
                      splitChineseCharacters: (config["tokenize_chinese_chars"] as? Bool) ?? true,
                      maxCharactersPerWord: maxChars, unknownToken: (config["unk_token"] as? String) ?? unknown,
                      clsToken: (config["cls_token"] as? String) ?? "[CLS]",
                      sepToken: (config["sep_token"] as? String) ?? "[SEP]")
    }

    /// Token ids; `addSpecialTokens` wraps them in [CLS] … [SEP] (transformers' default).
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        let ids = tokenize(text).map { vocabulary[$0] ?? unknownID }
        return addSpecialTokens ? [clsID] + ids + [sepID] : ids
    }

    /// The WordPiece tokens (`[UNK]` for words that do not split).
    public func tokenize(_ text: String) -> [String] {
        words(normalize(text)).flatMap { word -> [String] in wordPieces(word) ?? [unknownToken] }
    }

    /// BertNormalizer: clean text, CJK spacing, accent stripping, lowercasing (in that order).
    func normalize(_ text: String) -> [Unicode.Scalar] {
        var scalars: [Unicode.Scalar] = []
        for s in text.unicodeScalars {
            if s.value == 0 || s.value == 0xFFFD || Self.isControl(s) { continue }
            if Self.isWhitespace(s) { scalars.append(" "); continue }
            if splitChineseCharacters && Self.isChinese(s) {
                scalars.append(" ")
                scalars.append(s)
                scalars.append(" ")
            } else {
                scalars.append(s)
            }
        }
        if stripAccents {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars)
            scalars = String(view).decomposedStringWithCanonicalMapping.unicodeScalars.filter {
                $0.properties.generalCategory != .nonspacingMark
            }
        }
        if lowercase {
            scalars = scalars.flatMap { s -> [Unicode.Scalar] in Array(s.properties.lowercaseMapping.unicodeScalars) }
        }
        return scalars
    }

    /// BertPreTokenizer: whitespace separates words, each punctuation character is a word of its own.
    func words(_ scalars: [Unicode.Scalar]) -> [[Unicode.Scalar]] {
        var words: [[Unicode.Scalar]] = [], current: [Unicode.Scalar] = []
        for s in scalars {
            if s.properties.isWhitespace || s == "\t" || s == "\n" || s == "\r" {
                if !current.isEmpty { words.append(current); current = [] }
            } else if Self.isPunctuation(s) {
                if !current.isEmpty { words.append(current); current = [] }
                words.append([s])
            } else {
                current.append(s)
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    /// Greedy longest-match-first WordPiece; nil when the word is too long or a part matches nothing.
    func wordPieces(_ word: [Unicode.Scalar]) -> [String]? {
        // tokenizers counts chars (scalars) against max_input_chars_per_word.
        guard word.count <= maxCharactersPerWord else { return nil }
        var pieces: [String] = [], start = 0
        while start < word.count {
            var end = word.count, found: String?
            while start < end {
                var view = String.UnicodeScalarView()
                view.append(contentsOf: word[start..<end])
                let candidate = (start > 0 ? "##" : "") + String(view)
                if vocabulary[candidate] != nil { found = candidate; break }
                end -= 1
            }
            guard let found else { return nil }
            pieces.append(found)
            start = end
        }
        return pieces
    }

    /// Rust's `char::is_whitespace` (Unicode White_Space), which BertNormalizer maps to a space.
    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        s == "\t" || s == "\n" || s == "\r" || s.properties.isWhitespace
    }

    /// Unicode "Other" categories (Cc, Cf, Co, Cs, Cn), except tab, newline and return.
    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .privateUse, .surrogate, .unassigned: return true
        default: return false
        }
    }

    /// ASCII punctuation (33–47, 58–64, 91–96, 123–126) or a Unicode P* character.
    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
             .finalPunctuation, .otherPunctuation:
            return true
        default:
            return false
        }
    }

    /// The CJK Unified Ideograph blocks BERT spaces out (tokenizers' `is_chinese_char`; Hangul and kana are not in
    /// them).
    static func isChinese(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
             0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }
}
