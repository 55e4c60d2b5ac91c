/// How a Metaspace pre-tokenizer prepends its replacement character.
enum TokenizerPrependScheme: String, Sendable {
    case always, first, never
}

/// How Split treats the pieces its pattern matches (tokenizers' `SplitDelimiterBehavior`).
enum TokenizerSplitBehavior: String, Sendable {
    case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"
}

/// What Split searches for.
enum TokenizerSplitPattern: Sendable {
    case regex(TokenizerPattern)
    case literal([Unicode.Scalar])

    func matches(_ s: [Unicode.Scalar]) -> [Range<Int>] {
        switch self {
        case .regex(let pattern): return pattern.matches(s)
        case .literal(let needle):
            guard !needle.isEmpty else { return [] }
            var result: [Range<Int>] = []
            var i = 0
            while i + needle.count <= s.count {
                if s[i..<(i + needle.count)].elementsEqual(needle) {
                    result.append(i..<(i + needle.count))
                    i += needle.count
                } else {
                    i += 1
                }
            }
            return result
        }
    }
}

/// The `pre_tokenizer` of tokenizer.json: splits normalized text into the words BPE sees.
indirect enum TokenizerPreTokenizer: Sendable {
    case sequence([TokenizerPreTokenizer])
    case metaspace(replacement: Unicode.Scalar, prepend: TokenizerPrependScheme, split: Bool)
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case split(TokenizerSplitPattern, behavior: TokenizerSplitBehavior, invert: Bool)
    /// Digits(individual_digits)
    case digits(individual: Bool)

    static func parse(_ json: TokenizerJSON) throws -> TokenizerPreTokenizer {
        let type = try json.requireString("type", in: "pre_tokenizer")
        switch type {
        case "Sequence":
            return .sequence(try json.objects("pretokenizers").map(parse))
        case "Metaspace":
            let replacement = try json.requireString("replacement", in: "Metaspace pre-tokenizer")
            guard replacement.unicodeScalars.count == 1, let scalar = replacement.unicodeScalars.first else {
                throw TokenizerError.malformed(file: json.file, detail: "Metaspace replacement must be one character")
            }
            let scheme: TokenizerPrependScheme
            if let name = json.string("prepend_scheme") {
                guard let parsed = TokenizerPrependScheme(rawValue: name) else {
                    throw TokenizerError.unsupported(component: "Metaspace pre-tokenizer", detail: "prepend_scheme \(name)")
                }
                scheme = parsed
            } else {  // files older than tokenizers 0.14
                scheme = json.bool("add_prefix_space", default: true) ? .always : .never
            }
            return .metaspace(replacement: scalar, prepend: scheme, split: json.bool("split", default: true))
        case "ByteLevel":
            return .byteLevel(addPrefixSpace: json.bool("add_prefix_space", default: true),
                              useRegex: json.bool("use_regex", default: true))
        case "Split":
            guard let pattern = json["pattern"] as? [String: Any] else {
                throw TokenizerError.malformed(file: json.file, detail: "Split pre-tokenizer has no pattern")
            }
            let splitPattern: TokenizerSplitPattern
            if let literal = pattern["String"] as? String {
                splitPattern = .literal(Array(literal.unicodeScalars))
            } else if let regex = pattern["Regex"] as? String {
                guard let scanner = TokenizerPattern(regex: regex) else {
                    throw TokenizerError.unsupported(
                        component: "Split pre-tokenizer",
                        detail: "regex \(regex.debugDescription) (Mirage has exact scanners for the GPT-2, Qwen2 and Llama-3 patterns)")
                }
                splitPattern = .regex(scanner)
            } else {
                throw TokenizerError.malformed(file: json.file, detail: "Split pattern is neither String nor Regex")
            }
            let behaviorName = json.string("behavior") ?? "Isolated"
            guard let behavior = TokenizerSplitBehavior(rawValue: behaviorName) else {
                throw TokenizerError.unsupported(component: "Split pre-tokenizer", detail: "behavior \(behaviorName)")
            }
            return .split(splitPattern, behavior: behavior, invert: json.bool("invert", default: false))
        case "Digits":
            return .digits(individual: json.bool("individual_digits", default: false))
        default:
            throw TokenizerError.unsupported(component: "pre-tokenizer", detail: "type \(type)")
        }
    }

    /// The word pattern when this pre-tokenizer is exactly "split on a regex, then map bytes"
    /// (ByteLevel with its GPT-2 regex, or Split(regex, Isolated) followed by ByteLevel without regex),
    /// in both cases without a prefix space.
    var byteLevelWordPattern: TokenizerPattern? {
        switch self {
        case .byteLevel(addPrefixSpace: false, useRegex: true):
            return .gpt2
        case .sequence(let steps) where steps.count == 2:
            guard case .split(.regex(let pattern), behavior: .isolated, invert: false) = steps[0],
                  case .byteLevel(addPrefixSpace: false, useRegex: false) = steps[1] else { return nil }
            return pattern
        default:
            return nil
        }
    }

    /// Splits every piece; empty pieces are dropped, as in tokenizers.
    func apply(_ pieces: [AlignedText]) -> [AlignedText] {
        switch self {
        case .sequence(let steps):
            return steps.reduce(pieces) { $1.apply($0) }
        default:
            var result: [AlignedText] = []
            result.reserveCapacity(pieces.count)
            for piece in pieces { apply(piece, into: &result) }
            return result
        }
    }

    private func apply(_ piece: AlignedText, into result: inout [AlignedText]) {
        switch self {
        case .sequence:
            result += apply([piece])
        case .metaspace(let replacement, let prepend, let split):
            var text = piece
            for i in 0..<text.count where text.scalars[i] == " " { text.scalars[i] = replacement }
            let startsWithReplacement = text.scalars.first == replacement
            let shouldPrepend: Bool
            switch prepend {
            case .always: shouldPrepend = !startsWithReplacement
            case .first: shouldPrepend = !startsWithReplacement && piece.origin == 0
            case .never: shouldPrepend = false
            }
            if shouldPrepend, !text.isEmpty { text.prepend(replacement) }
            guard split else { if !text.isEmpty { result.append(text) }; return }
            // MergedWithNext on the replacement character: each one starts a new word.
            var start = 0
            for i in 0..<text.count where text.scalars[i] == replacement && i > start {
                result.append(text[start..<i])
                start = i
            }
            if start < text.count { result.append(text[start..<text.count]) }
        case .byteLevel(let addPrefixSpace, let useRegex):
            var text = piece
            if addPrefixSpace, text.scalars.first != " ", !text.isEmpty { text.prepend(" ") }
            let words = useRegex ? TokenizerPattern.gpt2.matches(text.scalars).map { text[$0] } : [text]
            for word in words where !word.isEmpty { result.append(ByteLevelAlphabet.encode(word)) }
        case .split(let pattern, let behavior, let invert):
            Self.split(piece, matches: pattern.matches(piece.scalars), behavior: behavior, invert: invert, into: &result)
        case .digits(let individual):
            var matches: [Range<Int>] = []
            var i = 0
            while i < piece.count {
                guard TokenizerUnicode.isNumber(piece.scalars[i]) else { i += 1; continue }
                var j = i + 1
                if !individual { while j < piece.count && TokenizerUnicode.isNumber(piece.scalars[j]) { j += 1 } }
                matches.append(i..<j)
                i = j
            }
            Self.split(piece, matches: matches, behavior: .isolated, invert: false, into: &result)
        }
    }

    /// tokenizers' `NormalizedString::split` given the pattern's matches.
    private static func split(_ text: AlignedText, matches: [Range<Int>], behavior: TokenizerSplitBehavior,
                              invert: Bool, into result: inout [AlignedText]) {
        // (range, isMatch) tiling the text.
        var parts: [(Range<Int>, Bool)] = []
        var cursor = 0
        for match in matches where !match.isEmpty {
            if match.lowerBound > cursor { parts.append((cursor..<match.lowerBound, invert)) }
            parts.append((match, !invert))
            cursor = match.upperBound
        }
        if cursor < text.count { parts.append((cursor..<text.count, invert)) }

        var ranges: [Range<Int>] = []
        switch behavior {
        case .removed:
            ranges = parts.filter { !$0.1 }.map(\.0)
        case .isolated:
            ranges = parts.map(\.0)
        case .mergedWithPrevious:
            // A match joins the piece before it, unless that piece is a match too.
            var previousIsMatch = false
            for (range, isMatch) in parts {
                if isMatch, !previousIsMatch, let last = ranges.popLast() {
                    ranges.append(last.lowerBound..<range.upperBound)
                } else {
                    ranges.append(range)
                }
                previousIsMatch = isMatch
            }
        case .contiguous:
            // Neighbours of the same kind join (with invert, runs of delimiters do).
            var previousIsMatch = false
            for (index, (range, isMatch)) in parts.enumerated() {
                if index > 0, isMatch == previousIsMatch, let last = ranges.popLast() {
                    ranges.append(last.lowerBound..<range.upperBound)
                } else {
                    ranges.append(range)
                }
                previousIsMatch = isMatch
            }
        case .mergedWithNext:
            var pending: Int? = nil
            for (range, isMatch) in parts {
                if isMatch {
                    if let start = pending { ranges.append(start..<range.lowerBound) }
                    pending = range.lowerBound
                } else {
                    ranges.append((pending ?? range.lowerBound)..<range.upperBound)
                    pending = nil
                }
            }
            if let start = pending { ranges.append(start..<text.count) }
        }
        for range in ranges where !range.isEmpty { result.append(text[range]) }
    }
}

