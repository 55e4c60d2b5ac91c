import Foundation
import MirageData
import MirageEngine
import MirageImaging
import MirageTokenizers
import MirageMetrics
import MirageModels
import MirageRunner
import MirageStore
import MirageAnalysis

/// What a parser did with one input. Both are fine: a fuzz target only fails by trapping, hanging or
/// crashing, which no return value can express.
public enum FuzzOutcome: Sendable, Equatable {
    /// The parser read the input without an error.
    case accepted
    /// The parser threw; the text is the error's description.
    case rejected(String)
}

/// One parser fed with bytes by libFuzzer (the `Fuzz/` package) and by the corpus replay test.
public struct FuzzTarget: Sendable {
    /// Name used by `Fuzz/run.sh`, the `MIRAGE_FUZZ_TARGET` variable and the folder under `Fuzz/corpus/`.
    public let name: String
    /// libFuzzer's `-max_len` for this target: large enough for its realistic small inputs.
    public let maxLength: Int
    /// What it parses, for the target list.
    public let summary: String
    let body: @Sendable (Data) throws -> Void

    public init(_ name: String, maxLength: Int, _ summary: String, _ body: @escaping @Sendable (Data) throws -> Void) {
        self.name = name
        self.maxLength = maxLength
        self.summary = summary
        self.body = body
    }

    /// Feeds `data` to the parser; a thrown error is a rejection, not a failure.
    public func run(_ data: Data) -> FuzzOutcome {
        do {
            try body(data)
            return .accepted
        } catch {
            return .rejected(String(describing: error))
        }
    }
}

/// Every fuzzed parser. Adding one is a function below and one line here (plus seeds in
/// `Fuzz/corpus/<name>/`).
public enum FuzzTargets {
    public static let all: [FuzzTarget] = [
        FuzzTarget("json-scanner", maxLength: 4096, "MirageData JSONScanner: readAny, then skipValue over the same bytes") { try jsonScanner($0) },
        FuzzTarget("chair-captions", maxLength: 4096, "MirageMetrics ChairCaptionFile.parse (JSONL, JSON list, concatenated)") { try chairCaptions($0) },
        FuzzTarget("pope-questions", maxLength: 4096, "MirageData POPEQuestionReader.parse and POPEAnswerReader.parse") { try popeQuestions($0) },
        FuzzTarget("pope-answers", maxLength: 4096, "MirageStore PopeAnswerFile.parse") { try popeAnswers($0) },
        FuzzTarget("golden-run", maxLength: 8192, "MirageStore GoldenRun(jsonl:), then a self-check with RegressionGate.exact") { try goldenRun($0) },
        FuzzTarget("tokenizer-json", maxLength: 8192, "MirageEngine Tokenizer(tokenizerJSON:), then encode and decode a fixed text") { try tokenizerJSON($0) },
        FuzzTarget("sentencepiece", maxLength: 16384, "MirageEngine SentencePieceModel and Tokenizer(sentencePieceModel:), then encode and decode a fixed text") { try sentencePiece($0) },
        FuzzTarget("safetensors", maxLength: 4096, "MirageEngine SafeTensorsFile header validation") { try safetensors($0) },
        FuzzTarget("torch-checkpoint", maxLength: 8192, "MirageEngine TorchCheckpointFile: ZIP directory, restricted unpickler, tensor views") { try torchCheckpoint($0) },
        FuzzTarget("protocol-yaml", maxLength: 8192, "MirageRunner RunProtocol.parse") { try protocolYAML($0) },
        FuzzTarget("experiment-yaml", maxLength: 4096, "MirageRunner Experiment.parse") { try experimentYAML($0) },
        FuzzTarget("image", maxLength: 16384, "MirageEngine ImageDecoder.decode (JPEG, PNG via CMirageImage)") { try image($0) },
        FuzzTarget("model-config", maxLength: 4096, "MirageEngine ModelConfig / VisionConfig, or a model family's config (ModelFamilies) from config.json") { try modelConfig($0) },
    ]

