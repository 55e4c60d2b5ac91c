import Foundation
import MirageEngine

/// VISTA, visual information steering with token-logit augmentation (Li et al., ICML 2025; LzVv123456/VISTA).
///
/// Visual steering vector (steering_vector.py `obtain_vsv`, llm_layers.py `VSVLayer`): before generating, the
/// image prompt and the text-only ("null") prompt run unsteered; per layer `l` the steering vector is the
/// difference of their layer outputs at the last row, `v_l = h_l(image) − h_l(null)`. While generating, every
/// row's MLP output `m` of the steered layers becomes `normalize(normalize(m) + y)·‖m‖` with
/// `y = λ·(1 + max(0, cos(m, −v_l)))·normalize(v_l)`.
/// Self-logits augmentation (the vendored llava_llama.py forward): the scores are
/// `α·mean_{i∈[s,e]} lm_head(h_i) + (1−α)·logits`, `h_i` the output of decoder layer i (0-based) without the
/// final norm, except the last layer's, which is normalised (transformers' last hidden state).
///
/// Modes: `reference` reproduces obtain_vsv's rank-1 PCA over a single difference, whose SVD of an all-zero
/// centred matrix returns the first basis vector: the direction is the difference plus 1 at (first steered
/// layer, dimension 0). `clean` uses the difference alone. Needs the branch `"unconditional"` (bos + the text
/// before the image + the text after it: model_loader.py `prepare_null_prompt`).
///
/// With `numBeams` > 1 it runs chair_eval.py's `--num-beams B`: the steering applies to every beam's rows and the
/// augmented logits go through log-softmax into transformers 4.37's beam search (`transformers-4.37` semantics).
public struct VISTADecoder: Decoder {
    public enum Mode: String, Sendable, CaseIterable { case reference, clean }
    public var lambda: Double
    /// Steered layers: empty = all (chair_eval.py `--layers` None); two values = `start,end` (exclusive).
    public var steerLayers: [Int]
    public var logitsAlpha: Double
    /// Inclusive `start,end` of the augmentation layers (0-based decoder layers).
    public var logitsLayers: [Int]
    public var finalNorm: Bool
    public var mode: Mode
    public var sampling: SamplingDecoder
    public var sample: Bool
    /// Beam search over the augmented logits when > 1 (chair_eval.py `--num-beams`).
    public var numBeams: Int
    public let name = "vista"
    /// Called with each step's scores before the processors (what the greedy variant takes the argmax of);
    /// the parity tests compare them with the published code's.
    public var scoreObserver: (@Sendable (_ step: Int, _ scores: [Float]) -> Void)?

    public init(lambda: Double = 0.17, steerLayers: [Int] = [], logitsAlpha: Double = 0.3, logitsLayers: [Int] = [25, 30],
                finalNorm: Bool = false, mode: Mode = .reference, temperature: Double = 1, topK: Int = 0, topP: Double = 1,
                repetitionPenalty: Double = 1, sample: Bool = false, numBeams: Int = 1) {
        self.lambda = lambda
        self.steerLayers = steerLayers
        self.logitsAlpha = logitsAlpha
        self.logitsLayers = logitsLayers
        self.finalNorm = finalNorm
        self.mode = mode
        sampling = SamplingDecoder(temperature: temperature, topK: topK, topP: topP, repetitionPenalty: repetitionPenalty)
        self.sample = sample
        self.numBeams = numBeams
    }

    public var parameters: DecoderParameters {
        var values = sampling.parameters.values
        values.merge(["lambda": .double(lambda), "layers": .ints(steerLayers), "logits_alpha": .double(logitsAlpha),
                      "logits_layers": .ints(logitsLayers), "final_norm": .bool(finalNorm), "mode": .string(mode.rawValue),
                      "sample": .bool(sample), "num_beams": .int(numBeams)]) { $1 }
        return DecoderParameters(values)
    }

    /// The text-only prompt (prefilled once, with the image prompt, for the steering vectors; not stepped), the
    /// MLP-output steering of the chosen layers (declared as the residual-stream change it is) and the hidden
    /// states of the augmentation layers.
    public var inputs: DecoderInputs {
        DecoderInputs(branches: [BranchSpec(role: PAIDecoder.branchRole, image: .none)],
                      hooks: [.residualAddition(layers: steerLayers.count == 2 ? .layers(Array(steerLayers[0]..<max(steerLayers[0], steerLayers[1]))) : .all),
                              .hiddenStates(layers: .layers(logitsLayers.count == 2 ? Array(logitsLayers[0]...max(logitsLayers[0], logitsLayers[1])).map { $0 + 1 } : []))],
                      beams: numBeams, stepFactor: 0.5)
    }

