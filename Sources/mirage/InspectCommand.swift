import ArgumentParser
import Foundation
import MirageEngine

/// `mirage inspect`: look inside a model.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Look inside a model: tokenization, image preprocessing, next-token logits.",
        subcommands: [
            InspectLogits.self,
            InspectTokens.self,
            InspectPixels.self,
        ])
}

/// `mirage inspect logits`: the next-token distribution after a prompt.
struct InspectLogits: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logits",
        abstract: "Print the top next-token logits after a prompt.",
        discussion: """
        Runs the prompt through the model once and prints the K largest logits of the last position with \
        their token ids, vocabulary strings and log-probabilities (log-softmax over the whole vocabulary). \
        Use --ids to bypass the tokenizer. With --json the output is one object:
          {"model", "prompt_ids", "vocab_size", "top": [{"id", "token", "logit", "logprob"}]}
        (the format external parity checks read).

        Examples:
          mirage inspect logits --model ~/models/Qwen2-0.5B --prompt "The capital of France is" --top 5
          mirage inspect logits --model ~/models/llava-1.5-7b-hf --image cat.jpg --prompt "Is there a dog?" --json
          mirage inspect logits --model ./tiny --ids 1,450,1967 --top 10 --json
        """)

    @OptionGroup var modelOptions: ModelRunOptions

    @OptionGroup var imageOptions: ImageOptions

    @Option(name: .long, help: "The prompt text (encoded with the model's tokenizer).")
    var prompt: String?

    @Option(name: .long, help: ArgumentHelp("Token ids instead of text, comma-separated.", valueName: "ids"))
    var ids: String?

    @Option(name: .long, help: "How many of the largest logits to print.")
    var top = 10

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func validate() throws {
        if (prompt == nil) == (ids == nil) { throw ValidationError("give exactly one of --prompt TEXT or --ids 1,2,3") }
        if top < 1 { throw ValidationError("--top must be at least 1") }
        if imageOptions.image != nil && prompt == nil { throw ValidationError("--image needs --prompt TEXT (the template places the image)") }
    }

    func run() throws {
        let tokenizer = try? modelOptions.loadTokenizer()
        var promptIDs: [Int]
        if let ids {
            promptIDs = try parseTokenIDs(ids)
        } else {
            guard let tokenizer else {
                throw ValidationError("no tokenizer.json in \(modelOptions.model): pass token ids with --ids instead of --prompt")
            }
            promptIDs = tokenizer.encode(prompt!)
            guard !promptIDs.isEmpty else { throw ValidationError("the prompt encodes to no tokens") }
        }
        var items = promptIDs.map { PromptItem.token($0) }
        let model: LanguageModel
        if imageOptions.image != nil, let tokenizer {
            let (vlm, built) = try imageOptions.visionPrompt(model: modelOptions, prompt: prompt!, tokenizer: tokenizer)
            (model, items, promptIDs) = (vlm.languageModel, built.items, built.tokenIDs)
        } else {
            model = try modelOptions.loadModel()
        }
        let output = try model.makeSession().append(items)
        let logits = Array(output.logits(0))
        let maxLogit = Double(logits.max() ?? 0)
        let logSum = maxLogit + log(logits.reduce(0.0) { $0 + exp(Double($1) - maxLogit) })
        let order = logits.indices.sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        let best = order.prefix(top)
        if json {
            let entries: [[String: Any]] = best.map { id in
                ["id": id, "token": tokenizer?.token(for: id) ?? NSNull(),
                 "logit": Double(logits[id]), "logprob": Double(logits[id]) - logSum]
            }
            let object: [String: Any] = ["model": modelOptions.model, "prompt_ids": promptIDs, "vocab_size": logits.count, "top": entries]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("prompt: \(promptIDs.count) tokens \(promptIDs.prefix(16).map(String.init).joined(separator: " "))\(promptIDs.count > 16 ? " …" : "")")
            print("  rank      id      logit    logprob  token")
            for (rank, id) in best.enumerated() {
                let token = tokenizer?.token(for: id).map { "\($0.debugDescription)" } ?? ""
                print(String(format: "%6d %7d %10.4f %10.4f  ", rank + 1, id, logits[id], Double(logits[id]) - logSum) + token)
            }
        }
    }
}
