import Foundation
import MirageData

/// A POPE answer file: JSON Lines, one object per answer with the model's text under `answer` (the key is
/// selectable) and, optionally, the `question_id` it answers — the layout of RUCAIBox/POPE's `evaluate.py`.
public struct PopeAnswerFile: Sendable {
    public struct Answer: Sendable, Hashable {
        public var text: String
        public var questionID: Int?
        /// 1-based line in the file.
        public var line: Int
    }

    public enum Alignment: String, Sendable, CaseIterable {
        /// By question id when every answer has one, else by order.
        case auto
        case order
        case questionID = "question-id"
    }

    public var answers: [Answer]
    public var source: String

    public static func read(_ url: URL, answerKey: String = "answer", questionIDKey: String = "question_id") throws -> PopeAnswerFile {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ImportError.unreadable(url.path, error.localizedDescription)
        }
        return try parse(data, source: url.path, answerKey: answerKey, questionIDKey: questionIDKey)
    }

    public static func parse(_ data: Data, source: String, answerKey: String = "answer",
                             questionIDKey: String = "question_id") throws -> PopeAnswerFile {
        var answers: [Answer] = []
        var lineNumber = 0
        for rawLine in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = rawLine.last == UInt8(ascii: "\r") ? rawLine.dropLast() : rawLine
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            // MirageData's scanner, not JSONSerialization: Foundation's parser on Linux drops a U+FEFF that starts
            // a string value, and an answer must be stored exactly as written.
            let object: Any
            do {
                object = try JSONScanner.withBytes(Data(line), source: source) { s in
                    let value = try s.readAny()
                    guard s.isAtEnd else { throw s.error("text after the JSON value") }
                    return value
                }
            } catch {
                throw ImportError.badRecord(file: source, line: lineNumber,
                    reason: "not valid JSON. An answer file has one JSON object per line, e.g. {\"question_id\": 1, \"answer\": \"Yes\"}")
            }
            guard let dict = object as? [String: Any] else {
                throw ImportError.badRecord(file: source, line: lineNumber, reason: "is not a JSON object")
            }
            guard let text = dict[answerKey] as? String else {
                let keys = dict.keys.sorted().joined(separator: ", ")
                let reason = dict[answerKey] == nil
                    ? "has no \"\(answerKey)\" key (it has: \(keys)); pass --answer-key to name the key holding the answer"
                    : "\"\(answerKey)\" is not a string"
                throw ImportError.badRecord(file: source, line: lineNumber, reason: reason)
            }
            var questionID: Int?
            if let raw = dict[questionIDKey] {
                if let n = raw as? Int { questionID = n }
                else if let s = raw as? String, let n = Int(s) { questionID = n }
                else { throw ImportError.badRecord(file: source, line: lineNumber, reason: "\"\(questionIDKey)\" is not an integer") }
            }
            answers.append(Answer(text: text, questionID: questionID, line: lineNumber))
        }
        if answers.isEmpty { throw ImportError.empty(source) }
        return PopeAnswerFile(answers: answers, source: source)
    }

    /// `auto` made concrete: by question id when every answer carries one, else by order.
    public func resolved(_ alignment: Alignment) -> Alignment {
        guard alignment == .auto else { return alignment }
        return answers.allSatisfy { $0.questionID != nil } ? .questionID : .order
    }

    /// Pairs every answer with its question. Every answer must find a question and no question may be
    /// answered twice; by order, the counts must be equal.
    public func align(with questions: POPEQuestionFile, _ alignment: Alignment) throws -> [(POPEQuestion, Answer)] {
        if resolved(alignment) == .order {
            guard answers.count == questions.questions.count else {
                throw ImportError.countMismatch(answers: answers.count, questions: questions.questions.count,
                                                answerFile: source, questionFile: questions.source)
            }
            return Array(zip(questions.questions, answers))
        }
        var index: [Int: POPEQuestion] = [:]
        for q in questions.questions { index[q.questionID] = q }
        var seen: [Int: Int] = [:]
        return try answers.map { a in
            guard let id = a.questionID else {
                throw ImportError.badRecord(file: source, line: a.line, reason: "has no question id to align by")
            }
            guard let q = index[id] else {
                throw ImportError.unknownQuestion(file: source, line: a.line, questionID: id, questionFile: questions.source)
            }
            if let first = seen[id] {
                throw ImportError.badRecord(file: source, line: a.line, reason: "answers question \(id) again (first on line \(first))")
            }
            seen[id] = a.line
            return (q, a)
        }
    }
}

public enum ImportError: Error, CustomStringConvertible, Equatable {
    case unreadable(String, String)
    case badRecord(file: String, line: Int, reason: String)
    case empty(String)
    case countMismatch(answers: Int, questions: Int, answerFile: String, questionFile: String)
    case unknownQuestion(file: String, line: Int, questionID: Int, questionFile: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason):
            return "cannot read \(path): \(reason)"
        case let .badRecord(file, line, reason):
            return "\(file), line \(line): \(reason). Nothing was stored."
        case let .empty(file):
            return "\(file) holds no records. Nothing was stored."
        case let .countMismatch(answers, questions, answerFile, questionFile):
            return "\(answerFile) has \(answers) answers but \(questionFile) has \(questions) questions, so they cannot be "
                + "aligned by order. Use the question file the answers were generated from, or give every answer a "
                + "question_id (--align question-id). Nothing was stored."
        case let .unknownQuestion(file, line, id, questionFile):
            return "\(file), line \(line): question_id \(id) is not in \(questionFile). Use the question file the answers "
                + "were generated from. Nothing was stored."
        }
    }
}
