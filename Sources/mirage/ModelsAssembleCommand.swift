import ArgumentParser
import Foundation
import MirageEngine
import MirageModels

/// `mirage models assemble`: one loadable folder from LAVIS' separately released pieces.
struct ModelsAssemble: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "assemble",
        abstract: "Put LAVIS' released pieces of MiniGPT-4 or InstructBLIP into one model folder Mirage loads.",
        discussion: """
        OPERA runs MiniGPT-4 and InstructBLIP from LAVIS' checkpoints: EVA ViT-g (eva_vit_g), a Q-Former \
        checkpoint (MiniGPT-4: BLIP-2's blip2_pretrained_flant5xxl; InstructBLIP: instruct_blip_vicuna7b_trimmed, \
        which also holds llm_proj), MiniGPT-4's projector (prerained_minigpt4_7b, llama_proj), a Vicuna folder and \
        bert-base-uncased. This command reads the released files as they are (PyTorch .pth checkpoints, LAVIS' \
        {'model': ...} included, the Vicuna folder's .bin shards, or safetensors), writes all their tensors into \
        --out as safetensors (model.safetensors, or shards with model.safetensors.index.json past 5 GB) and writes \
        config.json (model_type lavis-blip2), the Vicuna tokenizer (its SentencePiece tokenizer.model) and \
        generation config, and InstructBLIP's qformer_tokenizer/. The folder then loads as the `minigpt4` or \
        `instructblip-lavis` family (docs/models.md).

        Nothing needs converting first: the Vicuna folder is used as downloaded (config.json, \
        pytorch_model-*.bin with their index, tokenizer.model, tokenizer_config.json, generation_config.json if \
        it has one, which decides the EOS id OPERA's wrappers run with; docs/paper-models.md).

        Examples:
          mirage models assemble minigpt4 --vicuna vicuna-7b-v0 --eva eva_vit_g.pth \\
              --qformer blip2_pretrained_flant5xxl.pth --projector prerained_minigpt4_7b.pth \\
              --bert bert-base-uncased --out minigpt4-7b
          mirage models assemble instructblip --vicuna vicuna-7b-v1.1 --eva eva_vit_g.pth \\
              --qformer instruct_blip_vicuna7b_trimmed.pth --bert bert-base-uncased --out instructblip-7b
        """)

    @Argument(help: ArgumentHelp("The model.", valueName: "minigpt4|instructblip"))
    var model: String

    @Option(name: .long, help: ArgumentHelp("The Vicuna folder (config.json, .bin or safetensors weights, tokenizer.model).", valueName: "dir"))
    var vicuna: String

    @Option(name: .long, help: ArgumentHelp("EVA ViT-g's weights (eva_vit_g.pth, or safetensors).", valueName: "file"))
    var eva: String

    @Option(name: .customLong("qformer"), help: ArgumentHelp("The Q-Former checkpoint (BLIP-2's for MiniGPT-4, InstructBLIP's own): the .pth as released, or safetensors.", valueName: "file"))
    var qformer: String

    @Option(name: .long, help: ArgumentHelp("MiniGPT-4's projector (llama_proj, prerained_minigpt4_7b.pth, or safetensors).", valueName: "file"))
    var projector: String?

    @Option(name: .long, help: ArgumentHelp("The Q-Former's BERT folder (bert-base-uncased: config.json, vocab.txt).", valueName: "dir"))
    var bert: String

    @Option(name: .customLong("vision-heads"), help: "EVA's attention heads (16 for ViT-g).")
    var visionHeads = 16

    @Option(name: .long, help: ArgumentHelp("The folder to write.", valueName: "dir"))
    var out: String

    @Flag(name: .long, help: "Write into a non-empty --out.")
    var force = false

    func validate() throws {
        guard ["minigpt4", "instructblip"].contains(model) else {
            throw ValidationError("the model is minigpt4 or instructblip (got '\(model)')")
        }
        if model == "minigpt4" && projector == nil {
            throw ValidationError("minigpt4 needs --projector (llama_proj, e.g. prerained_minigpt4_7b.pth)")
        }
        if model == "instructblip" && projector != nil {
            throw ValidationError("instructblip has its projection (llm_proj) in the --qformer checkpoint: drop --projector")
        }
        if visionHeads < 1 { throw ValidationError("--vision-heads must be at least 1") }
    }

    func run() throws {
        func url(_ path: String) -> URL { URL(fileURLWithPath: (path as NSString).expandingTildeInPath) }
        let folder = url(out)
        let existing = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        if !existing.isEmpty && !force {
            throw ValidationError("\(folder.path) is not empty; choose another --out or pass --force to overwrite")
        }
        try LavisAssembly(architecture: model == "minigpt4" ? .miniGPT4 : .instructBlip, vicuna: url(vicuna),
                          visionEncoder: url(eva), qformer: url(qformer), projector: projector.map(url), bert: url(bert),
                          visionHeads: visionHeads).write(to: folder)
        let (family, _) = try ModelFamilies.family(of: folder)
        let shape = try ModelFamilies.shape(of: folder)
        print("wrote \(folder.path): \(family.name), \(shape.imageTokenCount) image rows, decoder \(shape.text.numLayers) layers "
              + "hidden \(shape.text.hiddenSize)")
    }
}
