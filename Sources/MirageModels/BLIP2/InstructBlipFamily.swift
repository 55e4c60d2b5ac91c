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
        })

    /// `processor` first (the default); `opera` is OPERA's InstructBLIP instruction template
    /// (shikiw/OPERA, chair_eval.py `INSTRUCTION_TEMPLATE["instructblip"]` = "<ImageHere><question>": the image rows,
    /// then the question), which renders to the same token ids.
    static let instructBlipTemplates = [
        Blip2Model.processorTemplate,
        PromptTemplate(name: "opera", format: "\(PromptTemplate.imageMarker){prompt}",
                       summary: "OPERA's InstructBLIP template <ImageHere><question> (same ids as processor)"),
        PromptTemplate(name: "raw", format: "{prompt}", summary: "the prompt as given; it must contain <image>"),
    ]
}
