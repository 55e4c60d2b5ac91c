import ArgumentParser
import Foundation
import MirageEngine
import MirageModels

/// `mirage models`: model folders.
struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "Create, convert and assemble model folders.",
        discussion: """
        synth writes a random-weight folder; convert turns PyTorch checkpoints (pytorch_model.bin, sharded .bin, \
        .pth) into a safetensors folder; apply-delta rebuilds a model published as a delta to LLaMA (Shikra). \
        Mirage also loads PyTorch checkpoint folders directly (docs/checkpoints.md).
        """,
        subcommands: [
            ModelsSynth.self,
            ModelsQuantize.self,
            ModelsFamilies.self,
            ModelsConvert.self,
            ModelsApplyDelta.self,
            ModelsAssemble.self,
        ])
}

/// `mirage models synth`: a deterministic random-weight model folder.
struct ModelsSynth: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write a deterministic random-weight model folder with real model shapes.",
        discussion: """
        The folder is what transformers 5 writes (config.json, model.safetensors, generation_config.json) plus \
        a byte-level BPE tokenizer covering the vocabulary, so Mirage and transformers both load it. Weights \
        are uniform with standard deviation 0.02 (RMSNorm weights 1) from SplitMix64 seeded by --seed: the same \
        seed gives the same bytes. Use it for benchmarks and end-to-end checks; its text is gibberish.

        Sizes: tiny (2 layers, hidden 64, vocab 512, < 1 MB), 0.5b (Qwen2-0.5B shapes: ~1 GB in f16), \
        7b (LLaMA-7B shapes: 13.5 GB in f16; written in a stream, needs the disk space, not the memory).

        Vision-language models: every family in `mirage models families` offers its architectures here. \
        LLaVA: --arch llava-llama or llava-qwen2 adds a vision tower (--vision clip or siglip; tiny size: 32×32 \
        images with patch 8, other sizes: ViT-L/14-336 shapes) and the 2-layer projector, with \
        preprocessor_config.json, processor_config.json and `<image>` as the tokenizer's last token.

        InstructBLIP / BLIP-2: --arch instructblip or blip2-llama writes InstructBlipForConditionalGeneration / \
        Blip2ForConditionalGeneration with a Llama decoder (tiny: 32-wide EVA tower on 32×32 images, 32-wide \
        Q-Former, 4 queries; 7b: instructblip-vicuna-7b's shapes, EVA ViT-g + BERT-base Q-Former + LLaMA-7B), \
        with a BlipImageProcessor processor_config.json and, for InstructBLIP, a qformer_tokenizer/ (docs/models.md).

        LAVIS layouts (OPERA's InstructBLIP and MiniGPT-4): --arch instructblip-lavis or minigpt4 writes the folder \
        `mirage models assemble` puts together from the released pieces (EVA under its eva_vit_g.pth names with \
        ln_vision, Qformer.bert.*, query_tokens, llm_proj / llama_proj, the Vicuna model.*), with the same shapes as \
        instructblip (tiny or 7b) and a byte-level tokenizer holding <s> and </s> (docs/models.md).

        Original layouts: --arch llava-original or shikra (tiny or 7b) writes the model folder and its CLIP tower \
        folder beside it, as the published checkpoints keep them (docs/vision.md).

        Examples:
          mirage models synth --arch llava-llama --vision clip --size tiny --seed 3 --out ./tiny-llava
          mirage models synth --arch instructblip --size tiny --seed 3 --out ./tiny-instructblip
          mirage models synth --arch minigpt4 --size 7b --seed 1 --out /tmp/minigpt4-7b-f16
          mirage models synth --arch qwen2 --size 0.5b --seed 1 --out /tmp/qwen2-0.5b-f16
          mirage models synth --arch llama --size tiny --seed 7 --out ./tiny --dtype f32
        """)

    @Option(name: .long, help: ArgumentHelp("llama (LlamaForCausalLM), qwen2 (Qwen2ForCausalLM, with q/k/v biases), or a vision-language architecture of `mirage models families`: \(ModelFamilies.synthArchitectures.joined(separator: ", ")).", valueName: "arch"))
    var arch: String

    @Option(name: .long, help: ArgumentHelp("Vision tower, for families with a choice (LLaVA: clip or siglip; default: the family's first).", valueName: "name"))
    var vision: String?

    @Option(name: .long, help: ArgumentHelp("tiny, 0.5b or 7b (a family may offer fewer: see `mirage models families`).", valueName: "tiny|0.5b|7b"))
    var size: String

    @Option(name: .long, help: "Random seed.")
    var seed: UInt64 = 0

    @Option(name: .long, help: ArgumentHelp("Output folder (must not exist or be empty, unless --force).", valueName: "dir"))
    var out: String

    @Option(name: .long, help: ArgumentHelp("Weight dtype.", valueName: "f32|f16|bf16"))
    var dtype = "f16"

    @Flag(name: .long, help: "Overwrite the files of an existing folder.")
    var force = false

    /// The text-only decoders `synth` writes itself; vision-language architectures come from the registry.
    static let textArchitectures = ["llama", "qwen2"]

    func validate() throws {
        let all = Self.textArchitectures + ModelFamilies.synthArchitectures
        guard all.contains(arch) else {
            throw ValidationError("--arch takes \(all.joined(separator: ", ")) (got '\(arch)'); `mirage models families` describes the vision-language ones")
        }
        if let (family, synthesizer) = ModelFamilies.synthesizer(for: arch) {
            if let vision, !synthesizer.visions.contains(vision) {
                throw ValidationError(synthesizer.visions.isEmpty
                    ? "--vision: \(family.name) has one vision tower; omit --vision"
                    : "--vision takes \(synthesizer.visions.joined(separator: " or ")) for \(arch) (got '\(vision)')")
            }
            guard synthesizer.sizes.contains(size) else {
                throw ValidationError("--size takes \(synthesizer.sizes.joined(separator: ", ")) for \(arch) (got '\(size)')")
            }
        } else {
            if vision != nil { throw ValidationError("--vision is for vision-language architectures; \(arch) is a text-only decoder") }
            guard SyntheticModelSpec.Size(rawValue: size) != nil else { throw ValidationError("--size takes tiny, 0.5b or 7b (got '\(size)')") }
        }
        guard ["f32", "f16", "bf16"].contains(dtype) else { throw ValidationError("--dtype takes f32, f16 or bf16 (got '\(dtype)')") }
    }

    func run() throws {
        let tensorType: TensorDType = dtype == "f32" ? .f32 : dtype == "f16" ? .f16 : .bf16
        let folder = URL(fileURLWithPath: (out as NSString).expandingTildeInPath)
        let existing = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        if !existing.isEmpty && !force {
            throw ValidationError("\(folder.path) is not empty; choose another --out or pass --force to overwrite")
        }
        var lastPercent = -1
        let interactive = isatty(STDERR_FILENO) != 0
        let report: (Double) -> Void = { fraction in
            let percent = Int(fraction * 100)
            if interactive && percent != lastPercent {
                lastPercent = percent
                FileHandle.standardError.write(Data("\rwriting weights: \(percent)%".utf8))
            }
        }
        let description: String
        if let (_, synthesizer) = ModelFamilies.synthesizer(for: arch) {
            let request = SynthesisRequest(architecture: arch, size: size, vision: vision, seed: seed, dtype: tensorType)
            description = try synthesizer.write(request, folder, report)
        } else {
            let spec = SyntheticModelSpec(architecture: arch == "llama" ? .llama : .qwen2,
                                          size: SyntheticModelSpec.Size(rawValue: size)!, seed: seed, dtype: tensorType)
            try spec.write(to: folder, progress: report)
            let c = spec.config
            description = "\(c.architecture.rawValue), \(c.numLayers) layers, hidden \(c.hiddenSize), "
                + "\(c.numHeads)/\(c.numKVHeads) heads, vocab \(c.vocabSize), \(dtype)"
        }
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
        print("wrote \(folder.path): \(description)")
    }
}

