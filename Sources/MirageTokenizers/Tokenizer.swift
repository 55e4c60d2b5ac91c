import Foundation

/// One token of an encoding: its id, its vocabulary string, and the UTF-8 byte range of the input text
/// it came from (empty for tokens the post-processor adds, such as BOS).
public struct TokenizerToken: Sendable, Equatable {
    public var id: Int
    public var token: String
    public var byteRange: Range<Int>
    /// Added by the post-processor (BOS/EOS) rather than found in the text.
    public var isTemplate: Bool
}

/// A Hugging Face tokenizer loaded from a model folder (`tokenizer.json`, `tokenizer_config.json`,
/// `special_tokens_map.json`), encoding and decoding exactly as `transformers.AutoTokenizer` 5.x with
/// `tokenizers` 0.23 does for BPE tokenizers: SentencePiece-style Llama/Vicuna (byte fallback,
/// Metaspace or Prepend/Replace normalizer) and byte-level GPT-2/Qwen2.
///
/// Where transformers replaces the pipeline written in tokenizer.json (a `tokenizer_class` of
/// `LlamaTokenizer` or `Qwen2Tokenizer`, or `add_bos_token`/`add_eos_token` in tokenizer_config.json),
/// Mirage does the same, so ids match what the model was evaluated with under transformers 5.
/// Thread-safe; share one instance.
public final class Tokenizer: Sendable {
    let model: BPEModel
    let normalizer: TokenizerNormalizer?
    let preTokenizer: TokenizerPreTokenizer?
    let decoder: TokenizerDecoder?
    let postProcessor: TokenizerPostProcessor
    private let rawMatcher: AddedTokenMatcher
    private let normalizedMatcher: AddedTokenMatcher
    private let addedByID: [Int: TokenizerAddedToken]
    private let addedByContent: [String: Int]
    /// Set when the pre-tokenizer is a regex split followed by the byte-level mapping (GPT-2, Qwen2,
    /// Llama-3): encoding then maps each word into a reused buffer instead of building word copies.
    private let byteLevelWords: TokenizerPattern?

    /// Added and special tokens, by id.
    public let addedTokens: [TokenizerAddedToken]
    public let bosToken: String?
    public let eosToken: String?
    public let padToken: String?
    public let unkToken: String?
    /// `tokenizer_class` of tokenizer_config.json, when given.
    public let tokenizerClass: String?

    public var bosTokenID: Int? { bosToken.flatMap(id(for:)) }
    public var eosTokenID: Int? { eosToken.flatMap(id(for:)) }
    public var padTokenID: Int? { padToken.flatMap(id(for:)) }
    public var unkTokenID: Int? { unkToken.flatMap(id(for:)) }

    /// Ids the post-processor puts before and after the text of a single sequence.
    public var templatePrefix: [Int] { postProcessor.prefix }
    public var templateSuffix: [Int] { postProcessor.suffix }
    /// Whether `encode` adds BOS (the template starts with the BOS id).
    public var addsBosToken: Bool { bosTokenID.map { postProcessor.prefix.first == $0 } ?? false }

    /// One past the largest id (model vocabulary and added tokens).
    public var vocabularySize: Int {
        max(model.tokens.count, (addedTokens.map(\.id).max() ?? -1) + 1)
    }

