import ArgumentParser
import Foundation
import MirageDecoding
import MirageEngine
import MirageModels

/// `mirage generate`: run any decoder on a prompt (text, or precomputed embeddings with an image span).
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text from a prompt with a local Llama or Qwen2 model and any decoder.",
        discussion: """
        The prompt is either --prompt TEXT, encoded with the model's tokenizer (BOS added when the tokenizer's \
        template adds it; no chat template is applied: write it into the prompt if the model needs one), or \
        --embeds FILE: precomputed input embeddings with a marked image span (the layout of the OPERA golden \
        cases), run on the language model directly.

        --decoder picks the method (`mirage decoders` lists them with their parameters, defaults, presets and \
        the paper each default comes from); --preset applies a named set of values; --param k=v overrides one. \
        EOS tokens come from generation_config.json. Timing goes to standard error.

        --embeds FILE is a JSON object (or an opera-golden case, whose "input" object is read) with:
          inputs_embeds                 [[Float]] rows × hidden size (required)
          image_positions_inclusive     [first, last] rows of the image (optional; OPERA needs it)
          input_ids                     what transformers' input_ids holds (optional; default [bos], the dummy
                                        BOS transformers 4.29 puts there for an inputs_embeds prompt)

        Examples:
          mirage generate --model ~/models/Qwen2-0.5B --prompt "The capital of France is"
          mirage generate --model ~/models/llava-1.5-7b-hf --image cat.jpg --prompt "Describe this image." \\
              --decoder opera --preset opera-paper
          mirage generate --model ./tiny --prompt "<|im_start|>user\\nHi<|im_end|>\\n" --max-new-tokens 64 --quantize q8
          mirage generate --model ./tiny --prompt "a photo of" --decoder beam --preset halc-baseline
          mirage generate --model ./tiny --prompt "a photo of" --decoder sample --param top_p=0.9 --seed 1 --item img42
          mirage generate --model ./tiny --prompt "a photo of" --decoder vcd --branch-prompt contrast="a blurry photo of"
          mirage generate --model ../shared/data/opera-golden/models/tiny_llama_L2 \\
              --embeds ../shared/data/opera-golden/cases/L2_in101_beam_b5_n64.json --decoder beam --max-new-tokens 64 --json
        """)

    @OptionGroup var modelOptions: ModelRunOptions

    @OptionGroup var imageOptions: ImageOptions

    @Option(name: .long, help: "The prompt text.")
    var prompt: String?

    @Option(name: .long, help: ArgumentHelp("Prompt as input embeddings with an image span (JSON; see above).", valueName: "file"))
    var embeds: String?

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp(
        "A branch prompt from an embeddings file (repeatable), e.g. contrast=noised.json for VCD.", valueName: "role=file"))
    var branch: [String] = []

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp(
        "A branch prompt as text (repeatable), e.g. contrast=\"You are a confused objects detector...\" for ICD.", valueName: "role=text"))
    var branchPrompt: [String] = []

    @Option(name: .long, help: ArgumentHelp("Decoding method (see `mirage decoders`).", valueName: "name"))
    var decoder = "greedy"

    @Option(name: .long, help: ArgumentHelp("Named parameter set of the decoder, e.g. opera-paper.", valueName: "name"))
    var preset: String?

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp("Set one decoder parameter (repeatable), e.g. --param num_beams=3.", valueName: "k=v"))
    var param: [String] = []

    @Option(name: .long, help: "Stop after this many new tokens (at most what the model's context leaves after the prompt).")
    var maxNewTokens = 128

    @Option(name: .long, help: "Mask end-of-sequence tokens until this many tokens exist (transformers' min_new_tokens).")
    var minNewTokens = 0

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp("Stop once the response contains this text (repeatable).", valueName: "text"))
    var stop: [String] = []

    @Option(name: .long, parsing: .unconditional, help: "Run seed of sampling decoders (a non-negative integer).",
            transform: parseSeed)
    var seed: UInt64 = 0

    @Option(name: .long, help: ArgumentHelp("Item id mixed into the seed: the same item draws the same numbers in any run order.", valueName: "id"))
    var item = "0"

    @Flag(name: .long, help: "Do not stop at end-of-sequence tokens.")
    var ignoreEos = false

    @Flag(name: .long, help: "Print the generated token ids (one JSON array) instead of text.")
    var ids = false

    @Flag(name: .long, help: "Print one JSON object: decoder, parameters, tokens, text, stop reason, passes, timing, trace.")
    var json = false

    func validate() throws {
        if maxNewTokens < 1 { throw ValidationError("--max-new-tokens must be at least 1") }
        if minNewTokens < 0 { throw ValidationError("--min-new-tokens must be at least 0") }
        if (prompt == nil) == (embeds == nil) { throw ValidationError("give exactly one of --prompt TEXT and --embeds FILE") }
        for p in param where !p.contains("=") {
            throw ValidationError("--param takes name=value (got '\(p)'); see `mirage decoders` for names")
        }
        for b in branch + branchPrompt where !b.contains("=") {
            throw ValidationError("--branch and --branch-prompt take role=value (got '\(b)'), e.g. contrast=noised.json")
        }
    }

    func run() throws {
        func split(_ p: String) -> (String, String) {
            let i = p.firstIndex(of: "=")!
            return (String(p[..<i]), String(p[p.index(after: i)...]))
        }
        let overrides = param.map(split)
        let decoder: any Decoder
        do {
            decoder = try DecoderRegistry.standard.makeDecoder(self.decoder, preset: preset, overrides: overrides)
        } catch let e as DecodingError {
            throw ValidationError(e.description)
        }
        let hasTokenizer = FileManager.default.fileExists(atPath: modelOptions.folder.appendingPathComponent("tokenizer.json").path)
        let tokenizer = hasTokenizer ? try modelOptions.loadTokenizer() : nil
        let model: LanguageModel
        let layout: PromptLayout
        var visionModel: (any VisionLanguageModel)?
        if imageOptions.image != nil {
            guard let prompt, let tokenizer else {
                throw ValidationError("--image needs --prompt TEXT and the model's tokenizer.json")
            }
            let (vlm, built) = try imageOptions.visionPrompt(model: modelOptions, prompt: prompt, tokenizer: tokenizer)
            visionModel = vlm
            model = vlm.languageModel
            layout = PromptLayout(items: built.items, imageSpan: built.imageSpan, inputIDs: built.inputIDs)
        } else if let prompt {
            model = try modelOptions.loadModel()
            guard let tokenizer else {
                throw ValidationError("\(modelOptions.folder.path) has no tokenizer.json; give the prompt as --embeds FILE instead")
            }
            let promptIDs = tokenizer.encode(prompt)
            guard !promptIDs.isEmpty else { throw ValidationError("the prompt encodes to no tokens; give some text") }
            layout = PromptLayout(tokens: promptIDs)
        } else {
            model = try modelOptions.loadModel()
            layout = try EmbeddingsPrompt.load(path: embeds!, hiddenSize: model.config.hiddenSize,
                                               defaultInputIDs: model.bosTokenID.map { [$0] } ?? [])
        }
        var branches: [String: PromptLayout] = [:]
        for (role, file) in branch.map(split) {
            branches[role] = try EmbeddingsPrompt.load(path: file, option: "--branch \(role)", hiddenSize: model.config.hiddenSize,
                                                       defaultInputIDs: model.bosTokenID.map { [$0] } ?? [])
        }
        for (role, text) in branchPrompt.map(split) {
            guard let tokenizer else { throw ValidationError("--branch-prompt needs the model's tokenizer.json") }
            branches[role] = PromptLayout(tokens: tokenizer.encode(text))
        }
        // The branches the decoder declares that were not given: derived from the prompt, built on the image,
        // or (text prompt) the instruction changed; what cannot be built here stays missing and the decoder's
        // error asks for --branch.
        for spec in decoder.inputs.branches where branches[spec.role] == nil {
            if let derived = spec.derived(from: layout) {
                branches[spec.role] = derived
            } else if let vlm = visionModel, let prompt, let tokenizer {
                branches[spec.role] = try imageOptions.visionBranch(spec, model: vlm, prompt: prompt, tokenizer: tokenizer,
                                                                    seed: seed)
            } else if let prompt, let tokenizer, !spec.transformsImage {
                branches[spec.role] = PromptLayout(tokens: tokenizer.encode(spec.instruction.apply(to: prompt)))
            }
        }
        if !stop.isEmpty && tokenizer == nil {
            throw ValidationError("--stop needs the model's tokenizer.json to decode the response")
        }
        let longestPrompt = ([layout] + Array(branches.values)).map(\.items.count).max() ?? layout.items.count
        let newTokens = try Self.cappedNewTokens(maxNewTokens, promptRows: longestPrompt, config: model.config)
        let limits = GenerationLimits(maxNewTokens: newTokens, minNewTokens: minNewTokens,
                                      eosTokenIDs: ignoreEos ? [] : Set(model.eosTokenIDs), stopStrings: stop)
        var context = DecodingContext(model: model, prompt: layout, branches: branches, limits: limits, tokenizer: tokenizer,
                                      randomKey: RandomKey(seed: seed, item: item))
        // Plain-text output streams to the terminal as tokens become final (greedy, sampling, contrastive
        // decoders); search decoders print their text when they finish.
        var streamed = false
        var textStream = tokenizer?.streamDecoder(skipSpecialTokens: true)
        let out = FileHandle.standardOutput
        if !json && !ids, textStream != nil {
            context.onToken = { id in
                streamed = true
                out.write(Data(textStream!.append(id).utf8))
            }
        }
        let result: DecodeResult
        do {
            result = try decoder.decode(context)
        } catch let e as DecodingError {
            if case let .missingBranch(role, _) = e {
                throw ValidationError(e.description + "; give it with --branch \(role)=FILE.json or --branch-prompt \(role)=TEXT")
            }
            throw ValidationError(e.description)
        }
        if json {
            print(try GenerateJSON.render(decoder: decoder, result: result))
        } else if ids || tokenizer == nil {
            print("[" + result.tokens.map(String.init).joined(separator: ",") + "]")
        } else if streamed {
            // The streamed tokens went out unbuffered; the rest and the line end follow the same way, so
            // they are not held back in stdout's buffer behind the stats line (stdout and stderr into one pipe).
            out.write(Data((textStream!.finish() + "\n").utf8))
        } else {
            print(result.text)
        }
        fflush(stdout)
        let rate = result.decodeSeconds > 0 ? Double(max(0, result.tokens.count - 1)) / result.decodeSeconds : 0
        FileHandle.standardError.write(Data(String(
            format: "[%@: %d prompt rows in %.3f s, %d new tokens (%@), %d passes / %d rows, %.1f tokens/s]\n",
            decoder.name, layout.items.count, result.prefillSeconds, result.tokens.count, result.stopReason.rawValue,
            result.forwardPasses, result.forwardRows, rate).utf8))
    }
}

