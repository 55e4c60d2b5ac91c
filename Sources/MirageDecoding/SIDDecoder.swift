import Foundation
import MirageEngine

/// SID, self-introspective decoding (Huo et al., ICLR 2025; huofushuo/SID): a contrast branch sees the same
/// prompt, but from layer `aggLayer` on every query row attends only to the `attentionRank` vision tokens
/// that the newest row attended to LEAST in layer `aggLayer − 1` (head mean), re-chosen at every pass
/// (the vendored transformers' LlamaModel, "FastV ... Attention Mask Implementation", `topk(largest=False)`).
/// Each step scores `(1+α)·z − α·z_sid` (vcd_sample.py `sample`).
///
/// Modes: `reference` is the published greedy variant (`--sample-greedy`): the argmax of the raw
/// combination, without the plausibility cut-off β that the same function applies before sampling;
/// `clean` applies the cut-off to the greedy choice too. Sampling always applies it.
/// The branch needs no prompt of its own: it is the image prompt, in its own sequence (its cache holds the
/// pruned rows, so it shares nothing with the prompt's).
public struct SIDDecoder: Decoder {
    public enum Mode: String, Sendable, CaseIterable { case reference, clean }
    public var alpha: Double
    public var beta: Double
    public var aggLayer: Int
    public var attentionRank: Int
    public var mode: Mode
    public var sampling: SamplingDecoder
    public var sample: Bool
    public let name = "sid"
    /// Called with each step's scores before the processors (what the greedy variant takes the argmax of);
    /// the parity tests compare them with the published code's.
    public var scoreObserver: (@Sendable (_ step: Int, _ scores: [Float]) -> Void)?

    public init(alpha: Double = 0.5, beta: Double = 0.1, aggLayer: Int = 2, attentionRank: Int = 100, mode: Mode = .reference,
                temperature: Double = 1, topK: Int = 0, topP: Double = 1, repetitionPenalty: Double = 1, sample: Bool = false) {
        self.alpha = alpha
        self.beta = beta
        self.aggLayer = aggLayer
        self.attentionRank = attentionRank
        self.mode = mode
        sampling = SamplingDecoder(temperature: temperature, topK: topK, topP: topP, repetitionPenalty: repetitionPenalty)
        self.sample = sample
    }

    public var parameters: DecoderParameters {
        cutoffParameters(sampling, beta: beta, sample: sample, ["alpha": .double(alpha), "agg_layer": .int(aggLayer),
                                                                "attention_rank": .int(attentionRank), "mode": .string(mode.rawValue),
                                                                "num_beams": .int(1)])
    }

    /// The branch is the prompt itself in a second sequence (its cache differs: pruned rows); the hooks read
    /// layer agg_layer−1's attention to the image keys and mask image keys from agg_layer on.
    public var inputs: DecoderInputs {
        DecoderInputs(branches: [BranchSpec(role: "pruned", image: .same)],
                      hooks: [.attentionProbabilities(layers: .layers([aggLayer - 1]), keys: .image),
                              .attentionScoreEdit(layers: .perModel(rule: "layers \(aggLayer)..<all"), keys: .image)])
    }