    /// Loads the tokenizer files of a model folder.
    /// A folder without tokenizer.json but with a SentencePiece `tokenizer.model` (LLaMA-era checkpoints) is read
    /// as transformers 5 converts it (`SentencePieceModel.tokenizerJSON`), with `LlamaTokenizer` as the class when
    /// tokenizer_config.json names none, and the tokens of its `added_tokens.json` (e.g. Shikra's `<im_patch>`,
    /// `<im_start>`, `<im_end>`) added as transformers adds them when it loads such a folder.
    public convenience init(folder: URL) throws {
        let tokenizerURL = folder.appendingPathComponent("tokenizer.json")
        let sentencePieceURL = folder.appendingPathComponent("tokenizer.model")
        func optional(_ name: String) throws -> Data? {
            let url = folder.appendingPathComponent(name)
            return FileManager.default.fileExists(atPath: url.path) ? try Data(contentsOf: url) : nil
        }
        if FileManager.default.fileExists(atPath: tokenizerURL.path) {
            try self.init(tokenizerJSON: try Data(contentsOf: tokenizerURL),
                          tokenizerConfig: try optional("tokenizer_config.json"),
                          specialTokensMap: try optional("special_tokens_map.json"))
        } else if FileManager.default.fileExists(atPath: sentencePieceURL.path) {
            try self.init(sentencePieceModel: try Data(contentsOf: sentencePieceURL),
                          tokenizerConfig: try optional("tokenizer_config.json"),
                          specialTokensMap: try optional("special_tokens_map.json"),
                          addedTokens: try optional("added_tokens.json"))
        } else {
            throw TokenizerError.missingFile(path: tokenizerURL.path)
        }
    }

    /// Builds a tokenizer from a SentencePiece BPE model (`tokenizer.model`) and the optional config files.
    /// `addedTokens`: an `added_tokens.json` (`{"<im_patch>": 32000, …}`), non-special tokens matched on the raw text,
    /// for ids tokenizer_config.json's `added_tokens_decoder` does not already name.
    public convenience init(sentencePieceModel: Data, tokenizerConfig: Data? = nil, specialTokensMap: Data? = nil,
                            addedTokens: Data? = nil) throws {
        let model = try SentencePieceModel(data: sentencePieceModel)
        var config: [String: Any] = [:]
        if let tokenizerConfig {
            guard let object = try? JSONSerialization.jsonObject(with: tokenizerConfig) as? [String: Any] else {
                throw TokenizerError.malformed(file: "tokenizer_config.json", detail: "not a JSON object")
            }
            config = object
        } else {
            // transformers' LlamaTokenizer defaults: BOS added, the trainer's special pieces.
            config["add_bos_token"] = true
            config["add_eos_token"] = false
            for (key, id) in [("unk_token", model.unkID), ("bos_token", model.bosID), ("eos_token", model.eosID)]
            where model.pieces.indices.contains(id) {
                config[key] = model.pieces[id].text
            }
        }
        if config["tokenizer_class"] == nil { config["tokenizer_class"] = "LlamaTokenizer" }
        if let addedTokens {
            guard let object = try? JSONSerialization.jsonObject(with: addedTokens) as? [String: Any] else {
                throw TokenizerError.malformed(file: "added_tokens.json", detail: "not a JSON object of token → id")
            }
            var decoder = config["added_tokens_decoder"] as? [String: Any] ?? [:]
            for (content, value) in object {
                guard let id = (value as? NSNumber)?.intValue else {
                    throw TokenizerError.malformed(file: "added_tokens.json", detail: "the id of \(content) is not a whole number")
                }
                if decoder[String(id)] == nil {
                    decoder[String(id)] = ["content": content, "special": false, "normalized": true, "lstrip": false,
                                           "rstrip": false, "single_word": false]
                }
            }
            config["added_tokens_decoder"] = decoder
        }
        try self.init(tokenizerJSON: try model.tokenizerJSON(),
                      tokenizerConfig: try JSONSerialization.data(withJSONObject: config),
                      specialTokensMap: specialTokensMap)
    }

