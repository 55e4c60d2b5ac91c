import Foundation

/// Why a tokenizer could not be loaded or used. Every case says what to do about it.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// The model folder has no `tokenizer.json`.
    case missingFile(path: String)
    /// A tokenizer file is not valid JSON or lacks a required field.
    case malformed(file: String, detail: String)
    /// The file names a component (model, normalizer, pre-tokenizer, decoder, post-processor) or an
    /// option of one that Mirage does not implement.
    case unsupported(component: String, detail: String)
    /// A special token named in the configuration is not in the vocabulary.
    case unknownToken(String)

    public var description: String {
        switch self {
        case .missingFile(let path):
            return "no tokenizer.json (nor a SentencePiece tokenizer.model) at \(path): point --model at a Hugging Face "
                + "model folder that contains one of them (models saved with a fast tokenizer have tokenizer.json; LLaMA-era "
                + "checkpoints have tokenizer.model)"
        case .malformed(let file, let detail):
            return "\(file) is malformed: \(detail). Re-download or re-save the tokenizer files."
        case .unsupported(let component, let detail):
            return "unsupported tokenizer \(component): \(detail). Mirage implements BPE tokenizers "
                + "(SentencePiece-style Llama and byte-level GPT-2/Qwen2); convert the tokenizer to one of these."
        case .unknownToken(let token):
            return "special token \(token.debugDescription) is not in the vocabulary: fix tokenizer_config.json "
                + "or special_tokens_map.json so it names a token of tokenizer.json"
        }
    }
}

/// Reading `[String: Any]` trees produced by `JSONSerialization`, with errors naming the file.
struct TokenizerJSON {
    let file: String
    let object: [String: Any]

    init(file: String, object: [String: Any]) {
        self.file = file
        self.object = object
    }

    static func parse(_ data: Data, file: String) throws -> TokenizerJSON {
        guard let object = try TokenizerJSONParser.parse(data, file: file) as? [String: Any] else {
            throw TokenizerError.malformed(file: file, detail: "the top level is not a JSON object")
        }
        return TokenizerJSON(file: file, object: object)
    }

    /// An integer written as a JSON number.
    static func integer(_ value: Any?) -> Int? {
        switch value {
        case let number as Int: return number
        case let number as Double: return number.rounded() == number ? Int(exactly: number) : nil
        case let number as NSNumber: return number.intValue
        default: return nil
        }
    }

    /// Any JSON number as a Double.
    static func number(_ value: Any?) -> Double? {
        switch value {
        case let number as Int: return Double(number)
        case let number as Double: return number
        case let number as NSNumber: return number.doubleValue
        default: return nil
        }
    }

    func child(_ object: [String: Any]) -> TokenizerJSON { TokenizerJSON(file: file, object: object) }

    subscript(key: String) -> Any? {
        guard let value = object[key] else { return nil }
        // A type comparison, not `is NSNull`: a cast would bridge large dictionaries to NSDictionary.
        return type(of: value) == NSNull.self ? nil : value
    }

    func string(_ key: String) -> String? { self[key] as? String }

    func bool(_ key: String, default fallback: Bool) -> Bool {
        if let value = self[key] as? Bool { return value }
        if let value = self[key] as? Int { return value != 0 }
        return fallback
    }

    func int(_ key: String) -> Int? { Self.integer(self[key]) }

    func requireString(_ key: String, in context: String) throws -> String {
        guard let value = string(key) else {
            throw TokenizerError.malformed(file: file, detail: "\(context) has no string field \"\(key)\"")
        }
        return value
    }

    func objects(_ key: String) -> [TokenizerJSON] {
        ((self[key] as? [Any]) ?? []).compactMap { $0 as? [String: Any] }.map(child)
    }

    /// A special token written either as a plain string or as an AddedToken object `{"content": ...}`.
    func tokenContent(_ key: String) -> String? {
        if let text = self[key] as? String { return text }
        if let object = self[key] as? [String: Any] { return object["content"] as? String }
        return nil
    }
}
