import Foundation

/// NLTK 3.8.1's `WordNetLemmatizer` over the WordNet 3.0 database, reproduced exactly.
///
/// `lemmatize(word, pos)` is `min(wn._morphy(word, pos), key=len)`, or `word` itself when `_morphy`
/// finds nothing (`nltk/stem/wordnet.py`, `nltk/corpus/reader/wordnet.py` of NLTK 3.8.1):
/// - the lemma set of a part of speech is the first field of every `index.*` line (comment lines start
///   with a space) whose second field is that part of speech, verbatim: lower case, spaces as `_`
///   (NLTK files `a` lemmas under the satellite `s` too; `lemmatize(w, "s")` equals `"a"`, so there is
///   no separate satellite case here);
/// - `*.exc` maps a form to the rest of its line; a later line for the same form replaces an earlier one;
/// - `_morphy` with `check_exceptions=True`: a form listed in the exceptions returns
///   `filter([form] + exceptions[form])` and stops there, even when that is empty; otherwise the
///   detachment rules are applied once and `filter([form] + rules(form))` returned if not empty, then
///   the rules are applied again and again to the previous round's forms until a round's filtered result
///   is not empty or no form is left. `filter` keeps forms in the lemma set, first occurrence only;
/// - `min(..., key=len)` takes the first candidate with the fewest code points.
/// No lower-casing happens: "Dogs" is not in the database and comes back unchanged.
///
/// The value is immutable and safe to use from any number of threads.
public struct WordNetLemmatizer: Sendable {
    /// Where Debian's `wordnet-base` package installs the WordNet 3.0 database.
    public static let defaultDirectory = URL(fileURLWithPath: "/usr/share/wordnet")

    private struct PartOfSpeech: Sendable {
        var lemmas = ExactStringTable(minimumCapacity: 1024)
        var exceptionForms = ExactStringTable()
        /// For exception form id `f`: `exceptionStart[f]..<exceptionStart[f+1]` of `exceptionLemmas`.
        var exceptionStart: [Int32] = [0]
        var exceptionLemmas: [[UInt8]] = []
    }

    private let parts: [PartOfSpeech]   // indexed like `WordNetPOS.allIndex`