    public static let descriptor = DecoderDescriptor(
        name: "sid",
        summary: "SID: contrast with a branch that keeps only the least-attended vision tokens after early layers.",
        parameters: [
            ParameterSpec("alpha", .double(0...100), default: .double(0.5), help: "Contrast strength: (1+α)·z − α·z_sid.",
                          source: "SID vcd_sample.py (cd_alpha fallback 0.5: pope_eval.py's --cd-alpha 1 is never passed)"),
            ParameterSpec("beta", .double(0...1), default: .double(0.1), help: "Plausibility cut-off: keep tokens with z ≥ log β + max z.",
                          source: "SID vcd_sample.py (cd_beta fallback 0.1)"),
            ParameterSpec("agg_layer", .int(1...4096), default: .int(2),
                          help: "First pruned layer; the attention of layer agg_layer−1 chooses the kept vision tokens.",
                          source: "SID pope_eval.py --fast-v-agg-layer 2"),
            ParameterSpec("attention_rank", .int(1...100_000), default: .int(100), help: "Vision tokens the branch keeps.",
                          source: "SID pope_eval.py --fast-v-attention-rank 100"),
            ParameterSpec("mode", .choice(Mode.allCases.map(\.rawValue)), default: .string("reference"),
                          help: "reference: greedy takes the argmax without the cut-off (the published code); clean: with it.",
                          source: "SID vcd_sample.py (sample_greedy: torch.argmax(diffs))"),
            ParameterSpec("num_beams", .int(1...64), default: .int(1),
                          help: "Only 1: SID has no beam search (num_beams > 1 is refused with the reason).",
                          source: "huofushuo/SID vcd_sample.py evolve_vcd_sampling (replaces only GenerationMixin.sample); README.md runs --beam 5 only without SID"),
        ] + samplingSpecs(temperature: "SID minigpt4/models/llava.py generate (temperature=1)",
                          topK: "SID llava.py generate (not set: when sampling, transformers' GenerationConfig default 50 applies; preset sid-sampling)",
                          topP: "SID llava.py generate passes top_p=0.9; used only when sampling",
                          sample: ("Sample from the cut-off scores, or take the best (--sample-greedy).",
                                   "SID README.md (--sample --sample-greedy)")),
        presets: [
            DecoderPreset("sid-greedy", ["alpha": .double(0.5), "beta": .double(0.1), "agg_layer": .int(2),
                                         "attention_rank": .int(100), "mode": .string("reference"), "sample": .bool(false)],
                          source: "SID README.md: pope_eval.py --use-cd --use-fast-v --sample --sample-greedy (LLaVA-1.5)"),
            DecoderPreset("sid-sampling", ["sample": .bool(true), "top_p": .double(0.9), "top_k": .int(50)],
                          source: "SID vcd_sample.py sampling path: llava.py passes top_p 0.9, top_k is transformers' default 50"),
        ],
        make: { p in
            guard p.int("num_beams") == 1 else { throw PostOperaError.noBeamSearch(decoder: "sid", beams: p.int("num_beams"), why: SIDDecoder.noBeamSearch) }
            return SIDDecoder(alpha: p.double("alpha"), beta: p.double("beta"), aggLayer: p.int("agg_layer"),
                       attentionRank: p.int("attention_rank"), mode: Mode(rawValue: p.string("mode"))!,
                       temperature: p.double("temperature"), topK: p.int("top_k"), topP: p.double("top_p"),
                       repetitionPenalty: p.double("repetition_penalty"), sample: p.bool("sample"))
        })

    /// Why SID refuses `num_beams` > 1 (docs/decoders.md "Beam search and the post-OPERA decoders").
    static let noBeamSearch = "SID's published code has no beam search: vcd_sample.py's evolve_vcd_sampling replaces only "
        + "transformers' sampling loop, so generate(num_beams > 1) runs plain beam search without the pruned branch, and the "
        + "README's --beam 5 commands are the baseline and OPERA, not SID"

    public func decode(_ context: DecodingContext) throws -> DecodeResult {
        let prompt = context.prompt
        guard !prompt.items.isEmpty else { throw DecodingError.emptyPrompt }
        guard let image = prompt.imageSpan else { throw PostOperaError.needsImage(decoder: name) }
        let layers = context.model.config.numLayers
        guard aggLayer < layers else {
            throw PostOperaError.layerRange(decoder: name, lower: aggLayer, upper: layers, layers: layers, parameters: "agg_layer")
        }
        guard attentionRank <= image.count else {
            throw PostOperaError.imageTooSmall(decoder: name, imageRows: image.count, keep: attentionRank)
        }
        let session = context.makeSession()
        let heads = context.model.config.numHeads
        let (aggLayer, attentionRank, alpha, beta, observer) = (aggLayer, attentionRank, alpha, beta, scoreObserver)
        let reference = !sample && mode == .reference
        func pruning(newestRow: Int) -> ForwardOptions {
            let p = SIDPruning(readLayer: aggLayer - 1, image: image, keep: attentionRank, heads: heads, newestRow: newestRow)
            return ForwardOptions(scoreEdit: p.edit(layers: Set((aggLayer - 1)..<layers)))
        }
        // Sequence 0: the prompt; sequence 1: SID's branch, prefilled in one pass with its pruning.
        session.session.fork(0)
        let first = try session.prefill(prompt.items, to: 0)
        let firstSID = try session.prefill(prompt.items, to: 1, options: pruning(newestRow: prompt.items.count - 1))
        return try decodeTokens(context, session: session, first: (first.logits(0), firstSID.logits(0)),
                                processors: sampling.processors(context.limits), score: { rows, step, trace in
            let c = ContrastiveScores.vcd(rows.0, contrast: rows.1, alpha: alpha, beta: beta)
            recordCutoff(c, step: step, trace: &trace)
            var scores = c.scores
            if reference {
                let (a, a1) = (Float(alpha), Float(1 + alpha))
                scores = zip(rows.0, rows.1).map { a1 * $0 - a * $1 }
            }
            observer?(step, scores)
            return scores
        }, choose: contrastiveChoice(sample: sample, key: context.randomKey), next: { token, step in
            let out = try session.step([token, token], options: pruning(newestRow: prompt.items.count + step))
            return (out.logits(0), out.logits(1))
        })
    }
}

