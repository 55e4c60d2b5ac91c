import Foundation
import MirageEngine
import MirageTokenizers

/// The generation settings and output handling a paper's evaluation code applies to a family's models, beyond
/// the prompt (which protocols carry) and the token ids of the folder (which the loaded model reads): OPERA's
/// wrappers (docs/paper-models.md). A family declares them in its own file (`ModelFamily.paperSettings`); the
/// runner applies them to protocols that ask for them (`paper_settings: true`, docs/runner.md):
/// `decoderParameters` become decoder parameter overrides (so they are part of the run's identity and shown by
/// `mirage runs show`), `answer(tokens:tokenizer:)` makes the stored answer text that CHAIR and POPE score from the
/// generated tokens (the raw tokens are stored as generated).
public struct PaperSettings: Sendable, Equatable {
    /// One step of the wrapper's text post-processing, applied in order.
    public enum TextStep: Sendable, Equatable, CustomStringConvertible {
        /// `text.split(s)[0]`: the text before the first `s` (all of it when absent).
        case before(String)
        /// `text.split(s)[-1]`: the text after the last `s` (all of it when absent).
        case afterLast(String)
        /// `text.strip()`: leading and trailing whitespace removed.
        case strip

        public var description: String {
            switch self {
            case .before(let s): return "split(\(Self.quoted(s)))[0]"
            case .afterLast(let s): return "split(\(Self.quoted(s)))[-1]"
            case .strip: return "strip()"
            }
        }

        static func quoted(_ s: String) -> String { "'" + s + "'" }

        func apply(_ text: String) -> String {
            switch self {
            case .before(let s):
                guard let r = text.range(of: s) else { return text }
                return String(text[..<r.lowerBound])
            case .afterLast(let s):
                guard let r = text.range(of: s, options: .backwards) else { return text }
                return String(text[r.upperBound...])
            case .strip:
                return PaperSettings.pythonStrip(text)
            }
        }
    }

    /// Decoder parameters the wrapper sets, by name (e.g. `repetition_penalty`: 1.5), applied to every decoder that
    /// has the parameter unless the run's decoder choice sets it itself.
    public var decoderParameters: [String: String]
    /// Output ids the wrapper rewrites before decoding the text (`output[output == 0] = 2`); the stored tokens keep
    /// the generated ids.
    public var outputIDRewrites: [Int: Int]
    /// The text steps after decoding with special tokens skipped.
    public var text: [TextStep]
    /// Where each value comes from (repository, commit, file and lines).
    public var source: String

    public init(decoderParameters: [String: String] = [:], outputIDRewrites: [Int: Int] = [:], text: [TextStep] = [.strip],
                source: String) {
        self.decoderParameters = decoderParameters
        self.outputIDRewrites = outputIDRewrites
        self.text = text
        self.source = source
    }

    /// The answer text the wrapper returns for generated `tokens` (the response only, no prompt ids): ids
    /// rewritten, decoded with special tokens skipped, then the text steps.
    public func answer(tokens: [Int], tokenizer: Tokenizer) -> String {
        let ids = tokens.map { outputIDRewrites[$0] ?? $0 }
        return applyText(tokenizer.decode(ids, skipSpecialTokens: true))
    }

    /// The text steps applied to decoded text.
    public func applyText(_ decoded: String) -> String {
        text.reduce(decoded) { $1.apply($0) }
    }

    /// The output handling as one line, for run identities and listings, e.g.
    /// `ids 0→2, 1→2; decode skipping special tokens; split('###')[0]; strip()`.
    public var outputDescription: String {
        var parts: [String] = []
        if !outputIDRewrites.isEmpty {
            parts.append("ids " + outputIDRewrites.sorted { $0.key < $1.key }.map { "\($0.key)→\($0.value)" }.joined(separator: ", "))
        }
        parts.append("decode skipping special tokens")
        parts += text.map(\.description)
        return parts.joined(separator: "; ")
    }

    /// Python's `str.strip()` without arguments: Unicode whitespace (and the ASCII separators 0x1c–0x1f) at
    /// both ends.
    static func pythonStrip(_ text: String) -> String {
        func isSpace(_ u: Unicode.Scalar) -> Bool { u.properties.isWhitespace || (0x1c...0x1f).contains(u.value) }
        let scalars = Array(text.unicodeScalars)
        var lo = 0, hi = scalars.count
        while lo < hi && isSpace(scalars[lo]) { lo += 1 }
        while hi > lo && isSpace(scalars[hi - 1]) { hi -= 1 }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: scalars[lo..<hi])
        return String(out)
    }
}

extension VisionLanguageModel {
    /// The paper settings of the model's family (nil: it has none).
    public var paperSettings: PaperSettings? { family.paperSettings }
}
