import ArgumentParser
import Foundation
import MirageEngine

/// `--image`, `--template`, `--pad-to-square`: options of the commands that run LLaVA models.
struct ImageOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "An image (JPEG or PNG) for a LLaVA model: preprocessed with the model's preprocessor_config.json, encoded by its vision tower, and placed where the template puts <image>.",
        valueName: "file"))
    var image: String?

    @Option(name: .long, help: ArgumentHelp(
        "Chat template around the prompt with --image: auto (llava15 for Llama decoders, chatml for Qwen2), llava15 (USER: <image>\\n{prompt} ASSISTANT:), llava15-system (with LLaVA's system message), chatml, chatml-nosystem, plain (<image>\\n{prompt}), raw (the prompt as given; it must contain <image>).",
        valueName: "name"))
    var template = "auto"

    @Flag(name: .long, help: "Pad the image to a square with the mean colour before preprocessing (LLaVA's expand2square, used by the original LLaVA-1.5 evaluation).")
    var padToSquare = false

    func validate() throws {
        if template != "auto" && LlavaChatTemplate(name: template) == nil {
            throw ValidationError("--template takes auto, llava15, llava15-system, chatml, chatml-nosystem, plain or raw (got '\(template)')")
        }
        if let image, !FileManager.default.fileExists(atPath: (image as NSString).expandingTildeInPath) {
            throw ValidationError("image \(image) does not exist")
        }
    }

    /// Loads the LLaVA model, encodes the image and builds the prompt. Prints timing to standard error.
    func llavaPrompt(model options: ModelRunOptions, prompt: String, tokenizer: Tokenizer) throws
        -> (LlavaForConditionalGeneration, MultimodalPrompt) {
        let path = (image! as NSString).expandingTildeInPath
        guard options.isLlavaFolder else {
            throw ValidationError("--image needs a LLaVA model (config.json model_type \"llava\"); \(options.model) is a text-only model")
        }
        let model = try LlavaForConditionalGeneration(
            folder: options.folder, options: options.loadOptions)
        let start = DispatchTime.now().uptimeNanoseconds
        let pixels = try model.pixels(ofImageAt: path, padToSquare: padToSquare)
        let embedding = try model.embedImage(pixels)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let chosen = template == "auto" ? LlavaChatTemplate.default(for: model.config.text.architecture) : LlavaChatTemplate(name: template)!
        let built = try model.prompt(prompt, template: chosen, tokenizer: tokenizer, image: embedding)
        FileHandle.standardError.write(Data(String(
            format: "[image: %d tokens in %.3f s; image rows %d..<%d of %d prompt rows]\n",
            embedding.tokenCount, seconds, built.imageSpan.lowerBound, built.imageSpan.upperBound, built.responseStart).utf8))
        return (model, built)
    }
}
