import Foundation
import MirageData
import MirageEngine
import MirageMetrics
import MirageRunner
import MirageStore

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
/// `Fuzz/corpus/<name>/`); the PyTorch pickle reader joins this way once it exists.
public enum FuzzTargets {
    public static let all: [FuzzTarget] = [
        FuzzTarget("json-scanner", maxLength: 4096, "MirageData JSONScanner: readAny, then skipValue over the same bytes") { try jsonScanner($0) },
        FuzzTarget("chair-captions", maxLength: 4096, "MirageMetrics ChairCaptionFile.parse (JSONL, JSON list, concatenated)") { try chairCaptions($0) },
        FuzzTarget("pope-questions", maxLength: 4096, "MirageData POPEQuestionReader.parse and POPEAnswerReader.parse") { try popeQuestions($0) },
        FuzzTarget("pope-answers", maxLength: 4096, "MirageStore PopeAnswerFile.parse") { try popeAnswers($0) },
        FuzzTarget("tokenizer-json", maxLength: 8192, "MirageEngine Tokenizer(tokenizerJSON:), then encode and decode a fixed text") { try tokenizerJSON($0) },
        FuzzTarget("safetensors", maxLength: 4096, "MirageEngine SafeTensorsFile header validation") { try safetensors($0) },
        FuzzTarget("protocol-yaml", maxLength: 8192, "MirageRunner RunProtocol.parse") { try protocolYAML($0) },
        FuzzTarget("experiment-yaml", maxLength: 4096, "MirageRunner Experiment.parse") { try experimentYAML($0) },
        FuzzTarget("image", maxLength: 16384, "MirageEngine ImageDecoder.decode (JPEG, PNG via CMirageImage)") { try image($0) },
        FuzzTarget("model-config", maxLength: 4096, "MirageEngine ModelConfig / VisionConfig / LlavaConfig from config.json") { try modelConfig($0) },
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

    static func safetensors(_ data: Data) throws {
        let file = try SafeTensorsFile(file: MappedFile(copying: data, path: "fuzz.safetensors"))
        for entry in file.tensors.values { _ = entry.elementCount }
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
        if filterOpenFindings, let (width, height) = declaredImageSize([UInt8](data)),
           width.multipliedReportingOverflow(by: height).overflow || width * height > maxFuzzedPixels {
            throw OpenFinding(description: "open finding: \(width)×\(height) pixels are decoded without a limit "
                                + "(the decoder's pixel limit is being added separately)")
        }
        _ = try ImageDecoder.decode(data, name: "fuzz-image")
    }

    static func modelConfig(_ data: Data) throws {
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelError.badConfig(path: "config.json", field: "(file)", detail: "is not a JSON object")
        }
        if filterOpenFindings, let finding = openConfigFinding(json) { throw OpenFinding(description: finding) }
        if LlavaConfig.isLlava(json) {
            _ = try LlavaConfig(json: json, path: "config.json")
        } else {
            _ = try ModelConfig(json: json, path: "config.json")
            if let vision = json["vision_config"] as? [String: Any] {
                _ = try VisionConfig(json: vision, path: "config.json")
            }
        }
    }

    // MARK: Open findings

    /// An input that would hit a trap found by fuzzing whose fix belongs to the configuration validation
    /// being written separately (docs/fuzzing.md lists them). The harness rejects such inputs instead of
    /// trapping, so fuzzing can look past them; the reproducers in Fuzz/regressions/model-config/ go
    /// through the real parser once this filter is removed.
    struct OpenFinding: Error, CustomStringConvertible {
        let description: String
    }

    /// `MIRAGE_FUZZ_OPEN_FINDINGS=1` sends those inputs through the parsers too, to check a fix.
    static let filterOpenFindings = ProcessInfo.processInfo.environment["MIRAGE_FUZZ_OPEN_FINDINGS"] != "1"

