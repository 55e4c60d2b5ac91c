import Foundation
import MirageEngine

/// PAI, "Paying More Attention to Image" (Liu et al., ECCV 2024; LALBJ/PAI): in the layers
/// `startLayer..<endLayer` the newest query row's pre-softmax scores over the image keys become
/// `s + α·|s|` (attention.py `llama_new_forward`), and each step contrasts with a text-only branch, fed the
/// same tokens without the edit, in log-probabilities: `γ·(ls − lu) + lu`, with tokens whose conditional
/// log-probability is below `log β + max ls` set to −∞ (CFG.py `CFGLogits`). Then the processors and the
/// choice (greedy, as chair_eval.py runs it by default; sampling as the README recommends).
/// Needs the branch `"unconditional"`: the prompt with the image rows removed (model_loader.py
/// `init_cfg_processor`: bos + text before the image + text after it).
///
/// The edit touches only the last row of each pass (`attn_weights[:, :, -1, img]`). Modes: `reference`
/// follows the published run with both `--use-attn` and `--use-cfg`: `llama_modify` leaves the layers' `use_cfg`
/// flag on, which disables the edit until `CFGLogits` first turns it off after its text-only pass, so the first
/// token (the prompt's prefill) is unedited, and with γ = 1 (CFGLogits returns before touching the flag) no token
/// is; `clean` edits every token, the first included (the paper's method). Parity with the published code:
/// `PostOperaDecoderParityTests` (Tests/MirageModelsTests).
///
/// With `numBeams` > 1 it runs chair_eval.py's `--beam B`: transformers 4.37's beam search (`transformers-4.37`
/// semantics) over the guided scores, which `CFGLogits` hands back unnormalised, with the text-only prompt
/// repeated per beam (model_loader.py `init_cfg_processor`). `reference` reproduces `CFGLogits`' own text-only
/// cache, which is never reordered with the beams: row b of the text-only pass is fed beam b's newest token, so
/// after a reorder it continues another beam's history. `clean` reorders the text-only rows with the beams.
public struct PAIDecoder: Decoder {
    public enum Mode: String, Sendable, CaseIterable { case reference, clean }
    public var alpha: Double
    public var gamma: Double
    public var startLayer: Int
    /// Exclusive; -1 = the model's layer count.
    public var endLayer: Int
    public var beta: Double
    public var mode: Mode
    public var sampling: SamplingDecoder
    public var sample: Bool
    /// Beam search over the guided scores when > 1 (chair_eval.py `--beam`).
    public var numBeams: Int
    public let name = "pai"
    /// Called with each step's scores before the processors (what the greedy variant takes the argmax of);
    /// the parity tests compare them with the published code's.
    public var scoreObserver: (@Sendable (_ step: Int, _ scores: [Float]) -> Void)?
    public static let branchRole = "unconditional"

    public init(alpha: Double = 0.2, gamma: Double = 1.1, startLayer: Int = 2, endLayer: Int = -1, beta: Double = 0.1,
                mode: Mode = .reference, temperature: Double = 1, topK: Int = 0, topP: Double = 1, repetitionPenalty: Double = 1, sample: Bool = false,
                numBeams: Int = 1) {
        self.alpha = alpha
        self.gamma = gamma
        self.startLayer = startLayer
        self.endLayer = endLayer
        self.beta = beta
        self.mode = mode
        sampling = SamplingDecoder(temperature: temperature, topK: topK, topP: topP, repetitionPenalty: repetitionPenalty)
        self.sample = sample
        self.numBeams = numBeams
    }

    public var parameters: DecoderParameters {
        cutoffParameters(sampling, beta: beta, sample: sample, ["alpha": .double(alpha), "gamma": .double(gamma),
                                                                "start_layer": .int(startLayer), "end_layer": .int(endLayer),
                                                                "mode": .string(mode.rawValue), "num_beams": .int(numBeams)])
    }

    /// The text-only prompt, and the attention edit on the image keys of the chosen layers.
    public var inputs: DecoderInputs {
        let layers: LayerSelection = endLayer < 0 ? .perModel(rule: "layers \(startLayer)..<all") : .layers(Array(startLayer..<max(startLayer, endLayer)))
        return DecoderInputs(branches: [BranchSpec(role: Self.branchRole, image: .none)],
                             hooks: [.attentionScoreEdit(layers: layers, keys: .image)], beams: numBeams)
    }

