import ArgumentParser
import Foundation
import MirageEngine

/// `mirage models`: model folders.
struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "Create and manage model folders.",
        subcommands: [
            ModelsSynth.self,
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

        LLaVA: --arch llava-llama or llava-qwen2 adds a vision tower (--vision clip or siglip; tiny size: 32×32 \
        images with patch 8, other sizes: ViT-L/14-336 shapes) and the 2-layer projector, with \
        preprocessor_config.json, processor_config.json and `<image>` as the tokenizer's last token.

        InstructBLIP / BLIP-2: --arch instructblip or blip2-llama writes InstructBlipForConditionalGeneration / \
        Blip2ForConditionalGeneration with a Llama decoder (tiny: 32-wide EVA tower on 32×32 images, 32-wide \
        Q-Former, 4 queries; 7b: instructblip-vicuna-7b's shapes, EVA ViT-g + BERT-base Q-Former + LLaMA-7B), \
        with a BlipImageProcessor processor_config.json and, for InstructBLIP, a qformer_tokenizer/ (docs/models.md).

        Examples:
          mirage models synth --arch llava-llama --vision clip --size tiny --seed 3 --out ./tiny-llava
          mirage models synth --arch instructblip --size tiny --seed 3 --out ./tiny-instructblip
          mirage models synth --arch qwen2 --size 0.5b --seed 1 --out /tmp/qwen2-0.5b-f16
          mirage models synth --arch llama --size tiny --seed 7 --out ./tiny --dtype f32
        """)

    @Option(name: .long, help: ArgumentHelp("llama (LlamaForCausalLM), qwen2 (Qwen2ForCausalLM, with q/k/v biases), llava-llama / llava-qwen2 (LlavaForConditionalGeneration), or instructblip / blip2-llama (InstructBlipForConditionalGeneration / Blip2ForConditionalGeneration, tiny or 7b).", valueName: "llama|qwen2|llava-llama|llava-qwen2|instructblip|blip2-llama"))
    var arch: String

    @Option(name: .long, help: ArgumentHelp("Vision tower of a LLaVA --arch.", valueName: "clip|siglip"))
    var vision = "clip"

    @Option(name: .long, help: ArgumentHelp("tiny, 0.5b or 7b.", valueName: "tiny|0.5b|7b"))
    var size: String

    @Option(name: .long, help: "Random seed.")
    var seed: UInt64 = 0

    @Option(name: .long, help: ArgumentHelp("Output folder (must not exist or be empty, unless --force).", valueName: "dir"))
    var out: String

    @Option(name: .long, help: ArgumentHelp("Weight dtype.", valueName: "f32|f16|bf16"))
    var dtype = "f16"

    @Flag(name: .long, help: "Overwrite the files of an existing folder.")
    var force = false

    func validate() throws {
        guard ["llama", "qwen2", "llava-llama", "llava-qwen2", "instructblip", "blip2-llama"].contains(arch) else {
            throw ValidationError("--arch takes llama, qwen2, llava-llama, llava-qwen2, instructblip or blip2-llama (got '\(arch)')")
        }
        if Self.blip2Archs.contains(arch) && SyntheticBlip2Spec.Size(rawValue: size) == nil {
            throw ValidationError("--arch \(arch) takes --size tiny or 7b (got '\(size)')")
        }
        guard ["clip", "siglip"].contains(vision) else { throw ValidationError("--vision takes clip or siglip (got '\(vision)')") }
        guard SyntheticModelSpec.Size(rawValue: size) != nil else { throw ValidationError("--size takes tiny, 0.5b or 7b (got '\(size)')") }
        guard ["f32", "f16", "bf16"].contains(dtype) else { throw ValidationError("--dtype takes f32, f16 or bf16 (got '\(dtype)')") }
    }

    static let blip2Archs = ["instructblip", "blip2-llama"]

    func run() throws {
        if Self.blip2Archs.contains(arch) { return try runBlip2() }
        let spec = SyntheticModelSpec(architecture: arch.hasSuffix("llama") ? .llama : .qwen2,
                                      size: SyntheticModelSpec.Size(rawValue: size)!, seed: seed,
                                      dtype: dtype == "f32" ? .f32 : dtype == "f16" ? .f16 : .bf16)
        let folder = URL(fileURLWithPath: (out as NSString).expandingTildeInPath)
        let existing = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        if !existing.isEmpty && !force {
            throw ValidationError("\(folder.path) is not empty; choose another --out or pass --force to overwrite")
        }
        var lastPercent = -1
        let interactive = isatty(STDERR_FILENO) != 0
        let llava = arch.hasPrefix("llava-") ? SyntheticLlavaSpec(
            text: spec, vision: SyntheticVisionSpec(kind: vision == "clip" ? .clip : .siglip,
                                                    size: spec.size == .tiny ? .tiny : .l14_336, seed: spec.seed, dtype: spec.dtype)) : nil
        let write = llava.map { l in { (p: (Double) -> Void) in try l.write(to: folder, progress: p) } }
            ?? { p in try spec.write(to: folder, progress: p) }
        try write { fraction in
            let percent = Int(fraction * 100)
            if interactive && percent != lastPercent {
                lastPercent = percent
                FileHandle.standardError.write(Data("\rwriting weights: \(percent)%".utf8))
            }
        }
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
        let c = spec.config
        print("wrote \(folder.path): \(c.architecture.rawValue), \(c.numLayers) layers, hidden \(c.hiddenSize), "
              + "\(c.numHeads)/\(c.numKVHeads) heads, vocab \(c.vocabSize), \(dtype)"
              + (llava.map { l in ", \(vision) tower \(l.vision.config.imageSize)px/\(l.vision.config.patchSize) (\(l.config.imageTokenCount) image tokens, image token id \(l.config.imageTokenID))" } ?? ""))
    }

    /// InstructBLIP / BLIP-2 (Llama) folders (`SyntheticBlip2Spec`).
    func runBlip2() throws {
        let spec = SyntheticBlip2Spec(instruct: arch == "instructblip", size: SyntheticBlip2Spec.Size(rawValue: size)!, seed: seed,
                                      dtype: dtype == "f32" ? .f32 : dtype == "f16" ? .f16 : .bf16)
        let folder = URL(fileURLWithPath: (out as NSString).expandingTildeInPath)
        let existing = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        if !existing.isEmpty && !force {
            throw ValidationError("\(folder.path) is not empty; choose another --out or pass --force to overwrite")
        }
        var lastPercent = -1
        let interactive = isatty(STDERR_FILENO) != 0
        try spec.write(to: folder) { fraction in
            let percent = Int(fraction * 100)
            if interactive && percent != lastPercent {
                lastPercent = percent
                FileHandle.standardError.write(Data("\rwriting weights: \(percent)%".utf8))
            }
        }
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
        let t = spec.text.config, v = spec.vision
        print("wrote \(folder.path): \(arch), EVA tower \(v.hiddenSize) wide × \(v.numLayers) blocks at \(v.imageSize)px, "
              + "Q-Former \(spec.qformer.hiddenSize) wide × \(spec.qformer.numLayers) layers, \(spec.numQueryTokens) image rows, "
              + "llama decoder \(t.numLayers) layers hidden \(t.hiddenSize), \(dtype)")
    }
}