    public static let descriptor = DecoderDescriptor(
        name: "vista",
        summary: "VISTA: steer MLP outputs toward the image-minus-text direction, mix in late-layer logits.",
        parameters: [
            ParameterSpec("lambda", .double(0...100), default: .double(0.17), help: "Steering strength λ (0 = no steering).",
                          source: "VISTA run_chair.sh (--vsv-lambda 0.17; run_pope.sh 0.01)"),
            ParameterSpec("layers", .ints, default: .ints([]), help: "Steered layers as start,end (exclusive); empty = all.",
                          source: "VISTA chair_eval.py --layers (None)"),
            ParameterSpec("logits_alpha", .double(0...1), default: .double(0.3), help: "Weight of the late-layer logits (0 = off).",
                          source: "VISTA run_chair.sh / run_pope.sh (--logits-alpha 0.3)"),
            ParameterSpec("logits_layers", .ints, default: .ints([25, 30]),
                          help: "First and last (inclusive) decoder layer averaged into the logits, 0-based.",
                          source: "VISTA chair_eval.py --logits-layers '25,30' (32-layer 7B)"),
            ParameterSpec("final_norm", .bool, default: .bool(false),
                          help: "Normalise the earlier layers' states before the LM head (the code does not).",
                          source: "VISTA llava_llama.py: self.lm_head(all_hidden_states[idx])"),
            ParameterSpec("mode", .choice(Mode.allCases.map(\.rawValue)), default: .string("reference"),
                          help: "reference: obtain_vsv's PCA artefact (+1 on the first steered layer's dimension 0); clean: the difference.",
                          source: "VISTA steering_vector.py obtain_vsv (rank-1 PCA of one difference)"),
            ParameterSpec("num_beams", .int(1...64), default: .int(1),
                          help: "Beam search over the augmented logits when > 1 (transformers 4.37 semantics; every beam steered).",
                          source: "VISTA chair_eval.py/pope_eval.py --num-beams (default 1; passed to generate)"),
        ] + samplingSpecs(temperature: "VISTA chair_eval.py --temperature 1.0",
                          topK: "VISTA chair_eval.py --top-k 0",
                          topP: "VISTA chair_eval.py --top-p 0.9, passed only with --do-sample",
                          sample: ("Sample, or take the best score (greedy).",
                                   "VISTA chair_eval.py (--do-sample off)")),
        presets: [
            DecoderPreset("vista-chair", ["lambda": .double(0.17), "logits_alpha": .double(0.3), "logits_layers": .ints([25, 30])],
                          source: "VISTA run_chair.sh (LLaVA-1.5, greedy)"),
            DecoderPreset("vista-pope", ["lambda": .double(0.01), "logits_alpha": .double(0.3), "logits_layers": .ints([25, 30])],
                          source: "VISTA run_pope.sh (LLaVA-1.5)"),
            DecoderPreset("vista-chair-beam", ["lambda": .double(0.17), "logits_alpha": .double(0.3), "logits_layers": .ints([25, 30]),
                                               "num_beams": .int(5), "sample": .bool(false)],
                          source: "VISTA run_chair.sh with chair_eval.py --num-beams 5 (the paper reports beam search as one of its three decoding strategies; 5 as OPERA's beam baseline)"),
        ],
        make: { p in
            guard p.int("num_beams") == 1 || !p.bool("sample") else {
                throw PostOperaError.beamWithSampling(decoder: "vista", beams: p.int("num_beams"))
            }
            return VISTADecoder(lambda: p.double("lambda"), steerLayers: p.ints("layers"), logitsAlpha: p.double("logits_alpha"),
                         logitsLayers: p.ints("logits_layers"), finalNorm: p.bool("final_norm"),
                         mode: Mode(rawValue: p.string("mode"))!, temperature: p.double("temperature"), topK: p.int("top_k"),
                         topP: p.double("top_p"), repetitionPenalty: p.double("repetition_penalty"), sample: p.bool("sample"),
                         numBeams: p.int("num_beams"))
        })