    public static let descriptor = DecoderDescriptor(
        name: "pai",
        summary: "PAI: amplify attention to image keys (s + α|s|) in a layer range, contrast with a text-only branch (γ).",
        parameters: [
            ParameterSpec("alpha", .double(0...100), default: .double(0.2), help: "Image-attention amplification: s + α·|s| on image keys.",
                          source: "PAI README.md (--alpha 0.2) and chair_eval.py default"),
            ParameterSpec("gamma", .double(0...100), default: .double(1.1),
                          help: "Guidance: γ·(log p − log p_text) + log p_text (1 = no text-only branch).",
                          source: "PAI README.md (--gamma 1.1; chair_eval.py's default is 2)"),
            ParameterSpec("start_layer", .int(0...4096), default: .int(2), help: "First layer whose attention is edited.",
                          source: "PAI README.md (--start-layer 2)"),
            ParameterSpec("end_layer", .int(-1...4096), default: .int(-1), help: "Layer after the last edited one (-1 = all layers).",
                          source: "PAI README.md (--end-layer 32 for 32-layer LLaMA-7B)"),
            ParameterSpec("beta", .double(0...1), default: .double(0.1),
                          help: "Plausibility cut-off on the image prompt's log-probabilities (0 = none; unused in reference mode with gamma=1, as the published code).",
                          source: "PAI CFG.py (cutoff = log(0.1) + max)"),
            ParameterSpec("mode", .choice(Mode.allCases.map(\.rawValue)), default: .string("reference"),
                          help: "reference: the first token unedited (and none when gamma=1) and, with num_beams > 1, the text-only rows never reordered with the beams, as the published code; clean: every token edited, the text-only rows follow the beams.",
                          source: "PAI attention.py llama_modify (use_cfg flag) and CFG.py (flag toggled around the text-only pass; its cache fed input_ids[:, -1:] without the beam reorder)"),
            ParameterSpec("num_beams", .int(1...64), default: .int(1),
                          help: "Beam search over the guided scores when > 1 (transformers 4.37 semantics); reference mode keeps the published text-only rows unreordered, clean reorders them.",
                          source: "PAI chair_eval.py/pope_eval.py --beam (default 1; passed to generate and init_cfg_processor)"),
        ] + samplingSpecs(temperature: "PAI chair_eval.py (generate's default 1)",
                          topK: "PAI chair_eval.py (not set: with --sample, transformers 4.37's GenerationConfig default 50 applies; preset pai-sample-script)",
                          topP: "PAI chair_eval.py (not set)",
                          sample: ("Sample (README's recommendation) or take the best score.",
                                   "PAI chair_eval.py (--sample off by default)")),
        presets: [
            DecoderPreset("pai-paper", ["alpha": .double(0.2), "gamma": .double(1.1), "start_layer": .int(2), "end_layer": .int(-1)],
                          source: "PAI README.md CHAIR/POPE commands (LLaVA-1.5: α 0.2, γ 1.1, layers 2–32)"),
            DecoderPreset("pai-chair-script", ["gamma": .double(2)], source: "PAI chair_eval.py defaults (γ 2)"),
            DecoderPreset("pai-clean", ["mode": .string("clean")], source: "the paper's method: the first token edited too"),
            DecoderPreset("pai-nucleus", ["sample": .bool(true), "top_p": .double(0.9)],
                          source: "PAI README.md (recommends nucleus sampling; top_p 0.9 as transformers' LLaVA scripts)"),
            DecoderPreset("pai-sample-script", ["sample": .bool(true), "top_k": .int(50)],
                          source: "PAI chair_eval.py --sample: generate(do_sample=True), transformers 4.37's defaults (top_k 50, top_p 1, temperature 1)"),
            DecoderPreset("pai-beam", ["alpha": .double(0.2), "gamma": .double(1.1), "start_layer": .int(2), "end_layer": .int(-1),
                                       "num_beams": .int(5), "sample": .bool(false)],
                          source: "PAI chair_eval.py/pope_eval.py --beam 5 with README.md's --use-attn --alpha 0.2 --use-cfg --gamma 1.1 --start-layer 2 --end-layer 32 (5 as OPERA's beam baseline)"),
        ],
        make: { p in
            guard p.int("num_beams") == 1 || !p.bool("sample") else {
                throw PostOperaError.beamWithSampling(decoder: "pai", beams: p.int("num_beams"))
            }
            return PAIDecoder(alpha: p.double("alpha"), gamma: p.double("gamma"), startLayer: p.int("start_layer"),
                       endLayer: p.int("end_layer"), beta: p.double("beta"),
                       mode: Mode(rawValue: p.string("mode"))!, temperature: p.double("temperature"),
                       topK: p.int("top_k"), topP: p.double("top_p"), repetitionPenalty: p.double("repetition_penalty"),
                       sample: p.bool("sample"), numBeams: p.int("num_beams"))
        })

