import Foundation
import MirageEngine

// What a decoder needs besides its prompt, declared as data: the branch prompts the runner and `mirage generate`
// build for it, the engine hooks it drives, and its work per step for the memory and cost estimates. Nothing
// outside MirageDecoding looks at a decoder's name or parameters to decide what to build. See docs/decoders.md
// "Adding a decoder".

/// How a branch's image differs from the prompt's.
public enum BranchImage: Sendable, Equatable {
    /// The prompt's own image rows.
    case same
    /// No image rows: the text-only prompt (the image rows removed from the built prompt).
    case none
    /// The image pixels changed by a transform (VCD's diffusion noise, a random crop...), then encoded again.
    case transformed(ImageTransform)
}

/// A change of the pixels before the vision encoder. `apply` gets the preprocessed pixels (channels × height
/// × width, row-major) and the random key of (run seed, image): the same image gets the same change in every
/// item and after a resume.
public struct ImageTransform: Sendable, Equatable {
    /// Names the transform and its settings: images are cached by it (e.g. `vcd-noise:500`).
    public var id: String
    public var apply: @Sendable (_ pixels: [Float], _ channels: Int, _ height: Int, _ width: Int, _ key: RandomKey) throws -> [Float]

    public init(id: String,
                apply: @escaping @Sendable ([Float], Int, Int, Int, RandomKey) throws -> [Float]) {
        self.id = id
        self.apply = apply
    }

    public static func == (a: ImageTransform, b: ImageTransform) -> Bool { a.id == b.id }

    /// VCD's forward diffusion at `step` (`VCDNoiseSchedule.vcd`).
    public static func vcdNoise(step: Int) -> ImageTransform {
        ImageTransform(id: "vcd-noise:\(step)") { pixels, _, _, _, key in
            try VCDNoiseSchedule.vcd.noised(pixels, step: step, key: key)
        }
    }
}

/// How a branch's instruction (the item's question or caption request) differs from the prompt's. The
/// branch's prompt is built with the model's template around the changed instruction, so the text lands
/// where the question does (for SID's ICD: right after the image).
public enum BranchInstruction: Sendable, Equatable {
    case same
    /// `text` placed before the instruction (ICD's disturbance: "You are a confused object detector. " + question).
    case prefixed(String)
    case suffixed(String)
    /// The instruction replaced.
    case replaced(String)

    /// The branch's instruction for an item's `instruction`.
    public func apply(to instruction: String) -> String {
        switch self {
        case .same: return instruction
        case let .prefixed(t): return t + instruction
        case let .suffixed(t): return instruction + t
        case let .replaced(t): return t
        }
    }
}

/// One extra prompt a decoder is given in `DecodingContext.branches[role]`: fed the same generated tokens, with
/// its own rows in the cache.
public struct BranchSpec: Sendable, Equatable {
    public var role: String
    public var image: BranchImage
    public var instruction: BranchInstruction

    public init(role: String, image: BranchImage = .same, instruction: BranchInstruction = .same) {
        self.role = role
        self.image = image
        self.instruction = instruction
    }

    /// Whether the branch needs new image pixels (it cannot be built from a text prompt).
    public var transformsImage: Bool {
        if case .transformed = image { return true }
        return false
    }

    /// For listings: what the branch is.
    public var summary: String {
        var parts: [String] = []
        switch image {
        case .same: break
        case .none: parts.append("no image (text-only prompt)")
        case let .transformed(t): parts.append("image transformed (\(t.id))")
        }
        switch instruction {
        case .same: break
        case let .prefixed(t): parts.append("instruction prefixed with \"\(t)\"")
        case let .suffixed(t): parts.append("instruction followed by \"\(t)\"")
        case let .replaced(t): parts.append("instruction replaced by \"\(t)\"")
        }
        return "\(role): " + (parts.isEmpty ? "the prompt again" : parts.joined(separator: ", "))
    }

