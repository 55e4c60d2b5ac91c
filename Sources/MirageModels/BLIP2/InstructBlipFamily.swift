import Foundation
import MirageEngine

extension ModelFamily {
    /// transformers' `InstructBlipForConditionalGeneration` with a Llama / Vicuna decoder
    /// (Salesforce/instructblip-vicuna-7b): EVA ViT-g, the instruction-aware Q-Former, Vicuna.
    public static let instructBlip: ModelFamily = ModelFamily(
        name: "instructblip",
        summary: "InstructBLIP in the transformers layout (InstructBlipForConditionalGeneration: EVA ViT-g + "
            + "instruction-aware Q-Former + Llama/Vicuna, e.g. Salesforce/instructblip-vicuna-7b)",
        recognizes: { folder in
            folder.modelType == "instructblip" || folder.architectures.contains("InstructBlipForConditionalGeneration")
        },
        shape: { folder in try Blip2Config.load(folder: folder, readsInstruction: true).shape },
        load: { folder, options in
            try Blip2Model(family: .instructBlip, folder: folder, readsInstruction: true,
                           templates: ModelFamily.instructBlipTemplates, options: options)
        },
        templates: ModelFamily.instructBlipTemplates,
        synthesizer: .blip2(instruct: true))

    /// `processor` first (the default); `opera` is OPERA's InstructBLIP instruction template
    /// (shikiw/OPERA, chair_eval.py `INSTRUCTION_TEMPLATE["instructblip"]` = "<ImageHere><question>": the image rows,
    /// then the question), which renders to the same token ids with this layout's tokenizer. (OPERA's LAVIS set-up
    /// also makes `</s>` the BOS and applies a 1.5 repetition penalty: settings of the original checkpoint layout.)
    static let instructBlipTemplates = [
        Blip2Model.processorTemplate,
        PromptTemplate(name: "opera", format: "\(PromptTemplate.imageMarker){prompt}",
                       summary: "OPERA's InstructBLIP template <ImageHere><question> (same ids as processor)"),
        PromptTemplate(name: "raw", format: "{prompt}", summary: "the prompt as given; it must contain <image>"),
    ]
}

extension ModelFamily {
    /// A random-weight InstructBLIP folder (`--size tiny` or `7b`: instructblip-vicuna-7b's shapes) in the
    /// transformers layout, for `mirage models synth --arch instructblip` once the registry offers synthesis.
    public static func synthesizeInstructBlip(size: SyntheticBlip2Spec.Size, seed: UInt64, dtype: TensorDType = .f16,
                                              to folder: URL, progress: (Double) -> Void = { _ in }) throws {
        try SyntheticBlip2Spec(instruct: true, size: size, seed: seed, dtype: dtype).write(to: folder, progress: progress)
    }
}