    /// The edited layers for a model with `layers` decoder layers.
    public func editedLayers(modelLayers layers: Int) throws -> Range<Int> {
        let end = endLayer < 0 ? layers : endLayer
        guard startLayer <= end, end <= layers else {
            throw PostOperaError.layerRange(decoder: name, lower: startLayer, upper: end, layers: layers,
                                            parameters: "start_layer/end_layer")
        }
        return startLayer..<end
    }

    /// The attention edit on the image prompt (sequence 0 of the contrastive session), image keys only: rows at
    /// or after the prompt's last one (`clean`), or only the generated tokens' rows (`reference`); none in
    /// `reference` mode with γ = 1.
    func scoreEdit(prompt: PromptLayout, layers: Range<Int>, sequences: Range<Int> = 0..<1) throws -> AttentionScoreEdit? {
        guard let image = prompt.imageSpan else { throw PostOperaError.needsImage(decoder: name) }
        if mode == .reference && gamma == 1 { return nil }
        let factor = Float(alpha), firstEditedRow = prompt.items.count - (mode == .reference ? 0 : 1)
        return AttentionScoreEdit(layers: Set(layers), keyRange: image) { context, scores in
            guard sequences.contains(context.sequence), context.queryPosition >= firstEditedRow else { return }
            for i in scores.indices { scores[i] += abs(scores[i]) * factor }
        }
    }

    public func decode(_ context: DecodingContext) throws -> DecodeResult {
        let text = try context.branch(PAIDecoder.branchRole)
        let layers = try editedLayers(modelLayers: context.model.config.numLayers)
        let observer = scoreObserver
        if numBeams > 1 { return try beamDecode(context, text: text, layers: layers, reorderText: mode == .clean) }
        // Greedy and sampling still run the text-only sequence in `reference` mode with γ = 1 (its rows go unread):
        // without a branch `decodeContrastive` would prefill the prompt without the prefix cache it shares.
        let edit = try scoreEdit(prompt: context.prompt, layers: layers)
        return try decodeContrastive(context, branches: [text], options: ForwardOptions(scoreEdit: edit),
                                     processors: sampling.processors(context.limits), score: { rows, step, trace in
            let c = stepScores(rows.logits[0], text: rows.logits[1])
            recordCutoff(c, step: step, trace: &trace)
            observer?(step, c.scores)
            return c.scores
        }, choose: contrastiveChoice(sample: sample, key: context.randomKey))
    }

