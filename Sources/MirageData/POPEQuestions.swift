import Foundation

// POPE question files (Li et al., "Evaluating Object Hallucination in Large Vision-Language Models",
// EMNLP 2023; RUCAIBox/POPE): JSON lines {"question_id": int, "image": str, "text": str, "label": "yes"|"no"}.

public enum POPELabel: String, Sendable, Hashable, Codable {
    case yes, no
}

public enum POPESplit: String, Sendable, Hashable, Codable, CaseIterable {
    case random, popular, adversarial
}

public struct POPEQuestion: Sendable, Hashable, Codable {
    public var questionID: Int
    public var image: String
    public var text: String
    public var label: POPELabel

    public init(questionID: Int, image: String, text: String, label: POPELabel) {
        self.questionID = questionID; self.image = image; self.text = text; self.label = label
    }

    /// The object asked about, for questions written with POPE's template (either vowel form, with or
    /// without the "imange" typo); nil for other wordings.
    public var object: String? {
        var t = Substring(text)
        if t.hasPrefix("Is there an ") { t = t.dropFirst(12) } else if t.hasPrefix("Is there a ") { t = t.dropFirst(11) } else { return nil }
        for suffix in [" in the image?", " in the imange?"] where t.hasSuffix(suffix) {
            return String(t.dropLast(suffix.count))
        }
        return nil
    }

    /// The COCO image id in a `COCO_val2014_%012d.jpg`-style name (the digits before the extension).
    public var cocoImageID: Int? {
        let stem = image.split(separator: ".").first.map(String.init) ?? image
        let digits = stem.reversed().prefix { $0.isASCII && $0.isNumber }
        return digits.isEmpty ? nil : Int(String(digits.reversed()))
    }
}

/// A published POPE file Mirage recognises by its SHA-256.
public struct POPEKnownFile: Sendable, Hashable {
    /// `rucaibox` (POPE HEAD), `opera` (OPERA's copy = POPE @ 28f884a/e3e3926) or `vcd`.
    public var variant: String
    public var split: POPESplit
    public var sha256: String
    public var questions: Int
    public var note: String
}

/// What a question file is: a known published variant, or an unknown file described by its counts.
public struct POPEVariantInfo: Sendable, Hashable, CustomStringConvertible {
    /// Known variants that have exactly these bytes (the POPE HEAD random file is also VCD's).
    public var known: [POPEKnownFile]
    public var sha256: String
    public var questions: Int
    public var yes: Int
    public var no: Int
    public var images: Int
    /// Questions containing the "imange" typo of the pre-fix template.
    public var typoQuestions: Int

    public var isKnown: Bool { !known.isEmpty }
    /// e.g. "opera/random", "rucaibox/random (= vcd/random)", or "unknown".
    public var name: String {
        guard let first = known.first else { return "unknown" }
        let rest = known.dropFirst().map { "\($0.variant)/\($0.split.rawValue)" }
        return "\(first.variant)/\(first.split.rawValue)" + (rest.isEmpty ? "" : " (= \(rest.joined(separator: ", ")))")
    }

    public var description: String {
        "\(name): \(questions) questions (\(yes) yes / \(no) no) over \(images) images, \(typoQuestions) with the \"imange\" typo, sha256 \(sha256)"
    }
}

public struct POPEQuestionFile: Sendable {
    public var questions: [POPEQuestion]
    public var variant: POPEVariantInfo
    public var source: String
    /// "\r\n" when the file uses CRLF line ends (OPERA's and some of VCD's copies do), else "\n".
    public var lineEnding: String

    public var sha256: String { variant.sha256 }
}

public enum POPEError: Error, CustomStringConvertible {
    case badLine(file: String, line: Int, reason: String)
    case empty(String)
    case notEnoughImages(eligible: Int, requested: Int, minObjects: Int)
    case noNegativeCandidate(image: String)

    public var description: String {
        switch self {
        case .badLine(let file, let line, let reason):
            return "\(file), line \(line): \(reason). A POPE question file has one JSON object per line with question_id, image, text and label (\"yes\"/\"no\")"
        case .empty(let file):
            return "\(file) contains no questions"
        case .notEnoughImages(let eligible, let requested, let minObjects):
            return "only \(eligible) images have at least \(minObjects) distinct objects, but \(requested) were requested; lower --images or use more annotations"
        case .noNegativeCandidate(let image):
            return "no object absent from \(image) is left to ask about: the image pool has too few distinct objects"
        }
    }
}