    public static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }

    // MARK: Targets

    static func jsonScanner(_ data: Data) throws {
        // Both passes run even when the first throws: the skipping code has its own paths.
        let readError: Error? = {
            do {
                try JSONScanner.withBytes(data, source: "fuzz.json") { s in
                    _ = try s.readAny()
                    if !s.isAtEnd { throw s.error("trailing bytes after the value") }
                }
                return nil
            } catch { return error }
        }()
        try JSONScanner.withBytes(data, source: "fuzz.json") { s in
            while !s.isAtEnd { try s.skipValue() }
        }
        if let readError { throw readError }
    }

    static func chairCaptions(_ data: Data) throws {
        let file = try ChairCaptionFile.parse(data, source: "fuzz.jsonl")
        // `locate` maps a caption index to its line: exercise it for the last caption.
        if !file.captions.isEmpty {
            _ = file.locate(ChairError.unknownImage(imageId: 0, captionIndex: file.captions.count - 1))
        }
    }

    static func popeQuestions(_ data: Data) throws {
        let answersError: Error? = {
            do { _ = try POPEAnswerReader.parse(data, source: "fuzz-answers.jsonl"); return nil } catch { return error }
        }()
        _ = try POPEQuestionReader.parse(data, source: "fuzz-questions.jsonl")
        if let answersError { throw answersError }
    }

    static func popeAnswers(_ data: Data) throws {
        _ = try PopeAnswerFile.parse(data, source: "fuzz-answers.jsonl")
    }

    /// A golden file (`mirage check --write-golden`); an accepted one must pass an exact check against itself.
    static func goldenRun(_ data: Data) throws {
        let golden = try GoldenRun(jsonl: String(decoding: data, as: UTF8.self), source: "fuzz-golden.jsonl")
        let report = RegressionGate.exact(run: golden, baseline: golden)
        precondition(report.status == .pass, "a golden file differs from itself: \(report)")
    }

    /// Text with ASCII, accents, CJK, an emoji, digits, whitespace runs and both special-token spellings.
    static let tokenizerProbe = "Hello  world! <|im_start|>user\nÉcole 東京 🚀 12345\t<s></s>  end"

    static func tokenizerJSON(_ data: Data) throws {
        let tokenizer = try Tokenizer(tokenizerJSON: data)
        let ids = tokenizer.encode(tokenizerProbe)
        _ = tokenizer.decode(ids)
        _ = tokenizer.decode(ids, skipSpecialTokens: true)
        var stream = tokenizer.streamDecoder()
        for id in ids { _ = stream.append(id) }
        _ = stream.finish()
    }

    static func sentencePiece(_ data: Data) throws {
        let tokenizer = try Tokenizer(sentencePieceModel: data)
        let ids = tokenizer.encode(tokenizerProbe)
        _ = tokenizer.decode(ids)
        _ = tokenizer.decode(ids, skipSpecialTokens: true)
    }

    static func safetensors(_ data: Data) throws {
        let file = try SafeTensorsFile(file: MappedFile(copying: data, path: "fuzz.safetensors"))
        for entry in file.tensors.values { _ = entry.elementCount }
    }

    /// A `torch.save` archive: the ZIP directory, the pickle through `RestrictedUnpickler`, then every tensor's
    /// bytes read in row-major order (strided views gathered), touching the first and last byte.
    static func torchCheckpoint(_ data: Data) throws {
        let checkpoint = try TorchCheckpointFile(file: MappedFile(copying: data, path: "fuzz.pth"))
        var sum = 0
        for name in checkpoint.names {
            checkpoint.withContiguousBytes(checkpoint.tensors[name]!) { bytes in
                if let first = bytes.first, let last = bytes.last { sum &+= Int(first) &+ Int(last) }
            }
        }
        _ = sum
    }

    static func protocolYAML(_ data: Data) throws {
        let p = try RunProtocol.parse(String(decoding: data, as: UTF8.self), file: "fuzz.yaml", defaultName: "fuzz")
        _ = try? RunProtocol.render(p.template(for: .llama), text: "What is in the image?")
        _ = p.userText(question: "Is there a dog in the image?")
    }

    static func experimentYAML(_ data: Data) throws {
        _ = try Experiment.parse(String(decoding: data, as: UTF8.self), file: "fuzz.yaml")
    }

    static func image(_ data: Data) throws {
        // The decoder's own pixel limit, lowered to 2^20 pixels (above COCO's ~0.3 Mpx): a 173-byte JPEG that
        // declares 5 Mpx takes ~190 ms in the instrumented build, so the default limit (Pillow's 178,956,970)
        // would slow fuzzing a hundredfold without reaching other code. The refusal path is the real one.
        _ = try ImageDecoder.decode(data, name: "fuzz-image", maxPixels: maxFuzzedPixels)
    }

    static func modelConfig(_ data: Data) throws {
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelError.badConfig(path: "config.json", field: "(file)", detail: "is not a JSON object")
        }
        // A vision-language family's config goes through that family's own reader (`ModelFamily.shape`).
        let folder = ModelFolder(url: URL(fileURLWithPath: "fuzz-model"), config: json, files: ["config.json"])
        if let family = ModelFamilies.all.first(where: { $0.recognizes(folder) }) {
            _ = try family.shape(folder)
        } else {
            _ = try ModelConfig(json: json, path: "config.json")
            if let vision = json["vision_config"] as? [String: Any] {
                _ = try VisionConfig(json: vision, path: "config.json")
            }
        }
    }

    /// The pixel limit the image target decodes under (see `image`).
    static let maxFuzzedPixels = 1 << 20
}
