import Foundation
import MirageKernels

/// Offset of the largest value; the first one on ties (as `torch.argmax`). NaNs are skipped.
public func argmax<C: Collection>(_ values: C) -> Int where C.Element == Float, C.Index == Int {
    // Contiguous storage (arrays, slices of logits): the vector kernel, same answer.
    if let index = values.withContiguousStorageIfAvailable({ buffer in
        buffer.isEmpty ? 0 : Kernels.argmax(buffer.baseAddress!, count: buffer.count)
    }) {
        return index
    }
    var best = values.startIndex
    var bestValue = -Float.infinity
    for i in values.indices where values[i] > bestValue {
        best = i
        bestValue = values[i]
    }
    return best - values.startIndex
}

/// Greedy decoding (transformers' `generate(do_sample=False, num_beams=1)`): prefill the prompt, then
/// repeatedly append the argmax token. Stops after `maxNewTokens`, after emitting a token of
/// `stopTokens` (the stop token is included in the result, as transformers returns it), or when
/// `onToken` returns false.
public func greedyDecode(model: LanguageModel, prompt: [PromptItem], maxNewTokens: Int, stopTokens: Set<Int> = [],
                         onToken: (Int) -> Bool = { _ in true }) throws -> [Int] {
    guard !prompt.isEmpty else { throw ModelError.invalidInput("the prompt is empty: give at least one token") }
    let session = model.makeSession()
    var output = try session.append(prompt)
    var tokens: [Int] = []
    while tokens.count < maxNewTokens {
        let next = argmax(output.logits(0))
        tokens.append(next)
        if !onToken(next) || stopTokens.contains(next) || tokens.count == maxNewTokens { break }
        output = try session.step([next])
    }
    return tokens
}
