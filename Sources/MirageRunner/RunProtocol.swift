import Foundation
import MirageData
import MirageEngine
import MirageMetrics
import MirageModels
import MirageStore

/// An evaluation protocol as a file (`Annotations/protocols/NAME.yaml`): what is asked of which images, how
/// the prompt is laid out, how long the model may answer, and how the answer is read. See docs/runner.md.
public struct RunProtocol: Sendable, Equatable {
    /// Which images the protocol covers.
    public enum ImageSelection: Sendable, Equatable {
        /// Exactly these COCO image ids.
        case ids([Int])
        /// `count` ids drawn with `seed` from the image set's annotation file (ids sorted before drawing).
        case sample(count: Int, seed: UInt64)
        /// POPE: every image of the question file.
        case questionFile
    }

    /// Where POPE's questions come from.
    public enum QuestionSource: Sendable, Equatable {
        /// A data-store source (`mirage data list`), e.g. `pope-coco-opera`, and its split file.
        case dataSource(id: String, split: POPESplit)
        /// A question file (JSON Lines), relative to the protocol file's folder unless absolute.
        case file(String)
    }

    /// The chat layout around the prompt.
    public enum Template: Sendable, Equatable {
        /// A template name the model knows (`mirage models show`), e.g. llava15, chatml, processor.
        case named(String)
        /// Literal text holding `{prompt}` and one `<image>`.
        case custom(String)
    }

    public var name: String
    public var description: String?
    /// Where the protocol's settings come from (paper, repository and commit).
    public var source: String?
    public var task: EvalProtocol.Task
    public var images: ImageSelection
    /// CHAIR: the instruction. POPE: the text sent per question, with `{question}` standing for the question.
    public var prompt: String
    /// The template for every model, unless `templates` names one for the model's decoder architecture.
    public var template: Template
    /// Per model: keyed by architecture name (`llava-llama`), family name (`llava`) or decoder `model_type`
    /// (`llama`, `qwen2`); `template(for:)` takes the most specific key present.
    public var templates: [String: Template]
    public var maxNewTokens: Int
    /// LLaVA's `expand2square` before preprocessing (the original LLaVA-1.5 evaluation pads; OPERA does not).
    public var padToSquare: Bool
    /// CHAIR: OPERA's 64-token rule, cut each caption after its last "." before scoring.
    public var truncateIncomplete: Bool
    public var questions: QuestionSource?
    public var answerParser: POPEAnswerParser?
    /// Apply the model family's paper settings (`ModelFamily.paperSettings`: OPERA's wrappers' generation
    /// parameters as decoder overrides, their output post-processing on the stored answer text); docs/runner.md.
    public var paperSettings = false

    public init(name: String, description: String? = nil, source: String? = nil, task: EvalProtocol.Task,
                images: ImageSelection, prompt: String, template: Template, templates: [String: Template] = [:],
                maxNewTokens: Int, padToSquare: Bool = false, truncateIncomplete: Bool = false,
                questions: QuestionSource? = nil, answerParser: POPEAnswerParser? = nil) {
        self.name = name; self.description = description; self.source = source; self.task = task
        self.images = images; self.prompt = prompt; self.template = template; self.templates = templates
        self.maxNewTokens = maxNewTokens; self.padToSquare = padToSquare; self.truncateIncomplete = truncateIncomplete
        self.questions = questions; self.answerParser = answerParser
    }

    /// The template for a decoder architecture (`templates` keyed by `model_type`, else `template`).
    public func template(for architecture: Architecture) -> Template {
        templates[architecture.modelType] ?? template
    }

    /// The template for a model: `templates` by its architecture name (`llava-llama`), then its family name
    /// (`llava`), then its decoder's `model_type` (`llama`), else `template`.
    public func template(for model: any VisionLanguageModel) -> Template {
        let keys = [model.architectureName, model.family.name, model.languageModel.config.architecture.modelType]
        return keys.lazy.compactMap { self.templates[$0] }.first ?? template
    }

    /// The full prompt text for one item: the template around `text`, `<image>` where the image goes.
    public static func render(_ template: Template, text: String) throws -> String {
        switch template {
        case .named(let name):
            guard let t = ModelFamilies.template(named: name) else {
                throw RunnerError.configuration("unknown template '\(name)'; the model families know "
                                                + ModelFamilies.templateNames.joined(separator: ", "))
            }
            return t.render(text)
        case .custom(let pattern):
            return pattern.replacingOccurrences(of: "{prompt}", with: text)
        }
    }

