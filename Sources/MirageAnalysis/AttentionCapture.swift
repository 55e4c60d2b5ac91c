import Foundation
import MirageDecoding
import MirageEngine
import MirageTokenizers

/// Records a response's last-layer attention by teacher forcing.
///
/// Causal attention makes the attention of response token i (as query) depend only on the prompt and the
/// tokens before it, so one forward over prompt + response reproduces the rows a decoder saw while it
/// generated that final sequence (OPERA's rows of the surviving beam). The prompt is prefilled without
/// attention output, then the response in one pass that returns the last layer's rows.
public struct AttentionCapture: Sendable {
    public init() {}

    /// Captures `response` (generated tokens, EOS included if it was generated) after `prompt`.
    /// `tokenizer` provides the pieces (text per token); without one the pieces are empty.
    public func capture(model: LanguageModel, prompt: PromptLayout, response: [Int],
                        tokenizer: Tokenizer?) throws -> AttentionMap {
        let R = prompt.responseStart
        guard R > 0 else { throw AnalysisError.invalidLayout("the prompt is empty") }
        guard !response.isEmpty else { throw AnalysisError.invalidLayout("the response has no tokens") }
        let image = prompt.imageSpan ?? 0..<0
        guard image.lowerBound >= 0, image.upperBound <= R else {
            throw AnalysisError.invalidLayout("image span \(image) lies outside the prompt's \(R) rows")
        }
        let session = model.makeSession()
        try session.append(prompt.items, options: ForwardOptions(logits: .none))
        let out = try session.append(response.map { .token($0) },
                                     options: ForwardOptions(logits: .none, lastLayerAttention: true))
        let n = response.count
        var imageMass = [Float](), promptMass = [Float](), total = [Float](), packed = [Float]()
        imageMass.reserveCapacity(n); promptMass.reserveCapacity(n); total.reserveCapacity(n)
        packed.reserveCapacity(n * (n + 1) / 2)
        for i in 0..<n {
            let m = out.attention[i].maxOverHeads
            guard m.count == R + i + 1 else {
                throw AnalysisError.malformedAttention("row \(i) has \(m.count) keys; expected \(R + i + 1)")
            }
            // OPERA's divisor: the plain sequential sum over every key, as its column score divides by it.
            var sum: Float = 0, onImage: Float = 0, onPrompt: Float = 0
            for v in m { sum += v }
            for k in 0..<R { if image.contains(k) { onImage += m[k] } else { onPrompt += m[k] } }
            imageMass.append(onImage); promptMass.append(onPrompt); total.append(sum)
            packed += m[R...]
        }
        return try AttentionMap(tokens: response, pieces: Self.pieces(response, tokenizer: tokenizer),
                                imageMass: imageMass, promptMass: promptMass, rowTotal: total, response: packed)
    }

    /// The text each token adds, special tokens skipped (so `pieces.joined()` is the decoded response):
    /// the streaming decoder's output, where a byte token that completes a character carries it.
    public static func pieces(_ tokens: [Int], tokenizer: Tokenizer?) -> [String] {
        guard let tokenizer else { return Array(repeating: "", count: tokens.count) }
        var stream = tokenizer.streamDecoder(skipSpecialTokens: true)
        var pieces = tokens.map { stream.append($0) }
        if let last = pieces.indices.last { pieces[last] += stream.finish() }
        return pieces
    }
}
