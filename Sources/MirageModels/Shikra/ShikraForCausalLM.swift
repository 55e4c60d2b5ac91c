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

    /// The text spaced so that Mirage's tokenizer gives the ids transformers 4.29's slow `LlamaTokenizer` gives OPERA's
    /// Shikra wrapper (shikiw/OPERA minigpt4/models/shikra.py:207-228; docs/paper-models.md): that tokenizer splits the
    /// text at added tokens, strips the whitespace on both sides of each (tokenization_utils.py `tokenize`, added
    /// tokens that are plain strings) and puts sentencepiece's `▁` before every text piece. Mirage's tokenizer puts
    /// `▁` only before the first piece and keeps the spaces, so: text before an added token loses its trailing
    /// whitespace, text after one is led by exactly one space. (`…USER: <im_start>` becomes `…USER:<im_start>`.)
    static func slowAddedTokenSpacing(_ text: String, tokens: [String]) -> String {
        var pieces: [(text: String, isToken: Bool)] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            let hits = tokens.compactMap { rest.range(of: $0) }
            guard let hit = hits.min(by: { $0.lowerBound < $1.lowerBound }) else { break }
            pieces.append((String(rest[..<hit.lowerBound]), false))
            pieces.append((String(rest[hit]), true))
            rest = rest[hit.upperBound...]
        }
        pieces.append((String(rest), false))
        var out = ""
        for (i, piece) in pieces.enumerated() {
            guard !piece.isToken else { out += piece.text; continue }
            var t = Substring(piece.text)
            if i + 1 < pieces.count { while let last = t.last, last.isWhitespace { t = t.dropLast() } }
            if i > 0 {
                while let first = t.first, first.isWhitespace { t = t.dropFirst() }
                if !t.isEmpty { t = " " + t }
            }
            out += t
        }
        return out
    }

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
        let tokenIDs = tokenizer.encode(Self.slowAddedTokenSpacing(expanded, tokens: [Self.patchToken, Self.startToken, Self.endToken]))
        guard let start = tokenIDs.firstIndex(of: ids[Self.startToken]!), let end = tokenIDs.firstIndex(of: ids[Self.endToken]!),
              start < end else {
            throw ModelError.invalidInput("the prompt's <im_start> and <im_end> were not found around the image in its token ids")
        }
        return try MultimodalPrompt(tokenIDs: tokenIDs, imageTokenID: ids[Self.patchToken]!, image: image,
                                    imageSpan: start..<(end + 1))
    }
}
