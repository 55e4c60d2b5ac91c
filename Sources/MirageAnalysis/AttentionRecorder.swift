import Foundation
import MirageDecoding
import MirageEngine
import MirageTokenizers
import MirageStore

/// The runner's per-item hook for `--record-attention`: after an item is recorded, captures the last
/// layer's attention of its response (one teacher-forced forward, `AttentionCapture`) and stores it with the
/// item (`item_attention`). Costs one forward over prompt + response per item.
public struct AttentionRecorder: Sendable {
    public let store: any RunRepository
    public var capture = AttentionCapture()

    public init(store: any RunRepository) { self.store = store }

    /// Captures and stores the attention of `result.tokens` after `prompt`. Items without tokens are skipped.
    public func itemRecorded(run: Int64, itemKey: String, model: LanguageModel, prompt: PromptLayout,
                             result: DecodeResult, tokenizer: Tokenizer?) throws {
        guard !result.tokens.isEmpty else { return }
        let map = try capture.capture(model: model, prompt: prompt, response: result.tokens, tokenizer: tokenizer)
        try store.recordAttention(run: run, itemKey: itemKey, map.stored)
    }

    /// The stored map of an item (nil when none was recorded).
    public static func load(_ store: any RunRepository, run: Int64, itemKey: String) throws -> AttentionMap? {
        try store.attention(run: run, itemKey: itemKey).map(AttentionMap.init)
    }
}
