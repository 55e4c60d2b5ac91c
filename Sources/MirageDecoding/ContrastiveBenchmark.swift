import Foundation
import MirageEngine

/// The contrastive decoders' part of `mirage bench decoders`: greedy, VCD (defaults), the cut-off control
/// and DoLa on a LLaVA-shaped prompt (text, an image span of embedding rows, text), each generating exactly
/// `newTokens` tokens (EOS ignored, so every decoder does the same amount of work).
public enum ContrastiveBenchmark {
    public struct Row: Sendable {
        public var decoder: String
        public var result: DecodeResult
        public var seconds: Double { result.prefillSeconds + result.decodeSeconds }
    }

    /// The prompt and its VCD branch: `textBefore` token ids, `imageRows` random rows (scaled like the
    /// token embeddings), `textAfter` ids; the branch has the image rows noised at step 500.
    public static func prompt(model: LanguageModel, textBefore: Int = 35, imageRows: Int = 576, textAfter: Int = 20,
                              seed: UInt64 = 0) throws -> (prompt: PromptLayout, contrast: PromptLayout) {
        let key = RandomKey(seed: seed, item: "bench")
        let V = model.config.vocabSize, H = model.config.hiddenSize
        func ids(_ n: Int, _ stream: UInt32) -> [PromptItem] {
            (0..<n).map { .token(Int(key.uniform(step: $0, stream: stream) * Double(V))) }
        }
        let reference = try model.embedding(of: 0)
        let scale = (reference.reduce(0) { $0 + $1 * $1 } / Float(H)).squareRoot()
        var image: [Float] = []
        for k in 0..<(imageRows * H) { image.append(scale * Float(2 * key.uniform(step: k, stream: 7) - 1) * 1.7) }
        let noised = try VCDNoiseSchedule.vcd.noised(image, step: 500, key: key)
        func rows(_ x: [Float]) -> [PromptItem] { (0..<imageRows).map { .embedding(Array(x[($0 * H)..<(($0 + 1) * H)])) } }
        let before = ids(textBefore, 1), after = ids(textAfter, 2)
        let span = textBefore..<(textBefore + imageRows)
        return (PromptLayout(items: before + rows(image) + after, imageSpan: span),
                PromptLayout(items: before + rows(noised) + after, imageSpan: span))
    }

    /// Runs greedy, `vcd`, `apc` and `dola` (default parameters) on the same prompt.
    public static func run(model: LanguageModel, newTokens: Int = 128, imageRows: Int = 576, seed: UInt64 = 0) throws -> [Row] {
        let (prompt, contrast) = try prompt(model: model, imageRows: imageRows, seed: seed)
        let context = DecodingContext(model: model, prompt: prompt, branches: [VCDDecoder.branchRole: contrast],
                                      limits: GenerationLimits(maxNewTokens: newTokens, eosTokenIDs: []),
                                      randomKey: RandomKey(seed: seed, item: "bench"))
        let decoders: [any Decoder] = [GreedyDecoder(), VCDDecoder(), PlausibilityCutoffDecoder(), DoLaDecoder()]
        return try decoders.map { Row(decoder: $0.name, result: try $0.decode(context)) }
    }
}