    /// The branch built from a prompt that is already laid out, when it needs no new image or instruction:
    /// the prompt itself (`.same`) or its text-only form (`.none`). Nil when the branch needs the runner (a
    /// transformed image, a changed instruction): `mirage generate` then asks for `--branch ROLE=FILE`.
    public func derived(from prompt: PromptLayout) -> PromptLayout? {
        guard instruction == .same else { return nil }
        switch image {
        case .same:
            var p = prompt
            p.prefixLength = nil
            return p
        case .none: return prompt.removingImage()
        case .transformed: return nil
        }
    }
}

/// Which layers a hook touches (transformers' numbering, as `ForwardOptions.hiddenStateLayers`).
public enum LayerSelection: Sendable, Equatable, CustomStringConvertible {
    case all
    case layers([Int])
    /// Chosen per model by the decoder (e.g. DoLa's even layers below the mature one); `rule` says how.
    case perModel(rule: String)

    public var description: String {
        switch self {
        case .all: return "all layers"
        case let .layers(l): return "layers " + l.map(String.init).joined(separator: ",")
        case let .perModel(rule): return rule
        }
    }
}

/// The keys an attention hook reads or edits.
public enum KeyRange: String, Sendable, Equatable {
    case image, text, prompt, all
}

/// An engine hook a decoder drives through `ForwardOptions` (declared for listings and estimates; the decoder
/// sets the options itself).
public enum EngineHook: Sendable, Equatable, CustomStringConvertible {
    /// Attention scores edited before the softmax (OPERA's, PAI's amplification).
    case attentionScoreEdit(layers: LayerSelection, keys: KeyRange)
    /// The last layer's attention probabilities read (OPERA's column scores, SID's token importance).
    case attentionProbabilities(layers: LayerSelection, keys: KeyRange)
    /// A vector added to the residual stream (VISTA's steering vector).
    case residualAddition(layers: LayerSelection)
    /// Residual-stream hidden states returned (DoLa's and DeCo's early exits).
    case hiddenStates(layers: LayerSelection)

    public var description: String {
        switch self {
        case let .attentionScoreEdit(l, k): return "attention-score edit (\(l), \(k.rawValue) keys)"
        case let .attentionProbabilities(l, k): return "attention probabilities (\(l), \(k.rawValue) keys)"
        case let .residualAddition(l): return "residual-stream addition (\(l))"
        case let .hiddenStates(l): return "hidden states (\(l))"
        }
    }
}

/// Everything a decoder needs besides its prompt, and the work it does per generated token.
public struct DecoderInputs: Sendable, Equatable {
    /// The branch prompts, in the order the decoder uses them.
    public var branches: [BranchSpec]
    public var hooks: [EngineHook]
    /// Sequences of the prompt advanced together (beams).
    public var beams: Int
    /// Measured factor on the decode step beyond the sequences (OPERA's candidate re-scoring).
    public var stepFactor: Double

    public init(branches: [BranchSpec] = [], hooks: [EngineHook] = [], beams: Int = 1, stepFactor: Double = 1) {
        self.branches = branches
        self.hooks = hooks
        self.beams = max(1, beams)
        self.stepFactor = stepFactor
    }

    /// Sequences advanced per step: the beams of the prompt and of each branch.
    public var sequencesPerStep: Int { beams * (1 + branches.count) }
    /// Prompts prefilled per item (the prompt, then each branch's own).
    public var promptPrefills: Int { 1 + branches.count }
}

extension PromptLayout {
    /// The prompt without its image rows (the text-only prompt): the rows before and after `imageSpan`, with
    /// `inputIDs` and the OPERA span dropped (they describe the image prompt). Unchanged when there is no image.
    public func removingImage() -> PromptLayout {
        guard let span = imageSpan else { return self }
        return PromptLayout(items: Array(items[..<span.lowerBound]) + Array(items[span.upperBound...]),
                            prefixLength: prefixLength.map { min($0, span.lowerBound) }.flatMap { $0 > 0 ? $0 : nil })
    }
}