public enum POPEQuestionReader {
    /// SHA-256 of the nine published COCO files (from ../shared/data/SHA256SUMS; sources in its README).
    public static let knownFiles: [POPEKnownFile] = [
        .init(variant: "rucaibox", split: .random, sha256: "ac25245170b975a5bdf9080b23fd431dfe6be458bc038259c1f4f09a6bef7994",
              questions: 3000, note: "RUCAIBox/POPE @ 3df3ba1 output/coco (after the resampling and typo fixes)"),
        .init(variant: "rucaibox", split: .popular, sha256: "72c1a8ad45d0c13514f5f22598261df41d3b533854d29682e924db50ed8aa753",
              questions: 3000, note: "RUCAIBox/POPE @ 3df3ba1 output/coco"),
        .init(variant: "rucaibox", split: .adversarial, sha256: "420b3407db1fa9f1187a805dca41cb7b97fd91504e6c2179706188c107fb8ef8",
              questions: 3000, note: "RUCAIBox/POPE @ 3df3ba1 output/coco"),
        .init(variant: "opera", split: .random, sha256: "c16b65d2df6d70bb0814c8a4375833d39cdb09928fd936d3fc546491efa37f35",
              questions: 2910, note: "shikiw/OPERA @ 61426ef pope_coco (= POPE @ 28f884a): 90 negatives missing, 144 \"imange\""),
        .init(variant: "opera", split: .popular, sha256: "5b16653023bf4f64d57eb0d168259de6627f5cde7538b85ebed3cc33034aa6cc",
              questions: 3000, note: "shikiw/OPERA @ 61426ef pope_coco: 44 \"imange\""),
        .init(variant: "opera", split: .adversarial, sha256: "1d8f0906a9b50c05640f6f23abfac97523be2a1bed28f7eadc63b811699b2d26",
              questions: 3000, note: "shikiw/OPERA @ 61426ef pope_coco: 58 \"imange\""),
        .init(variant: "vcd", split: .random, sha256: "ac25245170b975a5bdf9080b23fd431dfe6be458bc038259c1f4f09a6bef7994",
              questions: 3000, note: "DAMO-NLP-SG/VCD @ d6568ff experiments/data/POPE/coco (identical to POPE HEAD)"),
        .init(variant: "vcd", split: .popular, sha256: "fa3a986eb3d586ceb527371112ad7170f398835cbe0a3f08a7e888771dbd8bd6",
              questions: 3000, note: "DAMO-NLP-SG/VCD @ d6568ff experiments/data/POPE/coco"),
        .init(variant: "vcd", split: .adversarial, sha256: "185d7eb49958c882f15d46c51d5c0456fbd5efbf24c57ff8b7adc6648870c6ac",
              questions: 3000, note: "DAMO-NLP-SG/VCD @ d6568ff experiments/data/POPE/coco: 57 \"imange\""),
    ]

