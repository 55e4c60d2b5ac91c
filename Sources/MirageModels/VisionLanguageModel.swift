import Foundation
import MirageEngine
import MirageImaging
import MirageTokenizers

/// A vision-language model as the rest of Mirage sees it: an image encoder that turns one image into rows of
/// the language model's embedding space, a prompt builder that places those rows where the family's reference
/// code places them, and the language model that sessions, decoders and research hooks work on.
///
/// Each architecture (LLaVA, InstructBLIP, MiniGPT-4, ...) conforms in its own folder of this module and is
/// registered once in `ModelFamilies.all`; the runner and the CLI reach models only through this protocol
/// (docs/ARCHITECTURE.md, "How to add a model family").
public protocol VisionLanguageModel: AnyObject, Sendable {
    /// The family that loaded this model.
    var family: ModelFamily { get }
    /// The decoder: every session, decoder and attention hook runs on it unchanged.
    var languageModel: LanguageModel { get }
    /// The architecture as stored in run identities: the family name and the decoder's `model_type`,
    /// e.g. `llava-llama`, `llava-qwen2`, `instructblip-llama`.
    var architectureName: String { get }
    /// Rows one image contributes to a prompt.
    var imageTokenCount: Int { get }
    /// True when the image rows depend on the instruction (InstructBLIP's Q-Former reads it): callers then
    /// key cached image rows by (image, instruction) instead of by image.
    var imageRowsReadInstruction: Bool { get }
    /// The template used when a command or protocol names none (`auto`).
    var defaultTemplate: PromptTemplate { get }
    /// The templates this family knows by name (`--template NAME`); each renders a prompt around one image
    /// marker.
    var templates: [PromptTemplate] { get }

    /// Decodes an image file and preprocesses it exactly as the family's reference image processor does.
    /// `padToSquare` asks for LLaVA's `expand2square` first; families without it refuse it.
    func pixels(ofImageAt path: String, padToSquare: Bool) throws -> PixelTensor
    /// Encodes preprocessed pixels into `imageTokenCount` rows of the language model's hidden width.
    /// `instruction` is the text an instruction-aware encoder reads (ignored by the others; see
    /// `imageRowsReadInstruction`).
    func embedImage(_ pixels: PixelTensor, instruction: String?) throws -> ImageEmbedding
    /// The prompt for `text`, a rendered template holding exactly one `PromptTemplate.imageMarker`, tokenized
    /// as the family's reference code tokenizes it, with the image rows placed where the marker stands (or
    /// where the family always places them), and the position where the response starts.
    func prompt(_ text: String, tokenizer: Tokenizer, image: ImageEmbedding) throws -> MultimodalPrompt
    /// The prompt exactly as the folder's Hugging Face processor builds it from (image, `text`), nothing added
    /// (`--template processor`); a default implementation covers processors that expand the image marker in
    /// place.
    func processorPrompt(_ text: String, tokenizer: Tokenizer, image: ImageEmbedding) throws -> MultimodalPrompt
}

extension VisionLanguageModel {
    /// The longest sequence the decoder takes (`max_position_embeddings`).
    public var contextLength: Int { languageModel.config.maxPositionEmbeddings }

    /// Every template name `template(named:)` takes: `templates`, then `processor` (which every family has).
    public var templateNames: [String] {
        let own = templates.map(\.name)
        return own + (own.contains(PromptTemplate.processor.name) ? [] : [PromptTemplate.processor.name])
    }

    /// The template of a CLI or protocol name; `auto` (or nil) gives `defaultTemplate`, `processor` gives
    /// `PromptTemplate.processor`.
    public func template(named name: String?) throws -> PromptTemplate {
        guard let name, name != "auto" else { return defaultTemplate }
        if let found = templates.first(where: { $0.name == name }) { return found }
        if name == PromptTemplate.processor.name { return .processor }
        throw ModelError.invalidInput("\(architectureName) has no template '\(name)'; it knows auto, "
                                      + templateNames.joined(separator: ", "))
    }

    /// What the folder's Hugging Face processor builds from (image, `text`): by default the text's image
    /// marker expanded to the image rows and tokenized as the tokenizer does (LLaVA's processor). Families
    /// whose processor places the image elsewhere (BLIP-2 and InstructBLIP put query placeholders before the
    /// text) implement it themselves.
    public func processorPrompt(_ text: String, tokenizer: Tokenizer, image: ImageEmbedding) throws -> MultimodalPrompt {
        try prompt(text, tokenizer: tokenizer, image: image)
    }

    /// The prompt for the user's `text` under `template`: the processor's input for `processor`, otherwise the
    /// rendered template through `prompt(_:tokenizer:image:)`.
    public func prompt(_ text: String, template: PromptTemplate, tokenizer: Tokenizer,
                       image: ImageEmbedding) throws -> MultimodalPrompt {
        if template == .processor { return try processorPrompt(text, tokenizer: tokenizer, image: image) }
        return try prompt(template.render(text), tokenizer: tokenizer, image: image)
    }
}

/// A named prompt format: `format` holds `{prompt}` where the user's text goes and `imageMarker` where the
/// image rows go, e.g. `USER: <image>\n{prompt} ASSISTANT:`.
public struct PromptTemplate: Sendable, Equatable {
    /// The image marker templates and raw prompts use.
    public static let imageMarker = "<image>"
    /// Exactly what the model folder's Hugging Face processor builds from (image, text): for LLaVA the text's
    /// `<image>` expanded to the image tokens and nothing else added (BOS as the tokenizer adds it); for
    /// BLIP-2 / InstructBLIP the query placeholders before the text. Every family knows it
    /// (`VisionLanguageModel.processorPrompt`).
    public static let processor = PromptTemplate(
        name: "processor", format: "{prompt}",
        summary: "exactly what the folder's Hugging Face processor builds from (image, text), nothing added")

    public let name: String
    public let format: String
    /// One line for `--help` and `mirage models show`.
    public let summary: String

    public init(name: String, format: String, summary: String) {
        self.name = name
        self.format = format
        self.summary = summary
    }

    /// `format` with `{prompt}` replaced by `prompt` (once, so a prompt that itself contains `{prompt}` stays
    /// as written).
    public func render(_ prompt: String) -> String {
        guard let range = format.range(of: "{prompt}") else { return format }
        return format.replacingCharacters(in: range, with: prompt)
    }
}
