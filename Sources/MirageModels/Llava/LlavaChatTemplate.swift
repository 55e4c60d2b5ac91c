import Foundation
import MirageEngine

/// Chat templates of the LLaVA families Mirage reproduces. The image placeholder goes first in the user
/// turn, followed by a newline, as the published evaluation scripts put it.
public enum LlavaChatTemplate: Sendable, Equatable {
    /// The prompt verbatim: it must contain the image placeholder itself.
    case raw
    /// No chat turns: `<image>\n{prompt}`.
    case plain
    /// LLaVA-1.5 (Vicuna v1 conversation): `USER: <image>\n{prompt} ASSISTANT:`, optionally preceded by
    /// the system message and a space (LLaVA's `conv_vicuna_v1`).
    case llava15(systemMessage: Bool)
    /// ChatML of Qwen2-based LLaVA models: `<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n<image>\n{prompt}<|im_end|>\n<|im_start|>assistant\n`
    /// (the system turn omitted when nil).
    case chatML(system: String?)

    /// LLaVA v1's system message (haotian-liu/LLaVA, llava/conversation.py `conv_vicuna_v1`).
    public static let llava15System = "A chat between a curious human and an artificial intelligence assistant. "
        + "The assistant gives helpful, detailed, and polite answers to the human's questions."
    /// The template for a decoder: LLaVA-1.5 (no system message) for Llama, ChatML with Qwen's default
    /// system message for Qwen2.
    public static func `default`(for architecture: Architecture) -> LlavaChatTemplate {
        architecture == .qwen2 ? .chatML(system: qwenSystem) : .llava15(systemMessage: false)
    }

    /// Every name `init(name:)` takes, in `--help` order.
    public static let names = ["raw", "plain", "llava15", "llava15-system", "chatml", "chatml-nosystem"]

    /// Parses a CLI name: raw, plain, llava15, llava15-system, chatml, chatml-nosystem.
    public init?(name: String) {
        switch name {
        case "raw": self = .raw
        case "plain": self = .plain
        case "llava15": self = .llava15(systemMessage: false)
        case "llava15-system": self = .llava15(systemMessage: true)
        case "chatml": self = .chatML(system: Self.qwenSystem)
        case "chatml-nosystem": self = .chatML(system: nil)
        default: return nil
        }
    }

    /// Qwen2's default system message.
    public static let qwenSystem = "You are a helpful assistant."

    public func render(_ prompt: String, imageToken: String = "<image>") -> String {
        switch self {
        case .raw:
            return prompt
        case .plain:
            return "\(imageToken)\n\(prompt)"
        case .llava15(let system):
            return (system ? Self.llava15System + " " : "") + "USER: \(imageToken)\n\(prompt) ASSISTANT:"
        case .chatML(let system):
            let head = system.map { "<|im_start|>system\n\($0)<|im_end|>\n" } ?? ""
            return head + "<|im_start|>user\n\(imageToken)\n\(prompt)<|im_end|>\n<|im_start|>assistant\n"
        }
    }
}
