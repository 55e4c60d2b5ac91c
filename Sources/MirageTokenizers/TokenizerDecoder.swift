import Foundation

/// The `decoder` of tokenizer.json: turns token strings back into text.
indirect enum TokenizerDecoder: Sendable {
    case sequence([TokenizerDecoder])
    case replace(pattern: String, content: String)
    /// `<0xNN>` tokens to bytes; runs of them become one string, or U+FFFD per byte when not valid UTF-8.
    case byteFallback
    case fuse
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    case byteLevel
    case metaspace(replacement: Unicode.Scalar, prepend: TokenizerPrependScheme)

    static func parse(_ json: TokenizerJSON) throws -> TokenizerDecoder {
        let type = try json.requireString("type", in: "decoder")
        switch type {
        case "Sequence":
            return .sequence(try json.objects("decoders").map(parse))
        case "Replace":
            return .replace(pattern: try TokenizerNormalizer.stringPattern(json, component: "Replace decoder"),
                            content: try json.requireString("content", in: "Replace decoder"))
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Strip":
            let content = try json.requireString("content", in: "Strip decoder")
            guard content.unicodeScalars.count == 1, let character = content.unicodeScalars.first else {
                throw TokenizerError.malformed(file: json.file, detail: "Strip decoder content must be one character")
            }
            return .strip(content: character, start: json.int("start") ?? 0, stop: json.int("stop") ?? 0)
        case "ByteLevel": return .byteLevel
        case "Metaspace":
            let replacement = try json.requireString("replacement", in: "Metaspace decoder")
            guard replacement.unicodeScalars.count == 1, let character = replacement.unicodeScalars.first else {
                throw TokenizerError.malformed(file: json.file, detail: "Metaspace replacement must be one character")
            }
            let scheme = json.string("prepend_scheme").flatMap(TokenizerPrependScheme.init(rawValue:))
                ?? (json.bool("add_prefix_space", default: true) ? .always : .never)
            return .metaspace(replacement: character, prepend: scheme)
        default:
            throw TokenizerError.unsupported(component: "decoder", detail: "type \(type)")
        }
    }

    /// tokenizers' `decode_chain`: token strings in, token strings out.
    func decodeChain(_ tokens: [String]) -> [String] {
        switch self {
        case .sequence(let steps):
            return steps.reduce(tokens) { $1.decodeChain($0) }
        case .replace(let pattern, let content):
            let needle = Array(pattern.unicodeScalars), replacement = Array(content.unicodeScalars)
            return tokens.map { token in
                guard !needle.isEmpty else { return token }
                let scalars = Array(token.unicodeScalars)
                var out = String.UnicodeScalarView()
                var i = 0
                while i < scalars.count {
                    if scalars[i] == needle[0], i + needle.count <= scalars.count,
                       scalars[i..<(i + needle.count)].elementsEqual(needle) {
                        out.append(contentsOf: replacement)
                        i += needle.count
                    } else {
                        out.append(scalars[i])
                        i += 1
                    }
                }
                return String(out)
            }
        case .byteFallback:
            var result: [String] = []
            result.reserveCapacity(tokens.count)
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if let text = String(validatingUTF8Bytes: pending) {
                    result.append(text)
                } else {
                    result.append(contentsOf: repeatElement("\u{FFFD}", count: pending.count))
                }
                pending.removeAll(keepingCapacity: true)
            }
            for token in tokens {
                if let byte = Self.fallbackByte(token) {
                    pending.append(byte)
                } else {
                    flush()
                    result.append(token)
                }
            }
            flush()
            return result
        case .fuse:
            return [tokens.joined()]
        case .strip(let content, let start, let stop):
            return tokens.map { token in
                var scalars = Substring(token).unicodeScalars
                var removed = 0
                while removed < start, scalars.first == content { scalars.removeFirst(); removed += 1 }
                removed = 0
                while removed < stop, scalars.last == content { scalars.removeLast(); removed += 1 }
                return String(scalars)
            }
        case .byteLevel:
            var bytes: [UInt8] = []
            for token in tokens { ByteLevelAlphabet.decode(token, into: &bytes) }
            return [String(decoding: bytes, as: UTF8.self)]
        case .metaspace(let replacement, let prepend):
            return tokens.enumerated().map { index, token in
                var out = String.UnicodeScalarView()
                for scalar in token.unicodeScalars {
                    if scalar == replacement {
                        if index == 0 && prepend != .never { continue }
                        out.append(" ")
                    } else {
                        out.append(scalar)
                    }
                }
                return String(out)
            }
        }
    }

    /// The byte of a `<0xNN>` token (hex digits in either case, as tokenizers accepts).
    static func fallbackByte(_ token: String) -> UInt8? {
        let utf8 = token.utf8
        guard utf8.count == 6, token.hasPrefix("<0x"), token.hasSuffix(">") else { return nil }
        let digits = token.dropFirst(3).prefix(2)
        return UInt8(digits, radix: 16)
    }
}

extension String {
    /// The string when `bytes` are valid UTF-8, else nil.
    init?(validatingUTF8Bytes bytes: [UInt8]) {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var scalars = String.UnicodeScalarView()
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): scalars.append(scalar)
            case .emptyInput: break loop
            case .error: return nil
            }
        }
        self = String(scalars)
    }
}