    /// Builds a tokenizer from the contents of the three files.
    public init(tokenizerJSON: Data, tokenizerConfig: Data? = nil, specialTokensMap: Data? = nil) throws {
        let spec = try TokenizerJSON.parse(tokenizerJSON, file: "tokenizer.json")
        let config = try tokenizerConfig.map { try TokenizerJSON.parse($0, file: "tokenizer_config.json") }
        let specialMap = try specialTokensMap.map { try TokenizerJSON.parse($0, file: "special_tokens_map.json") }

        guard let modelObject = spec["model"] as? [String: Any] else {
            throw TokenizerError.malformed(file: "tokenizer.json", detail: "no \"model\" object")
        }
        var model = try BPEModel.parse(spec.child(modelObject))
        var normalizer = try (spec["normalizer"] as? [String: Any]).map { try TokenizerNormalizer.parse(spec.child($0)) }
        var preTokenizer = try (spec["pre_tokenizer"] as? [String: Any]).map { try TokenizerPreTokenizer.parse(spec.child($0)) }
        var decoder = try (spec["decoder"] as? [String: Any]).map { try TokenizerDecoder.parse(spec.child($0)) }
        var postProcessor = try (spec["post_processor"] as? [String: Any])
            .map { try TokenizerPostProcessor.parse(spec.child($0)) } ?? .none
        // tokenizer.json's "truncation" and "padding" are ignored: a default transformers call
        // (`tokenizer(text)`, no truncation or padding requested) switches both off.

        // Named special tokens: tokenizer_config.json wins over special_tokens_map.json.
        func named(_ key: String) -> String? { config?.tokenContent(key) ?? specialMap?.tokenContent(key) }
        let tokenizerClass = config?.string("tokenizer_class")
        let bos = named("bos_token"), eos = named("eos_token"), pad = named("pad_token"), unk = named("unk_token")

        // transformers 5 rebuilds these pipelines in the tokenizer class, ignoring tokenizer.json's
        // (transformers/models/llama/tokenization_llama.py and qwen2/tokenization_qwen2.py).
        let baseClass = tokenizerClass.map { $0.hasSuffix("Fast") ? String($0.dropLast(4)) : $0 }
        switch baseClass {
        case "LlamaTokenizer":
            let addPrefixSpace = config?.bool("add_prefix_space", default: true) ?? true
            let legacy = config?.bool("legacy", default: false) ?? false
            model = try model.with(unkToken: nil, fuseUnk: true, byteFallback: true, ignoreMerges: false)
            normalizer = nil
            preTokenizer = .metaspace(replacement: "▁", prepend: addPrefixSpace ? (legacy ? .always : .first) : .never,
                                      split: false)
            var steps: [TokenizerDecoder] = [.replace(pattern: "▁", content: " "), .byteFallback, .fuse]
            if addPrefixSpace { steps.append(.strip(content: " ", start: 1, stop: 0)) }
            decoder = .sequence(steps)
        case "Qwen2Tokenizer":
            model = try model.with(unkToken: nil, fuseUnk: false, byteFallback: false, ignoreMerges: false)
            normalizer = .nfc
            preTokenizer = .sequence([
                .split(.regex(.qwen2(maxDigits: 1)), behavior: .isolated, invert: false),
                .byteLevel(addPrefixSpace: config?.bool("add_prefix_space", default: false) ?? false, useRegex: false),
            ])
            decoder = .byteLevel
        default:
            break
        }

        // Added tokens: tokenizer.json, then tokenizer_config.json's added_tokens_decoder, then the named
        // special tokens (transformers adds these as special, unnormalized tokens when they are missing).
        var added: [TokenizerAddedToken] = []
        var index: [String: Int] = [:]
        func add(_ token: TokenizerAddedToken) {
            if let existing = index[token.content] {
                if token.special { added[existing].special = true }
                return
            }
            index[token.content] = added.count
            added.append(token)
        }
        for entry in spec.objects("added_tokens") {
            guard let id = entry.int("id") else {
                throw TokenizerError.malformed(file: "tokenizer.json", detail: "an added token has no id")
            }
            add(try TokenizerAddedToken(entry, id: id))
        }
        if let decoderEntries = config?["added_tokens_decoder"] as? [String: Any] {
            for (key, value) in decoderEntries.sorted(by: { (Int($0.key) ?? 0) < (Int($1.key) ?? 0) }) {
                guard let id = Int(key), let object = value as? [String: Any] else { continue }
                add(try TokenizerAddedToken(config!.child(object), id: id))
            }
        }
        var namedTokens = [bos, eos, unk, pad].compactMap { $0 }
        for key in ["additional_special_tokens", "extra_special_tokens"] {
            for item in (config?[key] as? [Any]) ?? (specialMap?[key] as? [Any]) ?? [] {
                if let text = item as? String { namedTokens.append(text) }
                if let object = item as? [String: Any], let text = object["content"] as? String { namedTokens.append(text) }
            }
        }
        for content in namedTokens {
            if let existing = index[content] {
                added[existing].special = true
            } else if let id = model.vocab[content] {
                add(TokenizerAddedToken(id: id, content: content, normalized: false, special: true))
            }
        }

        // transformers rebuilds the template when tokenizer_config.json sets add_bos_token/add_eos_token
        // (TokenizersBackend.update_post_processor).
        if let config, config["add_bos_token"] != nil || config["add_eos_token"] != nil {
            let addBos = config.bool("add_bos_token", default: false) && bos != nil
            let addEos = config.bool("add_eos_token", default: false) && eos != nil
            func tokenID(_ content: String) throws -> Int {
                if let i = index[content] { return added[i].id }
                if let id = model.vocab[content] { return id }
                throw TokenizerError.unknownToken(content)
            }
            postProcessor = .template(prefix: addBos ? [try tokenID(bos!)] : [], suffix: addEos ? [try tokenID(eos!)] : [])
        }

        self.model = model
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.byteLevelWords = preTokenizer?.byteLevelWordPattern
        self.decoder = decoder
        self.postProcessor = postProcessor
        self.addedTokens = added.sorted { $0.id < $1.id }
        self.addedByID = Dictionary(added.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        self.addedByContent = Dictionary(added.map { ($0.content, $0.id) }, uniquingKeysWith: { first, _ in first })
        // split_special_tokens: special tokens written in the text are tokenized as ordinary text.
        let matchable = (config?.bool("split_special_tokens", default: false) ?? false) ? added.filter { !$0.special } : added
        self.rawMatcher = AddedTokenMatcher(matchable.filter { !$0.normalized }.map { ($0, $0.content) })
        self.normalizedMatcher = AddedTokenMatcher(matchable.filter(\.normalized).map { token in
            (token, normalizer?.apply(token.content) ?? token.content)
        })
        self.bosToken = bos
        self.eosToken = eos
        self.padToken = pad
        self.unkToken = unk
        self.tokenizerClass = tokenizerClass
    }

    // MARK: Vocabulary

    /// The id of a token string (added tokens first, then the model vocabulary).
    public func id(for token: String) -> Int? { addedByContent[token] ?? model.vocab[token] }

    /// The token string of an id, or nil when the id is outside the vocabulary.
    public func token(for id: Int) -> String? {
        if let added = addedByID[id] { return added.content }
        guard id >= 0, id < model.tokens.count else { return nil }
        return model.tokens[id]
    }

    /// Whether decoding with `skipSpecialTokens` drops this id.
    public func isSpecial(_ id: Int) -> Bool { addedByID[id]?.special ?? false }

    // MARK: Encoding

    /// Token ids of `text`, with the post-processor's BOS/EOS when `addSpecialTokens`.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var ids: [Int] = []
        ids.reserveCapacity(text.utf8.count / 3 + 4)
        forEachToken(text, addSpecialTokens: addSpecialTokens) { id, _ in ids.append(id) }
        return ids
    }

