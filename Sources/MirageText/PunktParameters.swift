import Foundation

/// The trained parameters of NLTK's Punkt sentence tokenizer (`nltk.tokenize.punkt.PunktParameters`):
/// known abbreviations, collocations, frequent sentence starters and each word type's orthographic
/// context. Load NLTK's English model from its plain-text `punkt_tab` folder with
/// `PunktParameters(directory:)`; the values equal those of NLTK 3.8.1's `english.pickle`.
public struct PunktParameters: Sendable, Equatable {
    /// Word types (lower-case, final period removed) known to be abbreviations, e.g. `"dr"`, `"u.s"`.
    public var abbreviationTypes: Set<String>
    /// Pairs of word types `(first, second)` where a period after `first` does not end a sentence.
    public var collocations: Set<Collocation>
    /// Word types that often start a sentence.
    public var sentenceStarters: Set<String>
    /// Orthographic context flags per word type (see `OrthoContext`).
    public var orthographicContext: [String: Int]

    public struct Collocation: Sendable, Hashable {
        public var first: String
        public var second: String
        public init(_ first: String, _ second: String) {
            self.first = first
            self.second = second
        }
    }

    public init(abbreviationTypes: Set<String> = [], collocations: Set<Collocation> = [],
                sentenceStarters: Set<String> = [], orthographicContext: [String: Int] = [:]) {
        self.abbreviationTypes = abbreviationTypes
        self.collocations = collocations
        self.sentenceStarters = sentenceStarters
        self.orthographicContext = orthographicContext
    }

    /// The file names of the `punkt_tab` layout (NLTK ≥ 3.8.2's `nltk_data/tokenizers/punkt_tab/<lang>/`).
    public enum File: String, Sendable, CaseIterable {
        case abbreviations = "abbrev_types.txt"
        case collocations = "collocations.tab"
        case sentenceStarters = "sent_starters.txt"
        case orthographicContext = "ortho_context.tab"
    }

    /// Loads a `punkt_tab` folder such as `nltk_data/tokenizers/punkt_tab/english/`: one type per line in
    /// `abbrev_types.txt` and `sent_starters.txt`, `first<TAB>second` lines in `collocations.tab`,
    /// `type<TAB>flags` lines in `ortho_context.tab`. Empty lines are ignored; nothing else is trimmed.
    public init(directory: URL) throws {
        // Lines and fields are split on the UTF-8 bytes (U+000A and U+0009 are single bytes that occur in no
        // other character's encoding), which gives exactly `text.components(separatedBy: "\n")` and
        // `components(separatedBy: "\t")` (a "\r" before "\n" stays in the line) at a fraction of the cost.
        func lines(_ file: File) throws -> [(number: Int, bytes: ArraySlice<UInt8>)] {
            let url = directory.appendingPathComponent(file.rawValue)
            let data: Data
            do {
                data = try Data(contentsOf: url)
            } catch {
                throw PunktParametersError.unreadable(file: url.path, reason: error.localizedDescription)
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw PunktParametersError.notUTF8(file: url.path)
            }
            let bytes = Array(text.utf8)
            var out: [(number: Int, bytes: ArraySlice<UInt8>)] = []
            var start = 0, number = 1
            for i in bytes.indices where bytes[i] == 0x0A {
                if i > start { out.append((number, bytes[start..<i])) }
                start = i + 1
                number += 1
            }
            if start < bytes.count { out.append((number, bytes[start...])) }
            return out
        }
        func string(_ bytes: ArraySlice<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }
        func fields(_ line: (number: Int, bytes: ArraySlice<UInt8>), _ file: File) throws -> (String, String) {
            guard let tab = line.bytes.firstIndex(of: 0x09), !line.bytes[(tab + 1)...].contains(0x09) else {
                throw PunktParametersError.malformedLine(
                    file: directory.appendingPathComponent(file.rawValue).path, line: line.number,
                    expected: "two fields separated by one tab", found: string(line.bytes))
            }
            return (string(line.bytes[..<tab]), string(line.bytes[(tab + 1)...]))
        }

        self.init()
        abbreviationTypes = Set(try lines(.abbreviations).map { string($0.bytes) })
        sentenceStarters = Set(try lines(.sentenceStarters).map { string($0.bytes) })
        for line in try lines(.collocations) {
            let (a, b) = try fields(line, .collocations)
            collocations.insert(Collocation(a, b))
        }
        let ortho = try lines(.orthographicContext)
        orthographicContext.reserveCapacity(ortho.count)
        for line in ortho {
            let (type, value) = try fields(line, .orthographicContext)
            guard let flags = Int(value), flags >= 0 else {
                throw PunktParametersError.malformedLine(
                    file: directory.appendingPathComponent(File.orthographicContext.rawValue).path,
                    line: line.number, expected: "a non-negative integer after the tab", found: string(line.bytes))
            }
            orthographicContext[type, default: 0] |= flags
        }
    }
}

/// Orthographic context flags of `PunktParameters.orthographicContext` (NLTK's `_ORTHO_*` constants):
/// where in a sentence (beginning, middle, unknown) a type was seen upper- or lower-case in training.
public enum OrthoContext {
    public static let begUpper = 1 << 1
    public static let midUpper = 1 << 2
    public static let unkUpper = 1 << 3
    public static let begLower = 1 << 4
    public static let midLower = 1 << 5
    public static let unkLower = 1 << 6
    public static let upper = begUpper | midUpper | unkUpper
    public static let lower = begLower | midLower | unkLower
}

public enum PunktParametersError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case notUTF8(file: String)
    case malformedLine(file: String, line: Int, expected: String, found: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason):
            return "cannot read Punkt parameters file \(file): \(reason). Point to a punkt_tab language folder "
                + "(e.g. nltk_data/tokenizers/punkt_tab/english) containing "
                + PunktParameters.File.allCases.map(\.rawValue).joined(separator: ", ") + "."
        case let .notUTF8(file):
            return "Punkt parameters file \(file) is not UTF-8 text; re-download the punkt_tab data."
        case let .malformedLine(file, line, expected, found):
            return "\(file):\(line): expected \(expected), found \(String(reflecting: found)). "
                + "The punkt_tab file is damaged; re-download it."
        }
    }
}