/// `mirage models families`: the registry of vision-language model families.
struct ModelsFamilies: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "families",
        abstract: "List the vision-language model families Mirage loads.",
        discussion: """
        Each family recognises its model folders (config.json's model_type and architectures), reads their \
        shape, loads them, and may write random-weight folders (`mirage models synth --arch NAME`). \
        docs/ARCHITECTURE.md, "How to add a model family", says how to add one.
        """)

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() throws {
        let rows = ModelFamilies.all.map { family -> [String: Any] in
            ["name": family.name, "summary": family.summary,
             "synth_architectures": family.synthesizer?.architectures ?? [],
             "synth_sizes": family.synthesizer?.sizes ?? [],
             "templates": family.templates.map(\.name) + [PromptTemplate.processor.name]]
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: rows, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        for family in ModelFamilies.all {
            print("\(family.name): \(family.summary)")
            if let s = family.synthesizer {
                print("  synth: --arch \(s.architectures.joined(separator: "|")) --size \(s.sizes.joined(separator: "|"))"
                      + (s.visions.isEmpty ? "" : " --vision \(s.visions.joined(separator: "|"))"))
            } else {
                print("  synth: none")
            }
            print("  templates: auto, " + (family.templates.map(\.name) + [PromptTemplate.processor.name]).joined(separator: ", "))
        }
    }
}