    public static func load(_ url: URL) throws -> POPEQuestionFile {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw DataSourceError.invalidFile(path: url.path, reason: "cannot be read (\(error.localizedDescription))")
        }
        return try parse(data, source: url.path)
    }

    /// Parses JSON lines. Like OPERA's loader, `label` other than "no"/"yes" is an error here (OPERA maps
    /// anything but "no" to yes; Mirage refuses such files instead of guessing).
    public static func parse(_ data: Data, source: String = "<memory>") throws -> POPEQuestionFile {
        var questions: [POPEQuestion] = []
        var lineNumber = 0
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let bytes = raw.bindMemory(to: UInt8.self)
            var start = 0
            while start < bytes.count {
                var end = start
                while end < bytes.count && bytes[end] != 0x0A { end += 1 }
                lineNumber += 1
                let line = UnsafeRawBufferPointer(rebasing: raw[start..<end])
                start = end + 1
                var s = JSONScanner(bytes: line, source: source)
                if s.isAtEnd { continue }
                var id: Int?, image: String?, text: String?, label: String?
                do {
                    try s.forEachMember { key, s in
                        if key == "question_id" { id = try s.readInt() }
                        else if key == "image" { image = try s.readString() }
                        else if key == "text" { text = try s.readString() }
                        else if key == "label" { label = try s.readString() }
                        else { try s.skipValue() }
                    }
                    guard s.isAtEnd else { throw s.error("more than one JSON value on the line") }
                } catch let e as JSONScanError {
                    throw POPEError.badLine(file: source, line: lineNumber, reason: e.message)
                }
                guard let id else { throw POPEError.badLine(file: source, line: lineNumber, reason: "no question_id") }
                guard let image else { throw POPEError.badLine(file: source, line: lineNumber, reason: "no image") }
                guard let text else { throw POPEError.badLine(file: source, line: lineNumber, reason: "no text") }
                guard let label, let l = POPELabel(rawValue: label) else {
                    throw POPEError.badLine(file: source, line: lineNumber, reason: "label must be \"yes\" or \"no\"")
                }
                questions.append(POPEQuestion(questionID: id, image: image, text: text, label: l))
            }
        }
        if questions.isEmpty { throw POPEError.empty(source) }
        let sha = SHA256.hex(of: data)
        let info = POPEVariantInfo(
            known: knownFiles.filter { $0.sha256 == sha }, sha256: sha, questions: questions.count,
            yes: questions.filter { $0.label == .yes }.count, no: questions.filter { $0.label == .no }.count,
            images: Set(questions.map(\.image)).count,
            typoQuestions: questions.filter { $0.text.contains("imange") }.count)
        let crlf = data.withUnsafeBytes { raw in
            raw.indices.dropLast().contains { raw[$0] == 0x0D && raw[$0 + 1] == 0x0A }
        }
        return POPEQuestionFile(questions: questions, variant: info, source: source, lineEnding: crlf ? "\r\n" : "\n")
    }

    /// Writes questions as JSON lines byte-compatible with POPE's `json.dumps` output
    /// (`{"question_id": 1, "image": "...", "text": "...", "label": "yes"}`, ASCII with \u escapes).
    public static func jsonLines(_ questions: [POPEQuestion], lineEnding: String = "\n") -> Data {
        var out = ""
        for q in questions {
            out += "{\"question_id\": \(q.questionID), \"image\": \(PythonJSON.string(q.image)), "
            out += "\"text\": \(PythonJSON.string(q.text)), \"label\": \"\(q.label.rawValue)\"}\(lineEnding)"
        }
        return Data(out.utf8)
    }
}

/// String encoding as Python's `json.dumps` does it by default (`ensure_ascii=True`).
public enum PythonJSON {
    public static func string(_ s: String) -> String {
        var out = "\""
        for unit in s.utf16 {
            switch unit {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x08: out += "\\b"
            case 0x0C: out += "\\f"
            case 0x20..<0x7F: out.unicodeScalars.append(Unicode.Scalar(UInt8(unit)))
            default: out += String(format: "\\u%04x", unit)
            }
        }
        return out + "\""
    }
}

/// One model answer from an answer file.
public struct POPEAnswer: Sendable, Hashable {
    public var questionID: Int?
    public var answer: String
}

/// Answer files: JSON lines with the answer under `answer` (POPE's evaluate.py), `text` (LLaVA's
/// model_vqa output) or `caption`, and optionally `question_id`.
public enum POPEAnswerReader {
    public static func load(_ url: URL) throws -> [POPEAnswer] {
        try parse(Data(contentsOf: url), source: url.path)
    }

    public static func parse(_ data: Data, source: String = "<memory>") throws -> [POPEAnswer] {
        var answers: [POPEAnswer] = []
        let text = String(decoding: data, as: UTF8.self)
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.allSatisfy(\.isWhitespace) { continue }
            var id: Int?, answer: String?
            do {
                try JSONScanner.withBytes(Array(line.utf8), source: source) { s in
                    try s.forEachMember { key, s in
                        if key == "question_id" { id = try? s.readInt() }
                        else if key == "answer" || key == "text" || key == "caption" {
                            if answer == nil || key == "answer" { answer = try s.readString() } else { try s.skipValue() }
                        } else { try s.skipValue() }
                    }
                }
            } catch let e as JSONScanError {
                throw POPEError.badLine(file: source, line: i + 1, reason: e.message)
            }
            guard let answer else {
                throw POPEError.badLine(file: source, line: i + 1, reason: "no \"answer\" (or \"text\") field")
            }
            answers.append(POPEAnswer(questionID: id, answer: answer))
        }
        return answers
    }
}
