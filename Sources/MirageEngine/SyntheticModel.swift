import Foundation

/// Deterministic random-weight model folders (`mirage models synth`): shapes of real checkpoints with
/// reproducible random weights, for benchmarks and end-to-end checks without downloading anything.
/// The folder is what transformers 5 writes (config.json in its layout, model.safetensors,
/// generation_config.json) plus a byte-level BPE tokenizer covering the whole vocabulary.
public struct SyntheticModelSpec: Sendable {
    public enum Size: String, Sendable, CaseIterable {
        /// 2 layers, hidden 64, 4/2 heads, vocab 512: a few hundred KB.
        case tiny
        /// Qwen2-0.5B shapes: hidden 896, 24 layers, 14/2 heads, intermediate 4864, vocab 151936, tied.
        case halfB = "0.5b"
        /// LLaMA-7B shapes: hidden 4096, 32 layers, 32 heads, intermediate 11008, vocab 32000, untied.
        case sevenB = "7b"
    }

    public var architecture: Architecture
    public var size: Size
    public var seed: UInt64
    public var dtype: TensorDType

    public init(architecture: Architecture, size: Size, seed: UInt64, dtype: TensorDType = .f16) {
        self.architecture = architecture
        self.size = size
        self.seed = seed
        self.dtype = dtype
    }

    /// The special tokens appended at the end of the vocabulary; the first is EOS.
    public static let specialTokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

    public var config: ModelConfig {
        var c: ModelConfig
        switch size {
        case .tiny:
            c = ModelConfig(architecture: architecture, hiddenSize: 64, intermediateSize: 128, numLayers: 2,
                            numHeads: 4, numKVHeads: 2, vocabSize: 512, maxPositionEmbeddings: 2048,
                            tieWordEmbeddings: architecture == .qwen2, ropeTheta: 10000)
        case .halfB:
            c = ModelConfig(architecture: architecture, hiddenSize: 896, intermediateSize: 4864, numLayers: 24,
                            numHeads: 14, numKVHeads: 2, vocabSize: 151936, maxPositionEmbeddings: 32768,
                            tieWordEmbeddings: true, ropeTheta: 1_000_000)
        case .sevenB:
            c = ModelConfig(architecture: architecture, hiddenSize: 4096, intermediateSize: 11008, numLayers: 32,
                            numHeads: 32, numKVHeads: 32, vocabSize: 32000, maxPositionEmbeddings: 2048,
                            tieWordEmbeddings: false, ropeTheta: 10000)
        }
        c.declaredDType = dtype == .f32 ? "float32" : dtype == .f16 ? "float16" : "bfloat16"
        c.eosTokenIDs = [c.vocabSize - Self.specialTokens.count]
        return c
    }

    /// Tensors in file order, with the standard deviation of their uniform random init
    /// (nil: RMSNorm weights, all ones).
    public var tensors: [(SafeTensorsWriter.Declaration, Float?)] { tensorList().entries }

    /// The tensors as a list, names under `prefix` (a multimodal folder's `language_model.`).
    public func tensorList(prefix: String = "") -> SyntheticTensorList {
        let c = config
        let qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim
        var list = SyntheticTensorList(dtype: dtype, prefix: prefix)
        list.add("model.embed_tokens.weight", [c.vocabSize, c.hiddenSize])
        for l in 0..<c.numLayers {
            let p = "model.layers.\(l)."
            list.add(p + "input_layernorm.weight", [c.hiddenSize], std: nil)
            list.add(p + "self_attn.q_proj.weight", [qDim, c.hiddenSize])
            list.add(p + "self_attn.k_proj.weight", [kvDim, c.hiddenSize])
            list.add(p + "self_attn.v_proj.weight", [kvDim, c.hiddenSize])
            if c.qkvBias {
                list.add(p + "self_attn.q_proj.bias", [qDim])
                list.add(p + "self_attn.k_proj.bias", [kvDim])
                list.add(p + "self_attn.v_proj.bias", [kvDim])
            }
            list.add(p + "self_attn.o_proj.weight", [c.hiddenSize, qDim])
            list.add(p + "post_attention_layernorm.weight", [c.hiddenSize], std: nil)
            list.add(p + "mlp.gate_proj.weight", [c.intermediateSize, c.hiddenSize])
            list.add(p + "mlp.up_proj.weight", [c.intermediateSize, c.hiddenSize])
            list.add(p + "mlp.down_proj.weight", [c.hiddenSize, c.intermediateSize])
        }
        list.add("model.norm.weight", [c.hiddenSize], std: nil)
        if !c.tieWordEmbeddings { list.add("lm_head.weight", [c.vocabSize, c.hiddenSize]) }
        return list
    }