    /// The steered layers and the augmentation layers for a model with `layers` decoder layers.
    public func layerPlan(modelLayers layers: Int) throws -> (steer: Range<Int>, logits: ClosedRange<Int>) {
        let steer: Range<Int>
        if steerLayers.isEmpty {
            steer = 0..<layers
        } else {
            guard steerLayers.count == 2, steerLayers[0] >= 0, steerLayers[0] <= steerLayers[1], steerLayers[1] <= layers else {
                throw PostOperaError.layerRange(decoder: name, lower: steerLayers.first ?? 0, upper: steerLayers.last ?? 0,
                                                layers: layers, parameters: "layers=start,end")
            }
            steer = steerLayers[0]..<steerLayers[1]
        }
        guard logitsLayers.count == 2, logitsLayers[0] >= 0, logitsLayers[0] <= logitsLayers[1], logitsLayers[1] < layers else {
            throw PostOperaError.layerRange(decoder: name, lower: logitsLayers.first ?? 0, upper: (logitsLayers.last ?? 0) + 1,
                                            layers: layers, parameters: "logits_layers=first,last")
        }
        return (steer, logitsLayers[0]...logitsLayers[1])
    }

    /// obtain_vsv: per layer of the model, the last row's layer output of the image prompt minus the null
    /// prompt's (sequences 1 and 2 of `session`, unsteered); `reference` adds the PCA artefact.
    func steeringVectors(_ context: DecodingContext, session: MeteredSession, null: PromptLayout, steer: Range<Int>) throws -> [[Float]] {
        let model = context.model
        let L = model.config.numLayers, H = model.config.hiddenSize
        let options = ForwardOptions(logits: .none, hiddenStateLayers: Array(1...L))
        let image = try session.prefill(context.prompt.items, to: 1, options: options)
        let text = try session.prefill(null.items, to: 2, options: options)
        func last(_ out: ForwardOutput, _ l: Int) -> ArraySlice<Float> {
            let all = out.hiddenStates[l + 1]!, r = out.rows.count - 1
            return all[(r * H)..<((r + 1) * H)]
        }
        var vectors = (0..<L).map { l in zip(last(image, l), last(text, l)).map { $0 - $1 } }
        if mode == .reference, !steer.isEmpty { vectors[steer.lowerBound][0] += 1 }
        return vectors
    }

    public func decode(_ context: DecodingContext) throws -> DecodeResult {
        let null = try context.branch(PAIDecoder.branchRole)
        guard !context.prompt.items.isEmpty, !null.items.isEmpty else { throw DecodingError.emptyPrompt }
        let model = context.model
        let L = model.config.numLayers, H = model.config.hiddenSize, V = model.config.vocabSize
        let (steer, logitsRange) = try layerPlan(modelLayers: L)
        let session = context.makeSession()
        session.session.fork(0)
        session.session.fork(0)
        let vectors = try steeringVectors(context, session: session, null: null, steer: steer)
        session.session.reorder([0])
        let steering = VISTASteering(vectors: vectors, lambda: Float(lambda))
        let (alpha, normalise, observer) = (Float(logitsAlpha), finalNorm, scoreObserver)
        let early = logitsRange.filter { $0 < L - 1 || normalise }
        let options = ForwardOptions(hiddenStateLayers: early.map { $0 + 1 },
                                     mlpOutputEdit: lambda == 0 ? nil : MLPOutputEdit(layers: Set(steer)) { layer, _, output in
            steering.apply(layer: layer, output: output)
        })
        let includesLast = logitsRange.contains(L - 1) && !normalise
        /// The scores of the pass's i-th logit row: the logits, or their augmentation.
        func scores(_ out: ForwardOutput, _ i: Int) -> [Float] {
            let logits = out.logits(i)
            guard alpha > 0 else { return Array(logits) }
            let r = out.logitRows[i]
            var hidden: [Float] = []
            hidden.reserveCapacity(early.count * H)
            for l in early { hidden += out.hiddenStates[l + 1]![(r * H)..<((r + 1) * H)] }
            let exits = early.isEmpty ? [] : model.earlyExitLogits(hidden, rows: early.count, applyFinalNorm: normalise)
            var layerLogits = early.indices.map { exits[($0 * V)..<(($0 + 1) * V)] }
            if includesLast { layerLogits.append(logits) }
            return Self.augmented(logits, layerLogits: layerLogits, alpha: alpha)
        }
        if numBeams > 1 {
            guard !sample else { throw PostOperaError.beamWithSampling(decoder: name, beams: numBeams) }
            // VISTA pins transformers 4.37 (environment.yml); chair_eval.py sets no length penalty or early stopping.
            let limits = context.limits
            let state = BeamSearchState(numBeams: numBeams, semantics: .transformers437, eosTokenIDs: limits.eosTokenIDs,
                                        inputLength: context.prompt.tokenIDs.count, maxNewTokens: limits.maxNewTokens)
            var step = -1
            // The whole prompt steered, in the session of the steering vectors (as the single-sequence path).
            let first = try session.prefill(context.prompt.items, to: 0, options: options)
            return try beamSearch(context, state: state,
                                  processors: standardProcessors(repetitionPenalty: sampling.repetitionPenalty, limits: limits),
                                  options: options, prefilled: (session, first)) { out, b, _ in
                // Each pass's rows arrive in beam order (the prefill's one row once).
                let s = scores(out, b)
                if b == 0 { step += 1; observer?(step, s) }
                return s
            }
        }
        let first = try session.prefill(context.prompt.items, to: 0, options: options)
        return try decodeTokens(context, session: session, first: first, processors: sampling.processors(context.limits),
                                score: { out, step, _ in
            let s = scores(out, 0)
            observer?(step, s)
            return s
        }, choose: contrastiveChoice(sample: sample, key: context.randomKey), next: { token, _ in
            try session.step([token], options: options)
        })
    }
}