    /// The full prompt text for one item on `model`: a named template as the model knows it (its own
    /// templates and `processor`, which leaves the text as written), custom text as `render(_:text:)`.
    public static func render(_ template: Template, text: String, model: any VisionLanguageModel) throws -> String {
        guard case .named(let name) = template else { return try render(template, text: text) }
        do { return try model.template(named: name).render(text) } catch {
            throw RunnerError.configuration("\(error)")
        }
    }

    /// The named template as `model` knows it, or nil for custom text.
    public static func promptTemplate(_ template: Template, model: any VisionLanguageModel) throws -> PromptTemplate? {
        guard case .named(let name) = template else { return nil }
        do { return try model.template(named: name) } catch { throw RunnerError.configuration("\(error)") }
    }

    /// The user text of one item: the CHAIR instruction, or the POPE question inside `prompt`.
    public func userText(question: String? = nil) -> String {
        guard let question else { return prompt }
        return prompt.replacingOccurrences(of: "{question}", with: question)
    }

    // MARK: Reading

    /// Template names a protocol may use: every registered family's (`raw` excluded: a protocol writes its
    /// own text instead) and `processor`.
    static var templateNames: [String] { ModelFamilies.templateNames.filter { $0 != "raw" } }

    /// Reads a protocol file; `name` defaults to the file name without extension.
    public static func load(path: String) throws -> RunProtocol {
        let url = URL(fileURLWithPath: path)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw RunnerError.unreadableFile(file: path, reason: "no such file or not readable")
        }
        var p = try parse(String(decoding: data, as: UTF8.self), file: path,
                          defaultName: url.deletingPathExtension().lastPathComponent)
        if case .file(let q) = p.questions, !q.hasPrefix("/") {
            p.questions = .file(url.deletingLastPathComponent().appendingPathComponent(q).path)
        }
        return p
    }

    /// Parses protocol YAML; every error names `file` and the key.
    public static func parse(_ text: String, file: String, defaultName: String) throws -> RunProtocol {
        var f = try YAMLFields.load(text: text, file: file)
        let name = try f.string("name") ?? defaultName
        let description = try f.string("description")
        let source = try f.string("source")
        let taskText = try f.requiredString("task", "use chair or pope")
        guard let task = EvalProtocol.Task(rawValue: taskText) else {
            throw f.fail("task", "'\(taskText)' is not a task; use chair or pope")
        }
        let images = try parseImages(&f, task: task)
        let prompt: String
        if task == .chair {
            prompt = try f.requiredString("prompt", "the instruction, e.g. \"Please describe this image in detail.\"")
        } else {
            prompt = try f.string("prompt") ?? "{question}"
            if !prompt.contains("{question}") {
                throw f.fail("prompt", "a POPE prompt must contain {question} (where the question goes), e.g. \"{question} Answer the question using a single word or phrase.\"")
            }
        }
        let template = try parseTemplate(f.raw("template"), f: f, key: "template") ?? .named("llava15")
        var templates: [String: Template] = [:]
        if var m = try f.mapping("templates") {
            for arch in m.values.keys.sorted() {
                guard ModelFamilies.templateKeys.contains(arch) else {
                    throw m.fail(arch, "not a decoder architecture, model family or architecture name; use one of "
                                 + ModelFamilies.templateKeys.joined(separator: ", "))
                }
                templates[arch] = try parseTemplate(m.raw(arch), f: m, key: arch)
            }
        }
        guard let maxNewTokens = try f.int("max_new_tokens", range: 1...Int.max) else {
            throw f.fail("max_new_tokens", "missing; the generation limit, e.g. 512 (OPERA CHAIR), 64 or 10 (OPERA POPE)")
        }
        let pad = try f.bool("pad_to_square") ?? false
        let truncate = try f.bool("truncate_incomplete") ?? false
        let paperSettings = try f.bool("paper_settings") ?? false
        if truncate && task != .chair { throw f.fail("truncate_incomplete", "applies to CHAIR protocols only") }
        var questions: QuestionSource?
        var parser: POPEAnswerParser?
        if task == .pope {
            questions = try parseQuestions(&f)
            let parserText = try f.string("answer_parser") ?? "opera"
            guard let p = POPEAnswerParser(rawValue: parserText) else {
                throw f.fail("answer_parser", "'\(parserText)' is not a parser; use opera, pope or strict")
            }
            parser = p
        } else {
            for key in ["questions", "answer_parser"] where f.has(key) {
                throw f.fail(key, "applies to POPE protocols only")
            }
        }
        try f.rejectUnknownKeys()
        var spec = RunProtocol(name: name, description: description, source: source, task: task, images: images,
                               prompt: prompt, template: template, templates: templates, maxNewTokens: maxNewTokens,
                               padToSquare: pad, truncateIncomplete: truncate, questions: questions, answerParser: parser)
        spec.paperSettings = paperSettings
        return spec
    }

    private static func parseImages(_ f: inout YAMLFields, task: EvalProtocol.Task) throws -> ImageSelection {
        guard var m = try f.mapping("images") else {
            if task == .pope { return .questionFile }
            throw f.fail("images", "missing; give `images: {ids: [...]}` or `images: {sample: 500, seed: 0}`")
        }
        let ids = try m.ints("ids")
        let count = try m.int("sample", range: 1...Int.max)
        let seed = try m.int("seed", range: 0...Int.max)
        try m.rejectUnknownKeys()
        switch (ids, count) {
        case let (ids?, nil):
            if seed != nil { throw m.fail("seed", "only with sample: N") }
            if ids.isEmpty { throw m.fail("ids", "the list is empty") }
            if Set(ids).count != ids.count {
                let dup = Dictionary(grouping: ids, by: { $0 }).first { $0.value.count > 1 }!.key
                throw m.fail("ids", "image id \(dup) appears twice")
            }
            return .ids(ids)
        case let (nil, count?):
            return .sample(count: count, seed: UInt64(seed ?? 0))
        case (nil, nil):
            throw m.fail("ids", "give ids: [...] or sample: N (with seed: S)")
        default:
            throw m.fail("sample", "give either ids or sample, not both")
        }
    }

    private static func parseTemplate(_ value: Any?, f: YAMLFields, key: String) throws -> Template? {
        guard let value else { return nil }
        guard let text = value as? String else { throw f.fail(key, "expected a template name or text") }
        if templateNames.contains(text) { return .named(text) }
        guard text.contains("{prompt}"), text.components(separatedBy: "<image>").count == 2 else {
            throw f.fail(key, "'\(text)' is neither a template name (\(templateNames.joined(separator: ", "))) nor text with {prompt} and one <image>")
        }
        return .custom(text)
    }

    private static func parseQuestions(_ f: inout YAMLFields) throws -> QuestionSource {
        guard var m = try f.mapping("questions") else {
            throw f.fail("questions", "missing; give `questions: {source: pope-coco-opera, split: random}` or `questions: {path: FILE}`")
        }
        let source = try m.string("source")
        let split = try m.string("split")
        let path = try m.string("path")
        try m.rejectUnknownKeys()
        switch (source, path) {
        case let (source?, nil):
            guard let split else { throw m.fail("split", "missing; use random, popular or adversarial") }
            guard let s = POPESplit(rawValue: split) else {
                throw m.fail("split", "'\(split)' is not a split; use random, popular or adversarial")
            }
            return .dataSource(id: source, split: s)
        case let (nil, path?):
            if split != nil { throw m.fail("split", "only with source: (a file's split is read from the file)") }
            return .file(path)
        case (nil, nil):
            throw m.fail("source", "give source: ID with split:, or path: FILE")
        default:
            throw m.fail("path", "give either source or path, not both")
        }
    }
}

/// Finds protocols by name in a list of folders (`NAME.yaml` or `NAME.yml`).
public struct ProtocolLibrary: Sendable {
    public var folders: [URL]
    public init(folders: [URL]) { self.folders = folders }

    /// `reference` is a path to a file (it contains "/" or ends in .yaml/.yml) or a protocol name.
    public func resolve(_ reference: String) throws -> RunProtocol {
        if reference.contains("/") || reference.hasSuffix(".yaml") || reference.hasSuffix(".yml") {
            return try RunProtocol.load(path: (reference as NSString).expandingTildeInPath)
        }
        for folder in folders {
            for ext in ["yaml", "yml"] {
                let url = folder.appendingPathComponent("\(reference).\(ext)")
                if FileManager.default.fileExists(atPath: url.path) { return try RunProtocol.load(path: url.path) }
            }
        }
        throw RunnerError.unknownProtocol(name: reference, searched: folders.map(\.path), available: names)
    }

    /// Every protocol name found, sorted.
    public var names: [String] {
        var out = Set<String>()
        for folder in folders {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
            for f in files where f.hasSuffix(".yaml") || f.hasSuffix(".yml") {
                out.insert((f as NSString).deletingPathExtension)
            }
        }
        return out.sorted()
    }
}
