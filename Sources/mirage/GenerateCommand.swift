import ArgumentParser
import Foundation
import MirageEngine

/// `mirage generate`: greedy text generation, streamed as tokens arrive.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text greedily from a prompt with a local Llama or Qwen2 model.",
        discussion: """
        Encodes PROMPT with the model's tokenizer (BOS added when the tokenizer's template adds it; no chat \
        template is applied: write it into the prompt if the model needs one), then appends the most likely \
        token until --max-new-tokens or an end-of-sequence token (generation_config.json). Text is printed \
        as it is produced; timing goes to standard error.

        This is transformers' generate(do_sample=False, num_beams=1) on the CPU.

        Examples:
          mirage generate --model ~/models/Qwen2-0.5B --prompt "The capital of France is"
          mirage generate --model ./tiny --prompt "<|im_start|>user\\nHi<|im_end|>\\n" --max-new-tokens 64 --quantize q8
        """)

    @OptionGroup var modelOptions: ModelRunOptions

    @Option(name: .long, help: "The prompt text.")
    var prompt: String

    @Option(name: .long, help: "Stop after this many new tokens.")
    var maxNewTokens = 128

    @Flag(name: .long, help: "Do not stop at end-of-sequence tokens.")
    var ignoreEos = false

    @Flag(name: .long, help: "Print the generated token ids (one JSON array) instead of text.")
    var ids = false

    func validate() throws {
        if maxNewTokens < 1 { throw ValidationError("--max-new-tokens must be at least 1") }
    }

    func run() throws {
        let tokenizer = try modelOptions.loadTokenizer()
        let model = try modelOptions.loadModel()
        let promptIDs = tokenizer.encode(prompt)
        guard !promptIDs.isEmpty else { throw ValidationError("the prompt encodes to no tokens; give some text") }
        var decoder = tokenizer.streamDecoder(skipSpecialTokens: true)
        let out = FileHandle.standardOutput
        let start = DispatchTime.now().uptimeNanoseconds
        var firstTokenAt: UInt64 = 0
        let tokens = try greedyDecode(model: model, prompt: promptIDs.map { .token($0) }, maxNewTokens: maxNewTokens,
                                      stopTokens: ignoreEos ? [] : Set(model.eosTokenIDs)) { id in
            if firstTokenAt == 0 { firstTokenAt = DispatchTime.now().uptimeNanoseconds }
            if !ids { out.write(Data(decoder.append(id).utf8)) }
            return true
        }
        let end = DispatchTime.now().uptimeNanoseconds
        if ids {
            print("[" + tokens.map(String.init).joined(separator: ",") + "]")
        } else {
            out.write(Data((decoder.finish() + "\n").utf8))
        }
        let prefill = Double(firstTokenAt - start) / 1e9
        let decode = Double(end - firstTokenAt) / 1e9
        let rate = tokens.count > 1 ? Double(tokens.count - 1) / decode : 0
        FileHandle.standardError.write(Data(String(
            format: "[%d prompt tokens in %.3f s, %d new tokens, %.1f tokens/s]\n",
            promptIDs.count, prefill, tokens.count, rate).utf8))
    }
}