extension VISTADecoder {
    /// llava_llama.py's logits augmentation on one row: `torch.stack(aug_logits).mean(0)` over the logits
    /// layers' rows (`lm_head` of each layer's hidden state, summed in layer order), then
    /// `α·aug + (1 − α)·logits`. The sampling variant hands these scores to the processors and warpers.
    public static func augmented(_ logits: ArraySlice<Float>, layerLogits: [ArraySlice<Float>], alpha: Float) -> [Float] {
        let count = Float(layerLogits.count), oneMinus = Float(1 - Double(alpha))
        return logits.indices.enumerated().map { v, i in
            var sum: Float = 0
            for row in layerLogits { sum += row[row.startIndex + v] }
            return alpha * (sum / count) + oneMinus * logits[i]
        }
    }
}

/// llm_layers.py `VSVLayer.forward` for one steering vector per layer, on one MLP output row.
struct VISTASteering: Sendable {
    /// Per model layer: `normalize(v_l)` and `v_l` itself (for the cosine).
    let directions: [[Float]]
    let vectors: [[Float]]
    let lambda: Float

    init(vectors: [[Float]], lambda: Float) {
        self.vectors = vectors
        directions = vectors.map { v in
            let n = max(VISTASteering.norm(v[...]), 1e-12)
            return v.map { $0 / n }
        }
        self.lambda = lambda
    }

    static func norm(_ x: ArraySlice<Float>) -> Float {
        var s: Float = 0
        for v in x { s += v * v }
        return s.squareRoot()
    }

    func apply(layer: Int, output m: UnsafeMutableBufferPointer<Float>) {
        let v = vectors[layer], d = directions[layer]
        var mm: Float = 0, vv: Float = 0, mv: Float = 0
        for i in m.indices { mm += m[i] * m[i]; vv += v[i] * v[i]; mv += m[i] * v[i] }
        let mNorm = mm.squareRoot()
        // F.cosine_similarity(x, -v): x·(−v) / (max(‖x‖, ε)·max(‖v‖, ε)), ε = 1e-8.
        let cosine = -mv / (max(mNorm, 1e-8) * max(vv.squareRoot(), 1e-8))
        let scale = lambda * (1 + max(0, cosine))
        let mScale = 1 / max(mNorm, 1e-12)
        var uu: Float = 0
        for i in m.indices {
            let u = m[i] * mScale + scale * d[i]
            m[i] = u
            uu += u * u
        }
        let uScale = mNorm / max(uu.squareRoot(), 1e-12)
        for i in m.indices { m[i] *= uScale }
    }
}