extension Generate {
    /// `requested` new tokens, lowered (with a note on standard error) to what the model's context leaves
    /// after a prompt of `promptRows` rows; throws when the prompt alone fills the context.
    static func cappedNewTokens(_ requested: Int, promptRows: Int, config: ModelConfig) throws -> Int {
        let context = config.contextLength
        let room = context - promptRows
        guard room >= 1 else {
            throw ValidationError("the prompt has \(promptRows) rows but the model's context holds \(context) positions "
                                  + "(max_position_embeddings in config.json): shorten the prompt")
        }
        if requested > room {
            FileHandle.standardError.write(Data(("note: --max-new-tokens \(requested) is more than the model's context allows: "
                + "\(context) positions (max_position_embeddings) minus \(promptRows) prompt rows leaves \(room); "
                + "generating at most \(room) new tokens\n").utf8))
            return room
        }
        return requested
    }
}

/// Reads `--embeds` files.
enum EmbeddingsPrompt {
    static func load(path: String, option: String = "--embeds", hiddenSize: Int, defaultInputIDs: [Int]) throws -> PromptLayout {
        let url = URL(fileURLWithPath: try InputFile.check(path, option: option))
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw ValidationError("cannot read --embeds file \(url.path)")
        }
        guard var object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ValidationError("--embeds file \(url.path) is not a JSON object")
        }
        if let input = object["input"] as? [String: Any] { object = input }
        guard let rows = object["inputs_embeds"] as? [[Any]], !rows.isEmpty else {
            throw ValidationError("--embeds file \(url.path) has no \"inputs_embeds\" (a list of rows of \(hiddenSize) numbers)")
        }
        var items: [PromptItem] = []
        for (r, row) in rows.enumerated() {
            let values = row.compactMap { ($0 as? NSNumber)?.floatValue }
            guard values.count == hiddenSize, values.count == row.count else {
                throw ValidationError("--embeds row \(r) has \(row.count) entries; this model needs \(hiddenSize) numbers per row")
            }
            items.append(.embedding(values))
        }
        var span: Range<Int>?
        if let s = (object["image_positions_inclusive"] ?? object["image_span"]) as? [Int] {
            guard s.count == 2, s[0] >= 0, s[0] <= s[1], s[1] < rows.count else {
                throw ValidationError("--embeds image span \(s) must be [first, last] rows inside 0..<\(rows.count)")
            }
            span = s[0]..<(s[1] + 1)
        }
        let inputIDs = object["input_ids"] as? [Int] ?? defaultInputIDs
        return PromptLayout(items: items, imageSpan: span, inputIDs: inputIDs)
    }
}

/// `--json` output of `mirage generate`.
enum GenerateJSON {
    static func render(decoder: any Decoder, result: DecodeResult) throws -> String {
        let parameters = try JSONSerialization.jsonObject(with: Data(decoder.parameters.canonicalJSON.utf8))
        let trace = try JSONSerialization.jsonObject(with: JSONEncoder().encode(result.trace))
        let object: [String: Any] = [
            "decoder": decoder.name, "parameters": parameters, "tokens": result.tokens, "text": result.text,
            "stop_reason": result.stopReason.rawValue, "forward_passes": result.forwardPasses,
            "forward_rows": result.forwardRows, "decode_rows": result.decodeRows,
            "prefill_seconds": result.prefillSeconds, "decode_seconds": result.decodeSeconds, "trace": trace,
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}