    /// Tokens of `text` with their strings and byte ranges.
    public func encodeTokens(_ text: String, addSpecialTokens: Bool = true) -> [TokenizerToken] {
        var tokens: [TokenizerToken] = []
        forEachToken(text, addSpecialTokens: addSpecialTokens) { id, span in
            tokens.append(TokenizerToken(id: id, token: token(for: id) ?? "", byteRange: span() ?? 0..<0,
                                         isTemplate: span() == nil))
        }
        return tokens
    }

    /// The encoding pipeline: template prefix, added tokens in the raw text, normalizer, added tokens in
    /// the normalized text, pre-tokenizer, BPE, template suffix. `body` gets each id and a closure giving
    /// its input byte span (nil for template tokens), computed only when asked for.
    private func forEachToken(_ text: String, addSpecialTokens: Bool,
                              _ body: (Int, () -> Range<Int>?) -> Void) {
        if addSpecialTokens {
            for id in postProcessor.prefix { body(id, { nil }) }
        }
        var rawSegments: [TokenizerSegment] = []
        rawMatcher.split(AlignedText(text), into: &rawSegments)
        for segment in rawSegments {
            switch segment {
            case .token(let id, let span):
                body(id, { span })
            case .text(let raw):
                let normalized = normalizer?.apply(raw) ?? raw
                var segments: [TokenizerSegment] = []
                normalizedMatcher.split(normalized, into: &segments)
                for piece in segments {
                    switch piece {
                    case .token(let id, let span):
                        body(id, { span })
                    case .text(let normalizedText):
                        if let pattern = byteLevelWords {
                            forEachByteLevelToken(normalizedText, pattern: pattern, body)
                            continue
                        }
                        let words = preTokenizer?.apply([normalizedText]) ?? [normalizedText]
                        for word in words {
                            for piece in model.tokenize(word.scalars) {
                                body(Int(piece.id), { word.span(Int(piece.start)..<Int(piece.end)) })
                            }
                        }
                    }
                }
            }
        }
        if addSpecialTokens {
            for id in postProcessor.suffix { body(id, { nil }) }
        }
    }

