import Foundation
import MirageEngine
import MirageTokenizers

/// Shikra-7B (`ShikraLlamaForCausalLM` of shikras/shikra, shikras/shikra-7b-delta-v1 after `apply_delta`), as
/// OPERA's `minigpt4/models/shikra.py` runs it: a LLaMA decoder, a CLIP ViT-L/14 (224 px) tower from its own
/// folder (`mm_vision_tower`), `hidden_states[mm_vision_select_layer]` without CLS through one linear projector
/// (`model.mm_projector`), and the image as `<im_start>` + 256 × `<im_patch>` + `<im_end>` in the text, the
/// patch rows replaced by the image rows (modeling_shikra.py). The weights, tower and projector load as
/// LLaVA's original layout does (`LlavaOriginalForCausalLM`, whose config reader Shikra's config.json fits).
public final class ShikraForCausalLM: @unchecked Sendable {
    /// The decoder, tower and projector.
    public let base: LlavaOriginalForCausalLM

    /// The image tokens of shikras/shikra (`mllm/models/shikra/shikra.py`, `DEFAULT_IMAGE_PATCH_TOKEN`,
    /// `DEFAULT_IM_START_TOKEN`, `DEFAULT_IM_END_TOKEN`).
    public static let patchToken = "<im_patch>", startToken = "<im_start>", endToken = "<im_end>"

    public init(folder: URL, options: LoadOptions = LoadOptions()) throws {
        base = try LlavaOriginalForCausalLM(folder: folder, options: options)
    }

    public var config: LlavaOriginalConfig { base.config }

    /// The prompt as OPERA's wrapper builds it: `<image>` (wrapped in `<im_start>`/`<im_end>` unless the text
    /// already has them) becomes 256 × `<im_patch>`, the whole text is tokenized at once (BOS as the tokenizer
    /// adds it), and the patch rows are replaced by the image rows. The image span runs from `<im_start>` to
    /// `<im_end>` inclusive, as OPERA's `key_position` does.
    public func prompt(_ text: String, tokenizer: Tokenizer, image: ImageEmbedding) throws -> MultimodalPrompt {
        let marker = PromptTemplate.imageMarker
        guard text.components(separatedBy: marker).count == 2 else {
            throw ModelError.invalidInput("the prompt must hold exactly one '\(marker)'; the templates add it, with raw or processor write it yourself")
        }
        var ids: [String: Int] = [:]
        for token in [Self.patchToken, Self.startToken, Self.endToken] {
            guard let id = tokenizer.id(for: token) else {
                throw ModelError.invalidInput("the tokenizer has no \(token): use the tokenizer saved with the Shikra model "
                                              + "(its added_tokens.json holds <im_patch>, <im_start>, <im_end>)")
            }
            ids[token] = id
        }
        let wrapped = text.contains(Self.startToken + marker + Self.endToken)
            ? text : text.replacingOccurrences(of: marker, with: Self.startToken + marker + Self.endToken)
        let expanded = wrapped.replacingOccurrences(of: marker, with: String(repeating: Self.patchToken, count: image.tokenCount))
        let tokenIDs = tokenizer.encode(expanded)
        guard let start = tokenIDs.firstIndex(of: ids[Self.startToken]!), let end = tokenIDs.firstIndex(of: ids[Self.endToken]!),
              start < end else {
            throw ModelError.invalidInput("the prompt's <im_start> and <im_end> were not found around the image in its token ids")
        }
        return try MultimodalPrompt(tokenIDs: tokenIDs, imageTokenID: ids[Self.patchToken]!, image: image,
                                    imageSpan: start..<(end + 1))
    }
}