    /// Writes the folder (created if needed), streaming the weights in chunks; `progress` gets the
    /// fraction of weight bytes written.
    public func write(to folder: URL, progress: (Double) -> Void = { _ in }) throws {
        let fm = FileManager.default
        do { try fm.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
            throw ModelError.writeFailed(path: folder.path, reason: error.localizedDescription)
        }
        let c = config
        func writeJSON(_ object: Any, _ name: String) throws { try writeJSONFile(object, to: folder.appendingPathComponent(name)) }
        var configJSON = c.transformers5JSON()
        configJSON["transformers_version"] = "5.24.0"
        try writeJSON(configJSON, "config.json")
        try writeJSON(["eos_token_id": c.eosTokenIDs[0], "transformers_version": "5.24.0"], "generation_config.json")
        let tokenizer = SyntheticTokenizerFiles(vocabularySize: c.vocabSize, specialTokens: Self.specialTokens)
        try writeJSON(tokenizer.tokenizerJSON(), "tokenizer.json")
        try writeJSON(tokenizer.tokenizerConfigJSON(), "tokenizer_config.json")

        try writeRandomTensors(tensors, path: folder.appendingPathComponent("model.safetensors").path, seed: seed,
                               progress: progress)
    }
}

/// The tensor list of a random-weight folder, in file order: each declaration with the standard deviation of its
/// uniform random init (nil: all ones, for LayerNorm / RMSNorm weights). The synthesizers of every layout build
/// their lists with it and hand `entries` to `writeRandomTensors`.
public struct SyntheticTensorList: Sendable {
    public var dtype: TensorDType
    /// Prepended to every name added.
    public var prefix: String
    public private(set) var entries: [(SafeTensorsWriter.Declaration, Float?)] = []
    /// The standard deviation of every random tensor (transformers' `initializer_range` default).
    public static let std: Float = 0.02

    public init(dtype: TensorDType, prefix: String = "") {
        self.dtype = dtype
        self.prefix = prefix
    }

    /// A random tensor (`std` nil: all ones).
    public mutating func add(_ name: String, _ shape: [Int], std: Float? = SyntheticTensorList.std) {
        entries.append((.init(name: prefix + name, dtype: dtype, shape: shape), std))
    }

    /// A LayerNorm: `p.weight` (ones) and `p.bias` (random), `p` ending with the separator.
    public mutating func norm(_ p: String, _ width: Int) {
        add(p + "weight", [width], std: nil)
        add(p + "bias", [width])
    }

    /// A linear layer `[rows, cols]` with its bias: `p.weight`, `p.bias`.
    public mutating func dense(_ p: String, rows: Int, cols: Int) {
        add(p + "weight", [rows, cols])
        add(p + "bias", [rows])
    }

    /// A transformer block's MLP `p.fc1` (`intermediate × hidden`) and `p.fc2`, as CLIP, SigLIP and EVA name it.
    public mutating func mlp(_ p: String, hidden: Int, intermediate: Int) {
        dense(p + "fc1.", rows: intermediate, cols: hidden)
        dense(p + "fc2.", rows: hidden, cols: intermediate)
    }

    public static func += (list: inout SyntheticTensorList, other: SyntheticTensorList) {
        list.entries += other.entries
    }

    /// The number of values (parameters) of every tensor.
    public var parameterCount: Int { entries.reduce(0) { $0 + $1.0.shape.reduce(1, *) } }
}

/// Writes a JSON object pretty-printed with sorted keys (as the synthetic folders' config files).
public func writeJSONFile(_ object: Any, to url: URL) throws {
    do {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: url)
    } catch {
        throw ModelError.writeFailed(path: url.path, reason: error.localizedDescription)
    }
}

/// Streams `tensors` into a safetensors file: uniform values with each tensor's standard deviation
/// (nil: all ones), from SplitMix64 seeded per tensor index, so the same seed gives the same bytes.
/// `rowScales[name]` multiplies row r of that (2-D) tensor by `rowScales[name]![r]` after drawing.
public func writeRandomTensors(_ tensors: [(SafeTensorsWriter.Declaration, Float?)], path: String, seed: UInt64,
                        rowScales: [String: [Float]] = [:], progress: (Double) -> Void) throws {
    let writer = try SafeTensorsWriter(path: path, tensors: tensors.map(\.0),
                                       metadata: ["format": "pt", "mirage_seed": "\(seed)"])
    let total = tensors.reduce(0) { $0 + $1.0.byteCount }
    var done = 0
    let chunk = 1 << 20
    var values = [Float](repeating: 0, count: chunk)
    for (index, (declaration, std)) in tensors.enumerated() {
        let count = declaration.shape.reduce(1, *)
        var random = SplitMix64(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index))
        let halfWidth = (std ?? 0) * 3.0.squareRoot().asFloat   // uniform(-a, a) has std a/√3
        var written = 0
        while written < count {
            let n = min(chunk, count - written)
            if std == nil {
                for i in 0..<n { values[i] = 1 }
            } else {
                for i in 0..<n { values[i] = halfWidth * random.nextSignedUnit() }
            }
            if let scales = rowScales[declaration.name], declaration.shape.count == 2 {
                let columns = declaration.shape[1]
                for i in 0..<n { values[i] *= scales[(written + i) / columns] }
            }
            try writer.write(Array(values[0..<n]), as: declaration.dtype)
            written += n
            done += n * declaration.dtype.byteSize
            progress(Double(done) / Double(max(total, 1)))
        }
    }
    try writer.finish()
}

