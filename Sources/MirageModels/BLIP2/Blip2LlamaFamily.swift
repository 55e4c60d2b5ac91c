import Foundation
import MirageEngine

extension ModelFamily {
    /// transformers' `Blip2ForConditionalGeneration` with a Llama decoder: EVA ViT-g, the BLIP-2 Q-Former (no
    /// instruction), `language_projection`, Llama. (BLIP-2's published OPT / Flan-T5 decoders are not Llama and are
    /// refused with a message.)
    public static let blip2Llama: ModelFamily = ModelFamily(
        name: "blip2",
        summary: "BLIP-2 with a Llama decoder in the transformers layout (Blip2ForConditionalGeneration: EVA ViT-g + "
            + "Q-Former + Llama)",
        recognizes: { folder in
            folder.modelType == "blip-2" || folder.architectures.contains("Blip2ForConditionalGeneration")
        },
        shape: { folder in try Blip2Config.load(folder: folder, readsInstruction: false).shape },
        load: { folder, options in
            try Blip2Model(family: .blip2Llama, folder: folder, readsInstruction: false,
                           templates: ModelFamily.blip2Templates, options: options)
        },
        templates: ModelFamily.blip2Templates,
        synthesizer: .blip2(instruct: false))

    static let blip2Templates = [
        Blip2Model.processorTemplate,
        PromptTemplate(name: "raw", format: "{prompt}", summary: "the prompt as given; it must contain <image>"),
    ]
}

extension ModelFamily {
    /// A random-weight BLIP-2 (Llama) folder (`--size tiny` or `7b`: EVA ViT-g, BERT-base Q-Former, LLaMA-7B) in the
    /// transformers layout, for `mirage models synth --arch blip2-llama` once the registry offers synthesis.
    public static func synthesizeBlip2Llama(size: SyntheticBlip2Spec.Size, seed: UInt64, dtype: TensorDType = .f16,
                                            to folder: URL, progress: (Double) -> Void = { _ in }) throws {
        try SyntheticBlip2Spec(instruct: false, size: size, seed: seed, dtype: dtype).write(to: folder, progress: progress)
    }
}

extension ModelSynthesizer {
    /// `mirage models synth --arch instructblip|blip2-llama --size tiny|7b` (`SyntheticBlip2Spec`).
    static func blip2(instruct: Bool) -> ModelSynthesizer {
        blip2Shapes(architecture: instruct ? "instructblip" : "blip2-llama") { size, request, folder, progress in
            let spec = SyntheticBlip2Spec(instruct: instruct, size: size, seed: request.seed, dtype: request.dtype)
            try spec.write(to: folder, progress: progress)
            return spec
        }
    }
}