    /// Regex words mapped to byte-level characters in one reused buffer; `source` remembers which scalar
    /// of `text` each byte character came from.
    private func forEachByteLevelToken(_ text: AlignedText, pattern: TokenizerPattern,
                                       _ body: (Int, () -> Range<Int>?) -> Void) {
        let alphabet = ByteLevelAlphabet.byteToScalar
        var buffer: [Unicode.Scalar] = []
        var source: [Int32] = []
        for range in pattern.matches(text.scalars) {
            buffer.removeAll(keepingCapacity: true)
            source.removeAll(keepingCapacity: true)
            for k in range {
                UTF8.encode(text.scalars[k]) { byte in
                    buffer.append(alphabet[Int(byte)])
                    source.append(Int32(k))
                }
            }
            for piece in model.tokenize(buffer) {
                body(Int(piece.id), {
                    text.span(Int(source[Int(piece.start)])..<(Int(source[Int(piece.end) - 1]) + 1))
                })
            }
        }
    }

    // MARK: Decoding

    /// Text of `ids` (ids outside the vocabulary are ignored, as in tokenizers).
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var pieces: [String] = []
        pieces.reserveCapacity(ids.count)
        for id in ids {
            if skipSpecialTokens && isSpecial(id) { continue }
            if let text = token(for: id) { pieces.append(text) }
        }
        guard let decoder else { return pieces.joined(separator: " ") }
        return decoder.decodeChain(pieces).joined()
    }

    /// A decoder for generated ids that emits text as soon as it is complete.
    public func streamDecoder(skipSpecialTokens: Bool = false) -> TokenizerStreamDecoder {
        TokenizerStreamDecoder(tokenizer: self, skipSpecialTokens: skipSpecialTokens)
    }
}

/// Incremental decoding for generation: `append(id)` returns the new text the id completes, never a
/// partial UTF-8 sequence (byte tokens are held back until their character is complete), and the
/// concatenation of everything returned plus `finish()` equals `decode(allIDs)`.
public struct TokenizerStreamDecoder: Sendable {
    let tokenizer: Tokenizer
    let skipSpecialTokens: Bool
    /// Recent ids: the ones already emitted as `prefix` come first (kept as context for decoders that
    /// treat the first token specially), then the pending ones.
    private var window: [Int] = []
    private var prefixCount = 0
    private var prefix = ""
    private var prefixScalars = 0