    /// NLTK's `MORPHOLOGICAL_SUBSTITUTIONS` (from WordNet's morphy(7WN)), in NLTK's order.
    private static let substitutions: [WordNetPOS: [(old: [UInt8], new: [UInt8])]] = {
        func rules(_ pairs: [(String, String)]) -> [(old: [UInt8], new: [UInt8])] {
            pairs.map { (Array($0.0.utf8), Array($0.1.utf8)) }
        }
        return [
            .noun: rules([("s", ""), ("ses", "s"), ("ves", "f"), ("xes", "x"), ("zes", "z"),
                          ("ches", "ch"), ("shes", "sh"), ("men", "man"), ("ies", "y")]),
            .verb: rules([("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""),
                          ("ing", "e"), ("ing", "")]),
            .adjective: rules([("er", ""), ("est", ""), ("er", "e"), ("est", "e")]),
            .adverb: [],
        ]
    }()

    private static func fileSuffix(_ pos: WordNetPOS) -> String {
        switch pos {
        case .noun: return "noun"
        case .verb: return "verb"
        case .adjective: return "adj"
        case .adverb: return "adv"
        }
    }

    private static func index(_ pos: WordNetPOS) -> Int {
        switch pos {
        case .noun: return 0
        case .verb: return 1
        case .adjective: return 2
        case .adverb: return 3
        }
    }

    /// Loads `index.{noun,verb,adj,adv}` and `{noun,verb,adj,adv}.exc` from `directory`.
    public init(directory: URL = WordNetLemmatizer.defaultDirectory) throws {
        let order: [WordNetPOS] = [.noun, .verb, .adjective, .adverb]
        var parts = [PartOfSpeech](repeating: PartOfSpeech(), count: 4)
        // Lemma sets: NLTK reads every index file and files each lemma under the pos of its line.
        for pos in order {
            let name = "index.\(Self.fileSuffix(pos))"
            let bytes = try Self.read(directory, name)
            var lineNumber = 0
            try Self.forEachLine(bytes) { line in
                lineNumber += 1
                if line.first == 0x20 { return }  // license header
                let fields = Self.split(line)
                guard fields.count >= 2 else {
                    throw WordNetError.malformed(file: directory.appendingPathComponent(name).path,
                                                 line: lineNumber, problem: "expected a lemma and a part of speech")
                }
                let linePOS: WordNetPOS?
                switch fields[1] {
                case [0x6E]: linePOS = .noun
                case [0x76]: linePOS = .verb
                case [0x61]: linePOS = .adjective
                case [0x72]: linePOS = .adverb
                default: linePOS = nil
                }
                if let linePOS {
                    fields[0].withUnsafeBufferPointer { _ = parts[Self.index(linePOS)].lemmas.insert($0) }
                }
            }
        }
        // Exception lists: first field -> remaining fields (a repeated form keeps its last line).
        for pos in order {
            let bytes = try Self.read(directory, "\(Self.fileSuffix(pos)).exc")
            var forms: [[UInt8]] = []
            var lemmas: [[[UInt8]]] = []
            var table = ExactStringTable(minimumCapacity: 4096)
            Self.forEachLine(bytes) { line in
                let fields = Self.split(line)
                guard let form = fields.first else { return }
                let id = Int(table.insert(form))
                let rest = fields.dropFirst().map { Array($0) }
                if id == forms.count { forms.append(form); lemmas.append(rest) } else { lemmas[id] = rest }
            }
            var part = parts[Self.index(pos)]
            part.exceptionForms = table
            for list in lemmas {
                part.exceptionLemmas.append(contentsOf: list)
                part.exceptionStart.append(Int32(part.exceptionLemmas.count))
            }
            parts[Self.index(pos)] = part
        }
        self.parts = parts
    }

    /// The lemma CHAIR uses: `min(_morphy(word, pos), key=len)`, or `word` when there is none.
    public func lemmatize(_ word: String, pos: WordNetPOS) -> String {
        withUTF8Buffer(word) { bytes in
            let candidates = morphy(bytes, pos: pos)
            guard var best = candidates.first else { return word }
            var bestLength = best.withUnsafeBufferPointer(PythonStr.length)
            for candidate in candidates.dropFirst() {
                let length = candidate.withUnsafeBufferPointer(PythonStr.length)
                if length < bestLength { best = candidate; bestLength = length }
            }
            return best.elementsEqual(bytes) ? word : String(decoding: best, as: UTF8.self)
        }
    }

    /// NLTK's `wn._morphy(form, pos)` (with `check_exceptions=True`): every base form WordNet has for
    /// `form`, in NLTK's order.
    public func morphy(_ form: String, pos: WordNetPOS) -> [String] {
        withUTF8Buffer(form) { morphy($0, pos: pos) }.map { String(decoding: $0, as: UTF8.self) }
    }

    /// True when `lemma` is in WordNet's index for `pos` (lemmas as stored: lower case, `_` for spaces).
    public func contains(_ lemma: String, pos: WordNetPOS) -> Bool {
        parts[Self.index(pos)].lemmas.find(lemma) >= 0
    }

    private func morphy(_ form: UnsafeBufferPointer<UInt8>, pos: WordNetPOS) -> [[UInt8]] {
        let part = parts[Self.index(pos)]
        let rules = Self.substitutions[pos]!

        func filter(_ forms: [[UInt8]]) -> [[UInt8]] {
            var result: [[UInt8]] = []
            for f in forms where part.lemmas.find(f) >= 0 && !result.contains(f) { result.append(f) }
            return result
        }
        func applyRules(_ forms: [[UInt8]]) -> [[UInt8]] {
            var out: [[UInt8]] = []
            for f in forms {
                for (old, new) in rules where f.count >= old.count && f[(f.count - old.count)...].elementsEqual(old) {
                    out.append(Array(f[..<(f.count - old.count)]) + new)
                }
            }
            return out
        }

        let original = Array(form)
        let exception = part.exceptionForms.find(form)
        if exception >= 0 {
            let range = Int(part.exceptionStart[Int(exception)])..<Int(part.exceptionStart[Int(exception) + 1])
            return filter([original] + part.exceptionLemmas[range])
        }
        var forms = applyRules([original])
        let results = filter([original] + forms)
        if !results.isEmpty { return results }
        while !forms.isEmpty {
            // Keeping only first occurrences changes neither the order of first occurrences in the next
            // round nor any round's filtered result, and keeps pathological inputs ("sssss…") linear.
            forms = Self.firstOccurrences(applyRules(forms))
            let results = filter(forms)
            if !results.isEmpty { return results }
        }
        return []
    }

    private static func firstOccurrences(_ forms: [[UInt8]]) -> [[UInt8]] {
        guard forms.count > 1 else { return forms }
        var seen = Set<[UInt8]>()
        return forms.filter { seen.insert($0).inserted }
    }

    // MARK: Files

    private static func read(_ directory: URL, _ name: String) throws -> [UInt8] {
        let url = directory.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw WordNetError.fileMissing(path: url.path)
        }
        do { return [UInt8](try Data(contentsOf: url)) } catch {
            throw WordNetError.unreadable(path: url.path, reason: error.localizedDescription)
        }
    }

    /// Calls `body` with each line (without its line break); NLTK reads the files as text, so `\r\n`,
    /// `\r` and `\n` all end a line.
    private static func forEachLine(_ bytes: [UInt8], _ body: (ArraySlice<UInt8>) throws -> Void) rethrows {
        var start = 0, i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x0A || b == 0x0D {
                try body(bytes[start..<i])
                if b == 0x0D && i + 1 < bytes.count && bytes[i + 1] == 0x0A { i += 1 }
                start = i + 1
            }
            i += 1
        }
        if start < bytes.count { try body(bytes[start...]) }
    }

    /// Python's `str.split()` for the ASCII whitespace WordNet's files contain.
    private static func split(_ line: ArraySlice<UInt8>) -> [[UInt8]] {
        var fields: [[UInt8]] = []
        var current: [UInt8] = []
        for b in line {
            switch b {
            case 0x09...0x0D, 0x1C...0x20:
                if !current.isEmpty { fields.append(current); current.removeAll(keepingCapacity: true) }
            default: current.append(b)
            }
        }
        if !current.isEmpty { fields.append(current) }
        return fields
    }
}

/// Why the WordNet database could not be loaded.
public enum WordNetError: Error, CustomStringConvertible, Equatable {
    case fileMissing(path: String)
    case unreadable(path: String, reason: String)
    case malformed(file: String, line: Int, problem: String)

    private static let fix = """
        The lemmatizer needs the WordNet 3.0 database (index.noun, index.verb, index.adj, index.adv and \
        noun.exc, verb.exc, adj.exc, adv.exc). On Debian/Ubuntu run `apt-get install wordnet-base`, which \
        installs them in /usr/share/wordnet, or name a folder holding these files.
        """

    public var description: String {
        switch self {
        case .fileMissing(let path):
            return "WordNet file not found: \(path). \(Self.fix)"
        case .unreadable(let path, let reason):
            return "cannot read WordNet file \(path): \(reason). Check its permissions. \(Self.fix)"
        case .malformed(let file, let line, let problem):
            return "WordNet file \(file), line \(line): \(problem). The file is damaged; reinstall it. \(Self.fix)"
        }
    }
}