private extension Double {
    var asFloat: Float { Float(self) }
}

/// SplitMix64 (Steele, Lea & Flood 2014): a small, fast, reproducible generator.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [-1, 1) with 24 random bits.
    mutating func nextSignedUnit() -> Float {
        Float(Int32(truncatingIfNeeded: next() >> 40) - (1 << 23)) / Float(1 << 23)
    }
}

/// A byte-level BPE tokenizer (the GPT-2 / Qwen2 family of tokenizer.json) with exactly
/// `vocabularySize` entries: the 256 byte symbols, merged tokens built from space and lowercase
/// letters (" a", "ab", " ab", ...) until the vocabulary is full, then the special tokens.
public struct SyntheticTokenizerFiles {
    public let vocabularySize: Int
    public let specialTokens: [String]
    /// Whole words (lower-case ASCII letters) that get their own space-led token (" dog"), built by merges
    /// letter by letter before the generic fill, so a demo model can emit real words. Empty: none.
    public var words: [String] = []

    public init(vocabularySize: Int, specialTokens: [String]) {
        self.vocabularySize = vocabularySize
        self.specialTokens = specialTokens
    }

    /// GPT-2's byte ↔ printable-character table (openai/gpt-2 encoder.py `bytes_to_unicode`): printable
    /// Latin-1 bytes map to themselves, the other bytes to U+0100 upwards in byte order.
    static let byteSymbols: [String] = {
        let printable = Set(Array(33...126) + Array(161...172) + Array(174...255))
        var next = 256
        return (0..<256).map { b in
            if printable.contains(b) { return String(UnicodeScalar(UInt8(b))) }
            defer { next += 1 }
            return String(UnicodeScalar(UInt32(next))!)
        }
    }()

    func vocabularyAndMerges() -> ([String], [[String]]) {
        var tokens = Self.byteSymbols
        var seen = Set(tokens)
        var merges: [[String]] = []
        let atoms = [Self.byteSymbols[32]] + (97...122).map { Self.byteSymbols[$0] }   // "Ġ" and a-z
        let target = vocabularySize - specialTokens.count
        for word in words {
            let symbols = [Self.byteSymbols[32]] + word.utf8.map { Self.byteSymbols[Int($0)] }
            var prefix = symbols[0]
            for symbol in symbols.dropFirst() {
                let merged = prefix + symbol
                if !seen.contains(merged) {
                    precondition(tokens.count < target, "the vocabulary is too small for the words")
                    seen.insert(merged)
                    tokens.append(merged)
                    merges.append([prefix, symbol])
                }
                prefix = merged
            }
        }
        var frontier = atoms
        while tokens.count < target {
            var nextFrontier: [String] = []
            outer: for left in frontier {
                for right in atoms {
                    guard tokens.count < target else { break outer }
                    let merged = left + right
                    if right == atoms[0] || seen.contains(merged) { continue }   // spaces only lead a word
                    seen.insert(merged)
                    tokens.append(merged)
                    merges.append([left, right])
                    nextFrontier.append(merged)
                }
            }
            frontier = nextFrontier
        }
        return (tokens, merges)
    }

    /// The token id of each word of `words` (its space-led whole-word token).
    public func wordTokenIDs() -> [Int] {
        let (tokens, _) = vocabularyAndMerges()
        var index: [String: Int] = [:]
        for (i, t) in tokens.enumerated() { index[t] = i }
        return words.map { index[Self.byteSymbols[32] + $0.utf8.map { Self.byteSymbols[Int($0)] }.joined()]! }
    }

    public func tokenizerJSON() -> [String: Any] {
        let (tokens, merges) = vocabularyAndMerges()
        var vocab: [String: Int] = [:]
        for (i, t) in tokens.enumerated() { vocab[t] = i }
        let added: [[String: Any]] = specialTokens.enumerated().map { i, content in
            ["id": tokens.count + i, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
             "normalized": false, "special": true]
        }
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false]
        return [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "normalizer": NSNull(),
            "added_tokens": added,
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true],
            "post_processor": byteLevel,
            "decoder": byteLevel,
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                      "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": merges] as [String: Any],
        ]
    }

    public func tokenizerConfigJSON() -> [String: Any] {
        let eos = specialTokens[0]
        var decoder: [String: Any] = [:]
        for (i, content) in specialTokens.enumerated() {
            decoder["\(vocabularySize - specialTokens.count + i)"] = [
                "content": content, "lstrip": false, "normalized": false, "rstrip": false, "single_word": false, "special": true,
            ]
        }
        return ["tokenizer_class": "PreTrainedTokenizerFast", "eos_token": eos, "pad_token": eos, "bos_token": NSNull(),
                "add_prefix_space": false, "model_max_length": 32768, "added_tokens_decoder": decoder]
    }
}