    init(tokenizer: Tokenizer, skipSpecialTokens: Bool) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds one id; returns the text it completes (possibly empty).
    public mutating func append(_ id: Int) -> String {
        window.append(id)
        let text = tokenizer.decode(window, skipSpecialTokens: skipSpecialTokens)
        let scalars = text.unicodeScalars
        guard scalars.count > prefixScalars, scalars.last != "\u{FFFD}",
              scalars.starts(with: prefix.unicodeScalars) else { return "" }
        let delta = String(String.UnicodeScalarView(scalars.dropFirst(prefixScalars)))
        window.removeFirst(prefixCount)
        prefixCount = window.count
        prefix = tokenizer.decode(window, skipSpecialTokens: skipSpecialTokens)
        prefixScalars = prefix.unicodeScalars.count
        return delta
    }

    /// Text still held back (an incomplete character at the end decodes to U+FFFD here, as in `decode`).
    public mutating func finish() -> String {
        let text = tokenizer.decode(window, skipSpecialTokens: skipSpecialTokens)
        window.removeAll()
        prefixCount = 0
        // Whatever follows the part already returned (the common prefix, should a decoder have
        // rewritten earlier text).
        var common = 0
        for (a, b) in zip(text.unicodeScalars, prefix.unicodeScalars) {
            guard a == b else { break }
            common += 1
        }
        let held = String(String.UnicodeScalarView(text.unicodeScalars.dropFirst(common)))
        prefix = ""
        prefixScalars = 0
        return held
    }
}

/// The `post_processor` of tokenizer.json, reduced to what a single sequence needs: ids before and after.
enum TokenizerPostProcessor: Sendable {
    case none
    case template(prefix: [Int], suffix: [Int])

    var prefix: [Int] { if case .template(let p, _) = self { return p } else { return [] } }
    var suffix: [Int] { if case .template(_, let s) = self { return s } else { return [] } }

    static func parse(_ json: TokenizerJSON) throws -> TokenizerPostProcessor {
        let type = try json.requireString("type", in: "post_processor")
        switch type {
        case "ByteLevel":
            return .none  // only adjusts offsets
        case "Sequence":
            var prefix: [Int] = [], suffix: [Int] = []
            for step in try json.objects("processors").map(parse) {
                prefix += step.prefix
                suffix = step.suffix + suffix
            }
            return prefix.isEmpty && suffix.isEmpty ? .none : .template(prefix: prefix, suffix: suffix)
        case "TemplateProcessing":
            guard let single = json["single"] as? [Any] else {
                throw TokenizerError.malformed(file: json.file, detail: "TemplateProcessing has no \"single\" template")
            }
            let specials = (json["special_tokens"] as? [String: Any]) ?? [:]
            var prefix: [Int] = [], suffix: [Int] = []
            var seenSequence = false
            for item in single {
                guard let object = item as? [String: Any] else { continue }
                if object["Sequence"] != nil {
                    seenSequence = true
                } else if let special = object["SpecialToken"] as? [String: Any], let name = special["id"] as? String {
                    guard let entry = specials[name] as? [String: Any],
                          let ids = (entry["ids"] as? [Any])?.compactMap(TokenizerJSON.integer) else {
                        throw TokenizerError.malformed(file: json.file,
                                                       detail: "TemplateProcessing uses \(name.debugDescription) without listing its ids")
                    }
                    if seenSequence { suffix += ids } else { prefix += ids }
                }
            }
            return .template(prefix: prefix, suffix: suffix)
        case "BertProcessing", "RobertaProcessing":
            guard let cls = json["cls"] as? [Any], let sep = json["sep"] as? [Any],
                  let clsID = TokenizerJSON.integer(cls.last), let sepID = TokenizerJSON.integer(sep.last) else {
                throw TokenizerError.malformed(file: json.file, detail: "\(type) lacks cls/sep")
            }
            return .template(prefix: [clsID], suffix: [sepID])
        default:
            throw TokenizerError.unsupported(component: "post-processor", detail: "type \(type)")
        }
    }
}