/// One pass's vision-token pruning of SID's branch (sequence 1 of the session): in `readLayer` the newest
/// row's attention probabilities over the image keys are kept per head; the first later layer to run picks the
/// `keep` keys with the lowest head mean; from then on every branch row's scores for the other image keys are
/// −∞ (the published code adds the dtype's minimum through the attention mask: the same zero after softmax).
/// The engine runs a layer's (row, head) tasks concurrently and layers one after another, so the per-head
/// writes never overlap and the choice is made once, under the lock, after `readLayer` has finished.
final class SIDPruning: @unchecked Sendable {
    let readLayer: Int
    let image: Range<Int>
    let keep: Int
    let heads: Int
    let newestRow: Int
    /// heads × image keys; written by concurrent tasks at distinct indices (a raw buffer, no copy-on-write).
    private let probabilities: UnsafeMutablePointer<Float>
    private var dropped: [Bool]?
    private let lock = NSLock()

    init(readLayer: Int, image: Range<Int>, keep: Int, heads: Int, newestRow: Int) {
        self.readLayer = readLayer
        self.image = image
        self.keep = keep
        self.heads = heads
        self.newestRow = newestRow
        probabilities = .allocate(capacity: heads * image.count)
        probabilities.initialize(repeating: 0, count: heads * image.count)
    }

    deinit { probabilities.deallocate() }

    /// The score edit over whole rows (`keys` from 0) of the layers `readLayer...`.
    func edit(layers: Set<Int>) -> AttentionScoreEdit {
        AttentionScoreEdit(layers: layers, keyRange: 0..<Int.max) { [self] context, scores in
            guard context.sequence == 1 else { return }
            if context.layer == readLayer {
                guard context.queryPosition == newestRow else { return }
                record(head: context.head, scores: scores)
            } else {
                let drop = droppedKeys()
                let end = min(image.upperBound, context.queryPosition + 1)
                var j = image.lowerBound
                while j < end {
                    if drop[j - image.lowerBound] { scores[j] = -.infinity }
                    j += 1
                }
            }
        }
    }

    /// Softmax of the newest row (float32, max-subtracted as torch), image keys stored for `head`.
    private func record(head: Int, scores: UnsafeMutableBufferPointer<Float>) {
        var maximum = -Float.infinity
        for s in scores { maximum = max(maximum, s) }
        var total: Float = 0
        for s in scores { total += exp(s - maximum) }
        let base = head * image.count
        for (i, j) in image.enumerated() { probabilities[base + i] = exp(scores[j] - maximum) / total }
    }

    private func droppedKeys() -> [Bool] {
        lock.lock()
        defer { lock.unlock() }
        if let dropped { return dropped }
        let n = image.count
        var mean = [Float](repeating: 0, count: n)
        for i in 0..<n {
            var sum: Float = 0
            for h in 0..<heads { sum += probabilities[h * n + i] }
            mean[i] = sum / Float(heads)
        }
        let order = mean.indices.sorted { mean[$0] < mean[$1] || (mean[$0] == mean[$1] && $0 < $1) }
        var drop = [Bool](repeating: true, count: n)
        for i in order.prefix(keep) { drop[i] = false }
        dropped = drop
        return drop
    }
}
