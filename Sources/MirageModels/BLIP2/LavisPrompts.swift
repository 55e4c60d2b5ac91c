import Foundation
import MirageEngine

/// How OPERA's LAVIS-based wrappers put the image rows and the text ids together (docs/paper-models.md). These
/// layouts have no image placeholder token: the image positions of `MultimodalPrompt.tokenIDs` hold
/// `imagePlaceholder` (-1), which is never looked up.
public enum LavisPrompts {
    public static let imagePlaceholder = -1

    /// MiniGPT-4 (shikiw/OPERA minigpt4/models/mini_gpt4.py `prompt_wrap`): `[bos] + before + image rows + after`,
    /// where the template `###Human: <Img><ImageHere></Img> {q} ###Assistant:` is split at `<ImageHere>` and both
    /// parts are tokenized without special tokens; `bos` is the tokenizer's BOS (1 for LLaMA). The image span is
    /// `(1 + before.count)..<(1 + before.count + rows)`, OPERA's `image_start`…`image_end` inclusive.
    /// `dummyBOS`: the `input_ids` transformers 4.29's `generate` makes for an `inputs_embeds` call, `[bos]` of the
    /// LLM's generation settings (tf/generation/utils.py:550-552; 0 for a Vicuna v0 folder without
    /// generation_config.json): what the repetition penalty sees and beam search's length normalisation counts.
    public static func miniGPT4(bos: Int, before: [Int], after: [Int], image: ImageEmbedding, dummyBOS: Int?) throws -> MultimodalPrompt {
        let ids = [bos] + before + [Int](repeating: imagePlaceholder, count: image.tokenCount) + after
        return try MultimodalPrompt(tokenIDs: ids, imageTokenID: imagePlaceholder, image: image, inputIDs: dummyBOS.map { [$0] } ?? [])
    }

    /// InstructBLIP (OPERA / LAVIS blip2_vicuna_instruct.py): the image rows first, then the LLM ids of the prompt
    /// after `<ImageHere>`, tokenized with special tokens, which in LAVIS' set-up start with `</s>` (id 2) as BOS.
    /// The image span is `0..<rows`; OPERA's `key_position` says 1…rows (`image_start = 1`, `image_end =
    /// inputs_llm.shape[1]`, blip2_vicuna_instruct.py:372-377: it leaves image row 0 out and takes the BOS row in),
    /// which is the prompt's `operaImageSpan`, what OPERA's decoder uses in reference mode. `dummyBOS` as for
    /// `miniGPT4` (1 with Vicuna v1.1's generation_config.json).
    public static func instructBlip(llmIDs: [Int], image: ImageEmbedding, dummyBOS: Int?) throws -> MultimodalPrompt {
        let ids = [Int](repeating: imagePlaceholder, count: image.tokenCount) + llmIDs
        var prompt = try MultimodalPrompt(tokenIDs: ids, imageTokenID: imagePlaceholder, image: image,
                                          inputIDs: dummyBOS.map { [$0] } ?? [])
        prompt.operaImageSpan = 1..<(image.tokenCount + 1)
        return prompt
    }
}