    /// chair_eval.py `--beam B`: the image prompt's B beams in one session (every beam edited), the text-only
    /// prompt's B rows in another (none in `reference` mode with γ = 1, whose scores read no text row), stepped
    /// after each choice with each beam's newest token (reordered with the beams only in `clean` mode), and
    /// transformers 4.37's beam search over the guided scores as they are.
    /// `reorderText` is separate from the mode so that the tests can show what the unreordered rows change.
    func beamDecode(_ context: DecodingContext, text: PromptLayout, layers: Range<Int>, reorderText: Bool) throws -> DecodeResult {
        guard !sample else { throw PostOperaError.beamWithSampling(decoder: name, beams: numBeams) }
        guard !text.items.isEmpty else { throw DecodingError.emptyPrompt }
        let limits = context.limits
        let edit = try scoreEdit(prompt: context.prompt, layers: layers, sequences: 0..<numBeams)
        // `reference` with γ = 1: CFGLogits returns the log-softmax before its text-only pass and `stepScores`
        // reads no text row, so the text-only rows are neither prefilled nor stepped (nor metered).
        var companion: BeamCompanion?
        var textOut: ForwardOutput?
        var textStepped = false  // before the first step every beam reads the prefill's last row
        if !(mode == .reference && gamma == 1) {
            let textSession = context.makeSession()
            textOut = try textSession.prefill(text.items)
            for _ in 1..<numBeams { textSession.session.fork(0) }
            companion = BeamCompanion(advance: { parents, tokens in
                if reorderText { textSession.session.reorder(parents) }
                textOut = try textSession.step(tokens)
                textStepped = true
            }, meter: { textSession.meter })
        }
        // PAI pins transformers 4.37 (environment.yml); chair_eval.py sets no length penalty or early stopping.
        let state = BeamSearchState(numBeams: numBeams, semantics: .transformers437, eosTokenIDs: limits.eosTokenIDs,
                                    inputLength: context.prompt.tokenIDs.count, maxNewTokens: limits.maxNewTokens)
        let processors = standardProcessors(repetitionPenalty: sampling.repetitionPenalty, limits: limits)
        let observer = scoreObserver
        var step = -1
        return try beamSearch(context, state: state, processors: processors, options: ForwardOptions(scoreEdit: edit),
                              logSoftmaxRows: false, companion: companion) { out, b, trace in
            // Each pass's rows arrive in beam order (the prefill's one row once); the text-only pass of this step
            // has already run.
            if b == 0 { step += 1 }
            let c = stepScores(out.logits(b), text: textOut?.logits(textStepped ? b : 0) ?? [])
            // The trace counts steps, not beam rows: the cut-off is recorded for beam 0's row only, as the
            // observer sees it (the other beams' plausible sets and cut-off events are not counted).
            if b == 0 {
                recordCutoff(c, step: step, trace: &trace)
                observer?(step, c.scores)
            }
            return c.scores
        }
    }

    /// One step's scores, greedy, sampled or per beam. `reference` with γ = 1: `log_softmax(z)` as it is, no
    /// cut-off and no text-only row, because CFGLogits returns there before both (CFG.py `__call__`); the
    /// sampling distribution then keeps the tokens below `log β + max ls`. `clean` keeps the cut-off at γ = 1:
    /// the paper's adaptive plausibility constraint does not depend on γ.
    public func stepScores(_ logits: ArraySlice<Float>, text: ArraySlice<Float>) -> ContrastiveScores.Contrast {
        if mode == .reference && gamma == 1 {
            let ls = logSoftmax(logits)
            return ContrastiveScores.Contrast(scores: ls, plausibleCount: ls.count, cutoffBound: false)
        }
        return PAIDecoder.guidance(logits, text: text, gamma: gamma, beta: beta)
    }

    /// CFG.py `CFGLogits.__call__`: `ls = log_softmax(z)`, `lu = log_softmax(z_text)`,
    /// `γ·(ls − lu) + lu`, −∞ where `ls < log β + max ls` (β = 0: no cut-off).
    public static func guidance(_ logits: ArraySlice<Float>, text: ArraySlice<Float>, gamma: Double,
                                beta: Double) -> ContrastiveScores.Contrast {
        let ls = logSoftmax(logits), lu = logSoftmax(text)
        let g = Float(gamma)
        let cutoff = beta > 0 ? (ls.max() ?? 0) + Float(log(Float(beta))) : -Float.infinity
        var scores = [Float](repeating: -.infinity, count: ls.count)
        var kept = 0, bestAll = 0, bestKept = -1
        var bestAllValue = -Float.infinity
        for i in ls.indices {
            let v = g * (ls[i] - lu[i]) + lu[i]
            if v > bestAllValue { bestAllValue = v; bestAll = i }
            guard ls[i] >= cutoff else { continue }
            scores[i] = v
            kept += 1
            if bestKept < 0 || v > scores[bestKept] { bestKept = i }
        }
        return ContrastiveScores.Contrast(scores: scores, plausibleCount: kept, cutoffBound: bestAll != bestKept)
    }
}
