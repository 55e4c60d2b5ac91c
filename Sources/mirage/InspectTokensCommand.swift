import ArgumentParser
import Foundation
import MirageEngine
import MirageTokenizers

/// `mirage inspect tokens`: how a model's tokenizer splits a text.
struct InspectTokens: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens",
        abstract: "Show how a model's tokenizer splits a text: ids, token strings and byte spans.",
        discussion: """
        Reads tokenizer.json, tokenizer_config.json and special_tokens_map.json from the model folder and \
        encodes TEXT exactly as transformers' AutoTokenizer does (special tokens written in the text, such \
        as <image> or <|im_start|>, are matched; BOS/EOS come from the post-processor).

        Each line shows the token id, the vocabulary string (▁ marks a SentencePiece space, Ġ/Ċ are the \
        byte-level space/newline, <0xNN> a byte-fallback byte), the UTF-8 byte span of TEXT it covers, and \
        the text of that span. Tokens added by the template (BOS/EOS) have no span.

        Examples:
          mirage inspect tokens --model ~/llava-1.5 $'USER: <image>\\nWhat is it?'
          (bash's $'...' turns \\n into a newline; the text is taken literally)
          mirage inspect tokens --model ./qwen2 --json "naïve café 😀"
          mirage inspect tokens --model ./qwen2 --ids 9707 11 1879
        """
    )

    @Option(name: .long, help: ArgumentHelp("Model folder containing tokenizer.json.", valueName: "dir"))
    var model: String

    @Flag(name: .long, help: "Print JSON: {\"ids\": [...], \"tokens\": [{\"id\", \"token\", \"start\", \"end\", \"text\", \"special\"}], \"decoded\"}.")
    var json = false

    @Flag(name: .long, help: "Encode without the post-processor's BOS/EOS.")
    var noSpecialTokens = false

    @Flag(name: .long, help: "Treat the arguments as token ids and decode them instead.")
    var ids = false

    @Flag(name: .long, help: "With --ids: drop special tokens from the decoded text.")
    var skipSpecialTokens = false

    @Argument(help: ArgumentHelp("The text to encode (several arguments are joined with spaces), or ids with --ids.",
                                 valueName: "text"))
    var text: [String]

    func validate() throws {
        if text.isEmpty { throw ValidationError("give the text to tokenize (quote it), or token ids with --ids") }
        if ids, text.contains(where: { Int($0) == nil }) {
            throw ValidationError("--ids expects integer token ids, e.g. --ids 1 450 1967")
        }
    }

    func run() throws {
        let tokenizer = try Tokenizer(folder: URL(fileURLWithPath: (model as NSString).expandingTildeInPath))
        if ids {
            let values = text.compactMap { Int($0) }
            let decoded = tokenizer.decode(values, skipSpecialTokens: skipSpecialTokens)
            if json {
                let tokens = values.map { ["id": $0, "token": tokenizer.token(for: $0) ?? NSNull(),
                                           "special": tokenizer.isSpecial($0)] as [String: Any] }
                try printJSON(["ids": values, "tokens": tokens, "decoded": decoded])
            } else {
                for id in values {
                    print(String(format: "%8d  ", id) + display(tokenizer.token(for: id) ?? "(not in vocabulary)"))
                }
                print("decoded: \(decoded.debugDescription)")
            }
            return
        }
        let input = text.joined(separator: " ")
        let tokens = tokenizer.encodeTokens(input, addSpecialTokens: !noSpecialTokens)
        let utf8 = Array(input.utf8)
        func spanText(_ token: TokenizerToken) -> String {
            token.isTemplate ? "" : String(decoding: utf8[token.byteRange], as: UTF8.self)
        }
        if json {
            let items: [[String: Any]] = tokens.map { token in
                var item: [String: Any] = ["id": token.id, "token": token.token, "text": spanText(token),
                                           "special": tokenizer.isSpecial(token.id)]
                if token.isTemplate {
                    item["start"] = NSNull(); item["end"] = NSNull()
                } else {
                    item["start"] = token.byteRange.lowerBound; item["end"] = token.byteRange.upperBound
                }
                return item
            }
            try printJSON(["ids": tokens.map(\.id), "tokens": items,
                           "decoded": tokenizer.decode(tokens.map(\.id))])
            return
        }
        print("\(tokens.count) tokens  ids: \(tokens.map(\.id))")
        print("      id  token                 bytes      text")
        for token in tokens {
            let span = token.isTemplate ? "template" : "\(token.byteRange.lowerBound)..<\(token.byteRange.upperBound)"
            let column = display(token.token)
            let padded = column + String(repeating: " ", count: max(1, 22 - column.count))
            print(String(format: "%8d  ", token.id) + padded + span.padding(toLength: 11, withPad: " ", startingAt: 0)
                  + spanText(token).debugDescription)
        }
    }

    /// Token strings with invisible characters made visible.
    private func display(_ token: String) -> String {
        var out = ""
        for scalar in token.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.properties.generalCategory == .control || scalar.properties.generalCategory == .format {
                    out += String(format: "\\u{%X}", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    private func printJSON(_ object: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        print(String(decoding: data, as: UTF8.self))
    }
}
