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

    /// One detachment rule: replace the ending `old` by `new` (both ASCII, in `ruleText`).
    private struct Rule: BitwiseCopyable {
        var oldStart: Int32, oldCount: Int32, newStart: Int32, newCount: Int32
    }

    /// Everything `_morphy` consults for one part of speech, as raw views into `memory` (copying this
    /// struct touches no reference count; see `FrozenMemory`).
    private struct PartOfSpeech: @unchecked Sendable {
        var lemmas: ExactStringTable
        var exceptionForms: ExactStringTable
        /// For exception form id `f`: `exceptionStart[f]..<exceptionStart[f+1]` of `exceptionLemmas`,
        /// ids into `exceptionValues`.
        var exceptionStart: UnsafePointer<Int32>
        var exceptionLemmas: UnsafePointer<Int32>
        var exceptionValues: ExactStringTable
        /// Entries of `exceptionLemmas`.
        var exceptionLemmaCount: Int32
        var rules: UnsafePointer<Rule>
        var ruleCount: Int
        var ruleText: UnsafePointer<UInt8>
    }

    private let memory: FrozenMemory
    private let noun: PartOfSpeech
    private let verb: PartOfSpeech
    private let adjective: PartOfSpeech
    private let adverb: PartOfSpeech

    /// NLTK's `MORPHOLOGICAL_SUBSTITUTIONS` (from WordNet's morphy(7WN)), in NLTK's order.
    private static func substitutions(_ pos: WordNetPOS) -> [(old: String, new: String)] {
        switch pos {
        case .noun:
            return [("s", ""), ("ses", "s"), ("ves", "f"), ("xes", "x"), ("zes", "z"), ("ches", "ch"),
                    ("shes", "sh"), ("men", "man"), ("ies", "y")]
        case .verb:
            return [("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"),
                    ("ing", "")]
        case .adjective:
            return [("er", ""), ("est", ""), ("er", "e"), ("est", "e")]
        case .adverb:
            return []
        }
    }

    private static func fileSuffix(_ pos: WordNetPOS) -> String {
        switch pos {
        case .noun: return "noun"
        case .verb: return "verb"
        case .adjective: return "adj"
        case .adverb: return "adv"
        }
    }

    private func part(_ pos: WordNetPOS) -> PartOfSpeech {
        switch pos {
        case .noun: return noun
        case .verb: return verb
        case .adjective: return adjective
        case .adverb: return adverb
        }
    }

    /// NLTK's detachment rules for `pos` as `Rule`s over one text buffer, frozen into `memory`.
    private static func rules(_ pos: WordNetPOS, memory: FrozenMemory)
        -> (UnsafePointer<Rule>, Int, UnsafePointer<UInt8>) {
        var ruleText: [UInt8] = []
        var rules: [Rule] = []
        for (old, new) in substitutions(pos) {
            let oldStart = Int32(ruleText.count)
            ruleText += Array(old.utf8)
            let newStart = Int32(ruleText.count)
            ruleText += Array(new.utf8)
            rules.append(Rule(oldStart: oldStart, oldCount: Int32(old.utf8.count),
                              newStart: newStart, newCount: Int32(new.utf8.count)))
        }
        return (memory.freeze(rules), rules.count, memory.freeze(ruleText))
    }

    /// The parts of speech in the order `init(directory:)` reads their files and an image stores their tables.
    private static let order: [WordNetPOS] = [.noun, .verb, .adjective, .adverb]

    /// The database files the lemmatizer reads, in the order `init(directory:)` reads them: every
    /// `index.*`, then every `*.exc`.
    public static let sourceFileNames = order.map { "index.\(fileSuffix($0))" } + order.map { "\(fileSuffix($0)).exc" }

    /// Loads `index.{noun,verb,adj,adv}` and `{noun,verb,adj,adv}.exc` from `directory`.
    public init(directory: URL = WordNetLemmatizer.defaultDirectory) throws {
        let order = Self.order
        var lemmaSets = [WordNetPOS: StringTableBuilder]()
        for pos in order { lemmaSets[pos] = StringTableBuilder(minimumCapacity: 1024) }
        // Lemma sets: NLTK reads every index file and files each lemma under the pos of its line.
        for pos in order {
            let name = "index.\(Self.fileSuffix(pos))"
            let bytes = try Self.read(directory, name)
            var lineNumber = 0
            try Self.forEachLine(bytes) { line in
                lineNumber += 1
                if line.first == 0x20 { return }  // license header
                // Only the first two fields matter here: the lemma and its part of speech.
                var i = line.startIndex
                func nextField() -> Range<Int>? {
                    while i < line.endIndex && Self.isSpace(line[i]) { i += 1 }
                    let start = i
                    while i < line.endIndex && !Self.isSpace(line[i]) { i += 1 }
                    return start < i ? start..<i : nil
                }
                guard let lemma = nextField(), let posField = nextField() else {
                    if nextField() == nil && line.allSatisfy(Self.isSpace) { return }
                    throw WordNetError.malformed(file: directory.appendingPathComponent(name).path,
                                                 line: lineNumber, problem: "expected a lemma and a part of speech")
                }
                guard posField.count == 1 else { return }
                let linePOS: WordNetPOS
                switch line[posField.lowerBound] {
                case 0x6E: linePOS = .noun
                case 0x76: linePOS = .verb
                case 0x61: linePOS = .adjective
                case 0x72: linePOS = .adverb
                default: return
                }
                lemmaSets[linePOS]!.insert(UnsafeBufferPointer(rebasing: line[lemma]))
            }
        }
        let memory = FrozenMemory()
        var parts: [PartOfSpeech] = []
        for pos in order {
            // Exception list: first field -> remaining fields (a repeated form keeps its last line).
            let bytes = try Self.read(directory, "\(Self.fileSuffix(pos)).exc")
            var forms = StringTableBuilder(minimumCapacity: 4096)
            var values = StringTableBuilder(minimumCapacity: 4096)
            var lists: [[Int32]] = []
            Self.forEachLine(bytes) { line in
                let fields = Self.split(line)
                guard let form = fields.first else { return }
                let id = Int(forms.insert(form))
                let list = fields.dropFirst().map { values.insert($0) }
                if id == lists.count { lists.append(list) } else { lists[id] = list }
            }
            var starts: [Int32] = [0]
            for list in lists { starts.append(starts.last! + Int32(list.count)) }
            let (rules, ruleCount, ruleText) = Self.rules(pos, memory: memory)
            parts.append(PartOfSpeech(
                lemmas: ExactStringTable(lemmaSets[pos]!, memory: memory),
                exceptionForms: ExactStringTable(forms, memory: memory),
                exceptionStart: memory.freeze(starts),
                exceptionLemmas: memory.freeze(lists.flatMap { $0 }),
                exceptionValues: ExactStringTable(values, memory: memory),
                exceptionLemmaCount: starts.last!,
                rules: rules, ruleCount: ruleCount, ruleText: ruleText))
        }
        self.memory = memory
        (noun, verb, adjective, adverb) = (parts[0], parts[1], parts[2], parts[3])
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
        part(pos).lemmas.find(lemma) >= 0
    }

    private func morphy(_ form: UnsafeBufferPointer<UInt8>, pos: WordNetPOS) -> [[UInt8]] {
        let part = part(pos)

        func inLemmas(_ f: [UInt8]) -> Bool { f.withUnsafeBufferPointer { part.lemmas.find($0) >= 0 } }
        func filter(_ forms: [[UInt8]]) -> [[UInt8]] {
            var result: [[UInt8]] = []
            for f in forms where inLemmas(f) && !result.contains(f) { result.append(f) }
            return result
        }
        func applyRules(_ forms: [[UInt8]]) -> [[UInt8]] {
            var out: [[UInt8]] = []
            for f in forms {
                for r in 0..<part.ruleCount {
                    let rule = part.rules[r]
                    let old = UnsafeBufferPointer(start: part.ruleText + Int(rule.oldStart), count: Int(rule.oldCount))
                    guard f.count >= old.count, f[(f.count - old.count)...].elementsEqual(old) else { continue }
                    var candidate = Array(f[..<(f.count - old.count)])
                    candidate.append(contentsOf: UnsafeBufferPointer(start: part.ruleText + Int(rule.newStart),
                                                                     count: Int(rule.newCount)))
                    out.append(candidate)
                }
            }
            return out
        }

        let original = Array(form)
        let exception = part.exceptionForms.find(form)
        if exception >= 0 {
            var forms = [original]
            for k in Int(part.exceptionStart[Int(exception)])..<Int(part.exceptionStart[Int(exception) + 1]) {
                forms.append(Array(part.exceptionValues.key(part.exceptionLemmas[k])))
            }
            return filter(forms)
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
    private static func forEachLine(_ bytes: [UInt8],
                                    _ body: (Slice<UnsafeBufferPointer<UInt8>>) throws -> Void) rethrows {
        try bytes.withUnsafeBufferPointer { bytes in
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
    }

    /// The ASCII whitespace Python's `str.split()` splits WordNet's lines at.
    @inline(__always)
    private static func isSpace(_ b: UInt8) -> Bool { (0x09...0x0D).contains(b) || (0x1C...0x20).contains(b) }

    /// Python's `str.split()` for the ASCII whitespace WordNet's files contain.
    private static func split(_ line: Slice<UnsafeBufferPointer<UInt8>>) -> [[UInt8]] {
        var fields: [[UInt8]] = []
        var current: [UInt8] = []
        for b in line {
            if isSpace(b) {
                if !current.isEmpty { fields.append(current); current.removeAll(keepingCapacity: true) }
            } else {
                current.append(b)
            }
        }
        if !current.isEmpty { fields.append(current) }
        return fields
    }
}

// MARK: Binary image (the parsed database cached by `ChairResourceCache` in MirageMetrics)

extension WordNetLemmatizer {
    /// `BinaryTableReader` kind of a lemmatizer image.
    public static let imageKind: UInt32 = 0x574E_4C31  // "WNL1"
    /// Bump when the tables or their meaning change: older images are then rebuilt from the sources.
    public static let imageVersion: UInt32 = 1

    /// The lemma sets and exception lists as a binary image; `init(image:)` turns it back into an
    /// identical lemmatizer (the detachment rules are the code's own).
    public func encodedImage() -> [UInt8] {
        var w = BinaryTableWriter()
        for pos in Self.order {
            let p = part(pos)
            p.lemmas.write(to: &w)
            p.exceptionForms.write(to: &w)
            w.append(p.exceptionStart, count: p.exceptionForms.count + 1)
            w.append(p.exceptionLemmas, count: Int(p.exceptionLemmaCount))
            p.exceptionValues.write(to: &w)
        }
        return w.encoded(kind: Self.imageKind, version: Self.imageVersion)
    }

    /// A lemmatizer from `encodedImage()`'s bytes, read from `url` in one go. Every index the lookups
    /// follow is validated first; any problem throws `BinaryTableError` (the caller then reads the
    /// database files instead).
    public init(image url: URL) throws {
        let memory = FrozenMemory()
        var r = try BinaryTableReader(readImage(url, into: memory), kind: Self.imageKind, version: Self.imageVersion)
        var parts: [PartOfSpeech] = []
        for pos in Self.order {
            let name = Self.fileSuffix(pos)
            let lemmas = try ExactStringTable(reading: &r, "\(name) lemmas")
            let forms = try ExactStringTable(reading: &r, "\(name) exception forms")
            let starts = try r.next(Int32.self, count: forms.count + 1, "\(name) exception offsets")
            let lists = try r.next(Int32.self)
            let values = try ExactStringTable(reading: &r, "\(name) exception lemmas")
            try TableCheck.offsets(starts, total: lists.count, "\(name) exceptions")
            try TableCheck.values(lists, in: 0..<Int32(values.count), "\(name) exception lemma ids")
            let (rules, ruleCount, ruleText) = Self.rules(pos, memory: memory)
            parts.append(PartOfSpeech(lemmas: lemmas, exceptionForms: forms, exceptionStart: starts.baseAddress!,
                                      exceptionLemmas: lists.baseAddress!, exceptionValues: values,
                                      exceptionLemmaCount: Int32(lists.count),
                                      rules: rules, ruleCount: ruleCount, ruleText: ruleText))
        }
        try r.expectEnd()
        self.memory = memory
        (noun, verb, adjective, adverb) = (parts[0], parts[1], parts[2], parts[3])
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