/// GPT-2's reversible map between bytes and printable Unicode characters (ByteLevel pre-tokenizer and
/// decoder): bytes `!`...`~`, `¡`...`¬`, `®`...`ÿ` map to themselves, the other 68 bytes to U+0100 onwards
/// in byte order (source: openai/gpt-2 encoder.py `bytes_to_unicode`, reproduced by tokenizers).
enum ByteLevelAlphabet {
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
            if printable {
                table[byte] = Unicode.Scalar(UInt32(byte))!
            } else {
                table[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// Scalar value → byte, for the 256 scalars of the alphabet (values below 0x144).
    static let scalarToByte: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (byte, scalar) in byteToScalar.enumerated() { table[Int(scalar.value)] = Int16(byte) }
        return table
    }()

    @inline(__always) static func byte(for scalar: Unicode.Scalar) -> UInt8? {
        let v = Int(scalar.value)
        guard v < scalarToByte.count, scalarToByte[v] >= 0 else { return nil }
        return UInt8(scalarToByte[v])
    }

    /// Each scalar's UTF-8 bytes as alphabet characters, all aligned with the scalar.
    static func encode(_ text: AlignedText) -> AlignedText {
        var result = AlignedText.empty(origin: text.origin)
        let capacity = text.scalars.reduce(0) { $0 + UTF8.width($1) }
        result.scalars.reserveCapacity(capacity)
        result.starts.reserveCapacity(capacity)
        result.ends.reserveCapacity(capacity)
        for i in 0..<text.count {
            let start = text.starts[i], end = text.ends[i]
            UTF8.encode(text.scalars[i]) { byte in result.append(byteToScalar[Int(byte)], start: start, end: end) }
        }
        return result
    }

    /// Bytes of a token written in the alphabet, or its own UTF-8 when some character is outside it
    /// (as tokenizers' ByteLevel decoder does for added tokens).
    static func decode(_ token: String, into bytes: inout [UInt8]) {
        var decoded: [UInt8] = []
        decoded.reserveCapacity(token.utf8.count)
        for scalar in token.unicodeScalars {
            guard let byte = byte(for: scalar) else {
                bytes += Array(token.utf8)
                return
            }
            decoded.append(byte)
        }
        bytes += decoded
    }
}