    /// The config.json traps known today, checked on the same fields and defaults the parsers read.
    static func openConfigFinding(_ json: [String: Any]) -> String? {
        func int(_ object: [String: Any], _ key: String) -> Int? {
            guard let value = object[key], !(value is NSNull) else { return nil }
            if let n = value as? Int { return n }
            if let d = value as? Double, d.rounded() == d, abs(d) < 9.2e18 { return Int(d) }
            return nil
        }
        func hugeWholeDouble(_ value: Any) -> Bool {
            if let object = value as? [String: Any] { return object.values.contains(where: hugeWholeDouble) }
            if let list = value as? [Any] { return list.contains(where: hugeWholeDouble) }
            if value is Int { return false }
            if let d = value as? Double { return d.isFinite && d.rounded() == d && abs(d) >= 9.2e18 }
            return false
        }
        if hugeWholeDouble(json) {
            return "open finding: JSONFields.optionalInt converts a whole number beyond Int's range with Int(_:) (trap)"
        }
        let isLlava = LlavaConfig.isLlava(json)
        // LLaVA's text defaults (32 heads, hidden 4096) never trap, so the raw text_config decides.
        let text = isLlava ? json["text_config"] as? [String: Any] : json
        if let text, int(text, "head_dim") == nil, let heads = int(text, "num_attention_heads") {
            if heads == 0 { return "open finding: text num_attention_heads 0 divides hidden_size by zero (ModelConfig.init)" }
            if heads == -1 && int(text, "hidden_size") == Int.min { return "open finding: text hidden_size / num_attention_heads overflows" }
        }
        guard let vision = isLlava ? (json["vision_config"] as? [String: Any]) ?? [:] : json["vision_config"] as? [String: Any] else {
            return nil
        }
        let heads = int(vision, "num_attention_heads") ?? 12
        if heads == 0 { return "open finding: vision_config.num_attention_heads 0 divides by zero (VisionConfig.init)" }
        if heads == -1 && int(vision, "hidden_size") == Int.min { return "open finding: vision hidden_size % num_attention_heads overflows" }
        let siglip = (vision["model_type"] as? String) == "siglip_vision_model"
        let patch = int(vision, "patch_size") ?? (siglip ? 16 : 32)
        if patch == 0 { return "open finding: vision_config.patch_size 0 divides by zero (VisionConfig.init)" }
        if patch == -1 && int(vision, "image_size") == Int.min { return "open finding: vision image_size % patch_size overflows" }
        if isLlava && int(vision, "num_hidden_layers") == Int.max {
            return "open finding: vision_config.num_hidden_layers Int.max overflows numLayers + 1 (LlavaConfig.resolvedFeatureLayers)"
        }
        return nil
    }

    /// Images above this many pixels (2^20, above COCO's ~0.3 Mpx) are not decoded by the harness:
    /// ImageDecoder has no pixel limit yet (a 40000×40000 PNG takes gigabytes), and a 173-byte JPEG
    /// declaring 5 Mpx takes ~190 ms in the instrumented debug build, so large declared sizes would
    /// slow fuzzing a hundredfold without reaching other code.
    static let maxFuzzedPixels = 1 << 20

    /// Width and height from a PNG's IHDR or a JPEG's first start-of-frame marker, as the decoders read them.
    static func declaredImageSize(_ b: [UInt8]) -> (Int, Int)? {
        func be(_ i: Int, _ n: Int) -> Int { (i..<i + n).reduce(0) { $0 << 8 | Int(b[$1]) } }
        if b.count >= 24, b[0] == 0x89, b[1] == 0x50 {
            return (be(16, 4), be(20, 4))
        }
        guard b.count >= 4, b[0] == 0xFF, b[1] == 0xD8 else { return nil }
        var i = 2
        while i + 4 <= b.count {
            guard b[i] == 0xFF else { i += 1; continue }
            let marker = b[i + 1]
            if marker == 0xFF || marker == 0x01 || (0xD0...0xD8).contains(marker) { i += marker == 0xFF ? 1 : 2; continue }
            if marker == 0xD9 || marker == 0xDA { return nil }
            let length = be(i + 2, 2)
            if (0xC0...0xCF).contains(marker), ![0xC4, 0xC8, 0xCC].contains(marker) {
                guard i + 9 <= b.count else { return nil }
                return (be(i + 7, 2), be(i + 5, 2))
            }
            i += 2 + max(length, 2)
        }
        return nil
    }
}
