import ArgumentParser
import Foundation
import MirageDecoding
import MirageEngine
import MirageTokenizers
import MirageModels

/// `--image`, `--template`, `--pad-to-square`: options of the commands that run vision-language models.
struct ImageOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "An image (JPEG or PNG) for a vision-language model (`mirage models families`): preprocessed as the model's image processor does, encoded by its vision tower, and placed where the template puts <image>.",
        valueName: "file"))
    var image: String?

    @Option(name: .long, help: ArgumentHelp(
        "Prompt template with --image: auto (the model's default: llava15 for LLaVA with a Llama decoder, chatml with Qwen2), processor (exactly what the folder's Hugging Face processor builds from the image and --prompt: write <image> in the prompt for LLaVA; nothing is added), or one of the model's templates (LLaVA: llava15 = USER: <image>\\n{prompt} ASSISTANT:, llava15-system, chatml, chatml-nosystem, plain = <image>\\n{prompt}, raw = the prompt as given, holding <image>).",
        valueName: "name"))
    var template = "auto"

    @Flag(name: .long, help: "Pad the image to a square with the mean colour before preprocessing (LLaVA's expand2square, used by the original LLaVA-1.5 evaluation).")
    var padToSquare = false

    @OptionGroup var pixelLimit: PixelLimitOptions

    func validate() throws {
        let names = ["auto"] + ModelFamilies.templateNames
        if !names.contains(template) {
            throw ValidationError("--template takes \(names.joined(separator: ", ")) (got '\(template)'); `mirage models families` lists the families")
        }
        if let image { try InputFile.check(image, option: "--image") }
    }

    /// Loads the vision-language model, encodes the image and builds the prompt. Prints timing to standard error.
    func visionPrompt(model options: ModelRunOptions, prompt: String, tokenizer: Tokenizer) throws
        -> (any VisionLanguageModel, MultimodalPrompt) {
        let path = (image! as NSString).expandingTildeInPath
        try pixelLimit.apply()
        guard try options.isVisionLanguageFolder() else {
            throw ValidationError("--image needs a vision-language model (`mirage models families` lists what Mirage loads); "
                                  + "\(options.model) is a text-only model")
        }
        let model = try options.loadVisionLanguageModel()
        let chosen: PromptTemplate
        do { chosen = try model.template(named: template) } catch { throw ValidationError("--template: \(error)") }
        let start = DispatchTime.now().uptimeNanoseconds
        let pixels = try model.pixels(ofImageAt: path, padToSquare: padToSquare)
        let embedding = try model.embedImage(pixels, instruction: prompt)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let built = try model.prompt(prompt, template: chosen, tokenizer: tokenizer, image: embedding)
        FileHandle.standardError.write(Data(String(
            format: "[image: %d tokens in %.3f s; image rows %d..<%d of %d prompt rows]\n",
            embedding.tokenCount, seconds, built.imageSpan.lowerBound, built.imageSpan.upperBound, built.responseStart).utf8))
        return (model, built)
    }

    /// A branch prompt a decoder declares, built on this image: the instruction changed as declared, the image
    /// transformed (keyed by `seed`, as `mirage run` keys it by the run seed) or its rows removed.
    func visionBranch(_ spec: BranchSpec, model: any VisionLanguageModel, prompt: String, tokenizer: Tokenizer,
                      seed: UInt64) throws -> PromptLayout {
        let instruction = spec.instruction.apply(to: prompt)
        let chosen: PromptTemplate
        do { chosen = try model.template(named: template) } catch { throw ValidationError("--template: \(error)") }
        var pixels = try model.pixels(ofImageAt: (image! as NSString).expandingTildeInPath, padToSquare: padToSquare)
        if case let .transformed(transform) = spec.image {
            pixels.values = try transform.apply(pixels.values, pixels.channels, pixels.height, pixels.width,
                                                RandomKey(seed: seed, item: "image"))
        }
        let built = try model.prompt(instruction, template: chosen, tokenizer: tokenizer,
                                     image: try model.embedImage(pixels, instruction: instruction))
        let layout = PromptLayout(items: built.items, imageSpan: built.imageSpan, inputIDs: built.inputIDs)
        return spec.image == .none ? layout.removingImage() : layout
    }
}
