import Foundation

/// NLTK 3.8.1's averaged-perceptron part-of-speech tagger (`nltk.pos_tag`), reproduced exactly.
///
/// The model is the one NLTK ships (`averaged_perceptron_tagger_eng.{weights,tagdict,classes}.json`,
/// the JSON layout NLTK ≥ 3.9 reads; the same weights as 3.8.1's pickle). Tagging follows
/// `PerceptronTagger.tag` of NLTK 3.8.1 (`nltk/tag/perceptron.py`):
/// - the context is `["-START-", "-START2-"] + [normalize(w) for w in tokens] + ["-END-", "-END2-"]`;
/// - a token found verbatim in the tag dictionary takes its tag without scoring;
/// - otherwise the 14 features are scored, each label's score summed in feature order (the order
///   `_get_features` inserts them, so the floating-point sums are bit-identical), and the best label is
///   `max(classes, key=lambda l: (score[l], l))`: because the key contains the label, a score tie goes to
///   the label that is greatest in code-point order, whatever the iteration order of the classes set;
/// - the predicted (or dictionary) tag becomes `prev`, the old `prev` becomes `prev2`.
///
/// All feature strings are interned at load time: tagging a token costs a few byte-exact hash lookups
/// (the normalized word, its suffix, the raw word) and a sparse dot product over flat arrays.
/// The value is immutable and safe to use from any number of threads.
public struct PerceptronTagger: @unchecked Sendable {
    /// The Penn Treebank tags the model can predict, in code-point order.
    public let classes: [String]

    /// Tag names by id: `classes`, then tags that occur only in the tag dictionary, then the two
    /// START pseudo-tags.
    private let tagNames: [String]
    private let startTag: Int32
    private let start2Tag: Int32

    // Lookup tables, frozen into `memory` (read through pointers so that threads sharing the tagger
    // never touch a reference count; see `FrozenMemory`). Immutable after `init`.
    private let memory: FrozenMemory
    /// Every string the model mentions (tag-dictionary words, feature arguments), byte-exact.
    private let strings: ExactStringTable
    /// For string id `s` and string-keyed template `t`: the weight row of feature `"<t> <s>"`, or -1.
    private let stringRows: UnsafePointer<Int32>
    /// For string id `s`: its tag-dictionary tag id, or -1.
    private let dictionaryTags: UnsafePointer<Int32>
    /// `"i-1 tag+i word <prev> <s>"`: for string `s`, entries `prevWordStart[s]..<prevWordStart[s+1]`
    /// of `prevWordTags`/`prevWordRows`.
    private let prevWordStart: UnsafePointer<Int32>
    private let prevWordTags: UnsafePointer<Int32>
    private let prevWordRows: UnsafePointer<Int32>
    /// Rows of the tag-only features, indexed by tag id (pairs by `prev * tagCount + prev2`).
    private let prevTagRows: UnsafePointer<Int32>
    private let prev2TagRows: UnsafePointer<Int32>
    private let tagPairRows: UnsafePointer<Int32>
    private let tagCount: Int
    private let classCount: Int
    private let biasRow: Int32
    /// Sparse weight rows: `rowStart[r]..<rowStart[r+1]` of `rowClasses`/`rowWeights`.
    private let rowStart: UnsafePointer<Int32>
    private let rowClasses: UnsafePointer<UInt8>
    private let rowWeights: UnsafePointer<Double>
    private let rowCount: Int
    /// String ids of the START/END context words and of their 3-code-point suffixes.
    private let boundaryWords: (Int32, Int32, Int32, Int32)
    private let boundarySuffixes: (Int32, Int32, Int32, Int32)

    /// The features whose argument is one string, in the order `_get_features` adds them.
    private enum StringTemplate: Int, CaseIterable {
        case iSuffix, iPref1, iWord, prevWord, prevSuffix, prev2Word, nextWord, nextSuffix, next2Word

        var name: String {
            switch self {
            case .iSuffix: return "i suffix"
            case .iPref1: return "i pref1"
            case .iWord: return "i word"
            case .prevWord: return "i-1 word"
            case .prevSuffix: return "i-1 suffix"
            case .prev2Word: return "i-2 word"
            case .nextWord: return "i+1 word"
            case .nextSuffix: return "i+1 suffix"
            case .next2Word: return "i+2 word"
            }
        }
    }
    private static let templateCount = StringTemplate.allCases.count

    /// The file names NLTK ≥ 3.9 uses for the English model.
    public static let modelFileNames = [
        "averaged_perceptron_tagger_eng.weights.json",
        "averaged_perceptron_tagger_eng.tagdict.json",
        "averaged_perceptron_tagger_eng.classes.json",
    ]

    /// Loads the model from `directory`, which must hold `*.weights.json`, `*.tagdict.json` and
    /// `*.classes.json` (NLTK's `averaged_perceptron_tagger_eng` folder).
    public init(directory: URL) throws {
        let weightsURL = try Self.modelFile(in: directory, suffix: ".weights.json")
        let tagdictURL = try Self.modelFile(in: directory, suffix: ".tagdict.json")
        let classesURL = try Self.modelFile(in: directory, suffix: ".classes.json")

        // Classes, sorted by code point (UTF-8 byte order is code-point order).
        var classBytes: [[UInt8]] = []
        try Self.read(classesURL) { reader in
            try reader.array { reader in classBytes.append(try reader.string()) }
        }
        classBytes = Array(Set(classBytes)).sorted { $0.lexicographicallyPrecedes($1) }
        guard !classBytes.isEmpty, classBytes.count < 256 else {
            throw TaggerError.invalidModel(path: classesURL.path,
                                           problem: "expected 1 to 255 classes, found \(classBytes.count)")
        }
        var tags = StringTableBuilder()
        for c in classBytes { tags.insert(c) }
        let classCount = classBytes.count

        var strings = StringTableBuilder(minimumCapacity: 65_536)
        var stringRows: [Int32] = []
        var dictionaryTags: [Int32] = []
        func intern(_ bytes: [UInt8]) -> Int {
            let id = Int(strings.insert(bytes))
            if id == dictionaryTags.count {
                dictionaryTags.append(-1)
                stringRows.append(contentsOf: repeatElement(-1, count: Self.templateCount))
            }
            return id
        }

        // Tag dictionary: word -> tag. Python's `if not tag` treats an empty tag as absent.
        try Self.read(tagdictURL) { reader in
            try reader.object { reader, word in
                let tag = try reader.string()
                guard !tag.isEmpty else { return }
                dictionaryTags[intern(word)] = tags.insert(tag)
            }
        }
        let start = tags.insert(Array("-START-".utf8))
        let start2 = tags.insert(Array("-START2-".utf8))
        let tagCount = tags.count

        // Weights: feature string -> {label: weight}. Each feature becomes one sparse row.
        var rowStart: [Int32] = [0]
        var rowClasses: [UInt8] = []
        var rowWeights: [Double] = []
        var prevTagRows = [Int32](repeating: -1, count: tagCount)
        var prev2TagRows = [Int32](repeating: -1, count: tagCount)
        var tagPairRows = [Int32](repeating: -1, count: tagCount * tagCount)
        var prevWordTriples: [(string: Int32, tag: Int32, row: Int32)] = []
        var biasRow: Int32 = -1
        let templatePrefixes = StringTemplate.allCases.map { (template: $0, prefix: Array(($0.name + " ").utf8)) }
        let prevTagPrefix = Array("i-1 tag ".utf8)
        let prev2TagPrefix = Array("i-2 tag ".utf8)
        let tagPairPrefix = Array("i tag+i-2 tag ".utf8)
        let prevTagWordPrefix = Array("i-1 tag+i word ".utf8)
        let bias = Array("bias".utf8)

        try Self.read(weightsURL) { reader in
            try reader.object { reader, feature in
                let row = Int32(rowStart.count - 1)
                try reader.objectMembers { reader in
                    let c = try reader.withString { tags.find($0) }
                    try reader.colon()
                    let weight = try reader.number()
                    // Labels outside `classes` cannot win `max(self.classes, ...)`; skip them.
                    if c >= 0 && Int(c) < classCount {
                        rowClasses.append(UInt8(c))
                        rowWeights.append(weight)
                    }
                }
                rowStart.append(Int32(rowClasses.count))

                if feature == bias { biasRow = row; return }
                if let rest = Self.dropPrefix(prevTagWordPrefix, of: feature) {
                    // "<prev tag> <word>": tags contain no space, the word may.
                    guard let space = rest.firstIndex(of: 0x20) else { return }
                    let tag = tags.find(Array(rest[..<space]))
                    guard tag >= 0 else { return }
                    let word = intern(Array(rest[(space + 1)...]))
                    prevWordTriples.append((Int32(word), tag, row))
                    return
                }
                if let rest = Self.dropPrefix(tagPairPrefix, of: feature) {
                    guard let space = rest.firstIndex(of: 0x20) else { return }
                    let t1 = tags.find(Array(rest[..<space])), t2 = tags.find(Array(rest[(space + 1)...]))
                    if t1 >= 0 && t2 >= 0 { tagPairRows[Int(t1) * tagCount + Int(t2)] = row }
                    return
                }
                if let rest = Self.dropPrefix(prevTagPrefix, of: feature) {
                    let t = tags.find(Array(rest))
                    if t >= 0 { prevTagRows[Int(t)] = row }
                    return
                }
                if let rest = Self.dropPrefix(prev2TagPrefix, of: feature) {
                    let t = tags.find(Array(rest))
                    if t >= 0 { prev2TagRows[Int(t)] = row }
                    return
                }
                for (template, prefix) in templatePrefixes {
                    if let rest = Self.dropPrefix(prefix, of: feature) {
                        let s = intern(Array(rest))
                        stringRows[s * Self.templateCount + template.rawValue] = row
                        return
                    }
                }
                // A feature this version of the tagger never generates: it can never fire.
            }
        }

        // "i-1 tag+i word" entries grouped by word (CSR).
        prevWordTriples.sort { ($0.string, $0.tag) < ($1.string, $1.tag) }
        var prevWordStart = [Int32](repeating: 0, count: strings.count + 1)
        for t in prevWordTriples { prevWordStart[Int(t.string) + 1] += 1 }
        for s in 0..<strings.count { prevWordStart[s + 1] += prevWordStart[s] }

        // Context words outside the sentence and their suffixes.
        let boundary = ["-START-", "-START2-", "-END-", "-END2-"].map { word in
            withUTF8Buffer(word) { b in
                (strings.find(b),
                 strings.find(UnsafeBufferPointer(rebasing: b[PythonStr.suffixStart(b, codePoints: 3)...])))
            }
        }
        boundaryWords = (boundary[0].0, boundary[1].0, boundary[2].0, boundary[3].0)
        boundarySuffixes = (boundary[0].1, boundary[1].1, boundary[2].1, boundary[3].1)

        let memory = FrozenMemory()
        self.memory = memory
        self.classes = classBytes.map { String(decoding: $0, as: UTF8.self) }
        self.tagNames = (0..<tagCount).map { tags.string(Int32($0)) }
        self.startTag = start
        self.start2Tag = start2
        self.strings = ExactStringTable(strings, memory: memory)
        self.stringRows = memory.freeze(stringRows)
        self.dictionaryTags = memory.freeze(dictionaryTags)
        self.prevWordStart = memory.freeze(prevWordStart)
        self.prevWordTags = memory.freeze(prevWordTriples.map(\.tag))
        self.prevWordRows = memory.freeze(prevWordTriples.map(\.row))
        self.prevTagRows = memory.freeze(prevTagRows)
        self.prev2TagRows = memory.freeze(prev2TagRows)
        self.tagPairRows = memory.freeze(tagPairRows)
        self.tagCount = tagCount
        self.classCount = classCount
        self.biasRow = biasRow
        self.rowStart = memory.freeze(rowStart)
        self.rowClasses = memory.freeze(rowClasses)
        self.rowWeights = memory.freeze(rowWeights)
        self.rowCount = rowStart.count - 1
    }

    /// Tags `tokens` (NLTK 3.8.1 `pos_tag(tokens)`), returning one Penn Treebank tag per token.
    public func tag(_ tokens: [String]) -> [String] {
        let n = tokens.count
        guard n > 0 else { return [] }
        // Scratch: per context position (0 and 1 are START, n+2 and n+3 are END) the string ids of the
        // normalized word and of its last three code points; per token the string ids of the raw word
        // (tag dictionary), of its last three code points and of its first code point.
        let scratchCount = 2 * (n + 4) + 3 * n
        return withUnsafeTemporaryAllocation(of: Int32.self, capacity: scratchCount) { scratch in
            withUnsafeTemporaryAllocation(of: Double.self, capacity: classCount) { scores in
                let contextWord = scratch.baseAddress!
                let contextSuffix = contextWord + (n + 4)
                let rawWord = contextSuffix + (n + 4)
                let rawSuffix = rawWord + n
                let rawPrefix = rawSuffix + n
                analyseTokens(tokens, contextWord, contextSuffix, rawWord, rawSuffix, rawPrefix)
                return predict(n, contextWord, contextSuffix, rawWord, rawSuffix, rawPrefix, scores.baseAddress!)
            }
        }
    }

    /// Fills the string ids `tag` needs for every token.
    @inline(__always)
    private func analyseTokens(_ tokens: [String], _ contextWord: UnsafeMutablePointer<Int32>,
                               _ contextSuffix: UnsafeMutablePointer<Int32>, _ rawWord: UnsafeMutablePointer<Int32>,
                               _ rawSuffix: UnsafeMutablePointer<Int32>, _ rawPrefix: UnsafeMutablePointer<Int32>) {
        let n = tokens.count
        (contextWord[0], contextWord[1], contextWord[n + 2], contextWord[n + 3]) = boundaryWords
        (contextSuffix[0], contextSuffix[1], contextSuffix[n + 2], contextSuffix[n + 3]) = boundarySuffixes
        var normalized: [UInt8] = []
        normalized.reserveCapacity(64)
        for i in 0..<n {
            withUTF8Buffer(tokens[i]) { raw in
                normalized.removeAll(keepingCapacity: true)
                Self.normalize(raw, into: &normalized)
                normalized.withUnsafeBufferPointer { norm in
                    let wordID = strings.find(norm)
                    let suffixID = strings.find(UnsafeBufferPointer(
                        rebasing: norm[PythonStr.suffixStart(norm, codePoints: 3)...]))
                    contextWord[i + 2] = wordID
                    contextSuffix[i + 2] = suffixID
                    if raw.elementsEqual(norm) {
                        rawWord[i] = wordID
                        rawSuffix[i] = suffixID
                    } else {
                        rawWord[i] = strings.find(raw)
                        rawSuffix[i] = strings.find(UnsafeBufferPointer(
                            rebasing: raw[PythonStr.suffixStart(raw, codePoints: 3)...]))
                    }
                    rawPrefix[i] = strings.find(UnsafeBufferPointer(
                        rebasing: raw[..<PythonStr.firstCodePointLength(raw)]))
                }
            }
        }
    }

    /// The greedy left-to-right pass of `PerceptronTagger.tag`.
    @inline(__always)
    private func predict(_ n: Int, _ contextWord: UnsafeMutablePointer<Int32>,
                         _ contextSuffix: UnsafeMutablePointer<Int32>, _ rawWord: UnsafeMutablePointer<Int32>,
                         _ rawSuffix: UnsafeMutablePointer<Int32>, _ rawPrefix: UnsafeMutablePointer<Int32>,
                         _ scores: UnsafeMutablePointer<Double>) -> [String] {
        let tc = Self.templateCount
        @inline(__always) func stringRow(_ s: Int32, _ t: StringTemplate) -> Int32 {
            s < 0 ? -1 : stringRows[Int(s) * tc + t.rawValue]
        }
        @inline(__always) func add(_ row: Int32) {
            guard row >= 0 else { return }
            for k in Int(rowStart[Int(row)])..<Int(rowStart[Int(row) + 1]) {
                scores[Int(rowClasses[k])] += rowWeights[k]
            }
        }
        var output: [String] = []
        output.reserveCapacity(n)
        var prev = startTag, prev2 = start2Tag
        for i in 0..<n {
            var tag: Int32 = rawWord[i] >= 0 ? dictionaryTags[Int(rawWord[i])] : -1
            if tag < 0 {
                scores.update(repeating: 0, count: classCount)
                let c = i + 2
                // Python's insertion order in `_get_features`; the sums must follow it exactly.
                add(biasRow)
                add(stringRow(rawSuffix[i], .iSuffix))
                add(stringRow(rawPrefix[i], .iPref1))
                add(prevTagRows[Int(prev)])
                add(prev2TagRows[Int(prev2)])
                add(tagPairRows[Int(prev) * tagCount + Int(prev2)])
                add(stringRow(contextWord[c], .iWord))
                add(prevTagWordRow(word: contextWord[c], prev: prev))
                add(stringRow(contextWord[c - 1], .prevWord))
                add(stringRow(contextSuffix[c - 1], .prevSuffix))
                add(stringRow(contextWord[c - 2], .prev2Word))
                add(stringRow(contextWord[c + 1], .nextWord))
                add(stringRow(contextSuffix[c + 1], .nextSuffix))
                add(stringRow(contextWord[c + 2], .next2Word))
                // max(classes, key=(score, label)) with classes in ascending label order: the last
                // maximal score wins.
                var best = 0
                for k in 1..<classCount where scores[k] >= scores[best] { best = k }
                tag = Int32(best)
            }
            output.append(tagNames[Int(tag)])
            prev2 = prev
            prev = tag
        }
        return output
    }

    @inline(__always)
    private func prevTagWordRow(word: Int32, prev: Int32) -> Int32 {
        guard word >= 0 else { return -1 }
        for k in Int(prevWordStart[Int(word)])..<Int(prevWordStart[Int(word) + 1]) where prevWordTags[k] == prev {
            return prevWordRows[k]
        }
        return -1
    }

    /// NLTK's `PerceptronTagger.normalize`: "!HYPHEN" for a word containing "-" that does not start
    /// with one, "!YEAR" for four digits, "!DIGITS" when the first code point is a digit, else `lower()`.
    static func normalize(_ word: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        if word.contains(0x2D) && word[0] != 0x2D {
            out.append(contentsOf: "!HYPHEN".utf8)
            return
        }
        if !word.isEmpty {
            let ascii = !word.contains(where: { $0 >= 0x80 })
            if ascii {
                if word.count == 4 && word.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                    out.append(contentsOf: "!YEAR".utf8); return
                }
                if word[0] >= 0x30 && word[0] <= 0x39 {
                    out.append(contentsOf: "!DIGITS".utf8); return
                }
            } else {
                let scalars = PythonStr.scalars(word)
                if scalars.count == 4 && scalars.allSatisfy(PythonStr.isDigit) {
                    out.append(contentsOf: "!YEAR".utf8); return
                }
                if PythonStr.isDigit(scalars.first!) {
                    out.append(contentsOf: "!DIGITS".utf8); return
                }
            }
        }
        PythonStr.appendLowercased(word, to: &out)
    }

    /// `normalize` on a string (exposed for tests and diagnostics).
    static func normalize(_ word: String) -> String {
        var out: [UInt8] = []
        withUTF8Buffer(word) { normalize($0, into: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    private static func dropPrefix(_ prefix: [UInt8], of bytes: [UInt8]) -> ArraySlice<UInt8>? {
        guard bytes.count >= prefix.count, bytes[..<prefix.count].elementsEqual(prefix) else { return nil }
        return bytes[prefix.count...]
    }

    private static func modelFile(in directory: URL, suffix: String) throws -> URL {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw TaggerError.directoryMissing(path: directory.path)
        }
        let preferred = directory.appendingPathComponent("averaged_perceptron_tagger_eng" + suffix)
        if fm.fileExists(atPath: preferred.path) { return preferred }
        let names = (try? fm.contentsOfDirectory(atPath: directory.path)) ?? []
        let matches = names.filter { $0.hasSuffix(suffix) }.sorted()
        guard matches.count == 1 else {
            throw TaggerError.modelFileMissing(directory: directory.path, suffix: suffix, candidates: matches)
        }
        return directory.appendingPathComponent(matches[0])
    }

    private static func read(_ url: URL, _ parse: (inout ModelJSONReader) throws -> Void) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TaggerError.unreadable(path: url.path, reason: error.localizedDescription)
        }
        var reader = ModelJSONReader([UInt8](data))
        do {
            try parse(&reader)
            try reader.expectEnd()
        } catch let error as ModelJSONReader.SyntaxError {
            throw TaggerError.malformed(path: url.path, offset: error.offset, problem: error.message)
        }
    }
}

/// Why the perceptron tagger's model could not be loaded.
public enum TaggerError: Error, CustomStringConvertible, Equatable {
    case directoryMissing(path: String)
    case modelFileMissing(directory: String, suffix: String, candidates: [String])
    case unreadable(path: String, reason: String)
    case malformed(path: String, offset: Int, problem: String)
    case invalidModel(path: String, problem: String)

    private static let fix = """
        Point Mirage at the folder holding NLTK's English averaged-perceptron tagger in the JSON layout \
        (averaged_perceptron_tagger_eng.weights.json, .tagdict.json, .classes.json), e.g. the \
        `taggers/averaged_perceptron_tagger_eng` folder that \
        `python -m nltk.downloader averaged_perceptron_tagger_eng` installs.
        """

    public var description: String {
        switch self {
        case .directoryMissing(let path):
            return "POS tagger model folder not found: \(path). \(Self.fix)"
        case .modelFileMissing(let directory, let suffix, let candidates):
            let found = candidates.isEmpty ? "none" : candidates.joined(separator: ", ")
            return "POS tagger model folder \(directory) needs exactly one *\(suffix) file (found: \(found)). \(Self.fix)"
        case .unreadable(let path, let reason):
            return "cannot read POS tagger model file \(path): \(reason). Check that it exists and is readable."
        case .malformed(let path, let offset, let problem):
            return "POS tagger model file \(path) is not valid JSON at byte \(offset): \(problem). " +
                "The file is damaged or not an NLTK model; download it again. \(Self.fix)"
        case .invalidModel(let path, let problem):
            return "POS tagger model file \(path) is not an NLTK tagger model: \(problem). \(Self.fix)"
        }
    }
}

// MARK: Binary image (a parsed model cached by `ChairResourceCache` in MirageMetrics)

extension PerceptronTagger {
    /// `BinaryTableReader` kind of a tagger image.
    public static let imageKind: UInt32 = 0x5441_4731  // "TAG1"
    /// Bump when the tables or their meaning change: older images are then rebuilt from the sources.
    public static let imageVersion: UInt32 = 1

    /// The model's tables as a binary image; `init(image:)` turns it back into an identical tagger.
    public func encodedImage() -> [UInt8] {
        var w = BinaryTableWriter()
        var names: [UInt8] = [], nameStarts: [Int32] = [0]
        for name in tagNames {
            names += Array(name.utf8)
            nameStarts.append(Int32(names.count))
        }
        w.append(names)
        w.append(nameStarts)
        w.append([Int64(classCount), Int64(tagCount), Int64(startTag), Int64(start2Tag), Int64(biasRow)])
        w.append([boundaryWords.0, boundaryWords.1, boundaryWords.2, boundaryWords.3,
                  boundarySuffixes.0, boundarySuffixes.1, boundarySuffixes.2, boundarySuffixes.3])
        strings.write(to: &w)
        let stringCount = strings.count
        w.append(stringRows, count: stringCount * Self.templateCount)
        w.append(dictionaryTags, count: stringCount)
        w.append(prevWordStart, count: stringCount + 1)
        let triples = Int(prevWordStart[stringCount])
        w.append(prevWordTags, count: triples)
        w.append(prevWordRows, count: triples)
        w.append(prevTagRows, count: tagCount)
        w.append(prev2TagRows, count: tagCount)
        w.append(tagPairRows, count: tagCount * tagCount)
        w.append(rowStart, count: rowCount + 1)
        let entries = Int(rowStart[rowCount])
        w.append(rowClasses, count: entries)
        w.append(rowWeights, count: entries)
        return w.encoded(kind: Self.imageKind, version: Self.imageVersion)
    }

    /// A tagger from `encodedImage()`'s bytes, read from `url` in one go. Everything the tagger indexes
    /// without checks is validated first; any problem throws `BinaryTableError` (the caller then loads the
    /// JSON model instead).
    public init(image url: URL) throws {
        let memory = FrozenMemory()
        var r = try BinaryTableReader(readImage(url, into: memory), kind: Self.imageKind, version: Self.imageVersion)
        let names = try r.next(UInt8.self)
        let nameStarts = try r.next(Int32.self)
        try TableCheck.offsets(nameStarts, total: names.count, "tag names")
        let scalars = try r.next(Int64.self, count: 5, "tagger scalars")
        let boundary = try r.next(Int32.self, count: 8, "boundary words")
        let strings = try ExactStringTable(reading: &r, "tagger strings")
        let classCount = Int(scalars[0]), tagCount = Int(scalars[1])
        guard nameStarts.count - 1 == tagCount, (1...255).contains(classCount), tagCount >= classCount + 2 else {
            throw BinaryTableError("tagger: \(classCount) classes, \(tagCount) tags, \(nameStarts.count - 1) tag names")
        }
        let tag = Int32(-1)..<Int32(tagCount), string = Int32(-1)..<Int32(strings.count)
        guard (0..<Int64(tagCount)).contains(scalars[2]) && (0..<Int64(tagCount)).contains(scalars[3]) else {
            throw BinaryTableError("tagger: START tags outside the tag set")
        }
        try TableCheck.values(boundary, in: string, "boundary words")
        let stringRows = try r.next(Int32.self, count: strings.count * Self.templateCount, "string rows")
        let dictionaryTags = try r.next(Int32.self, count: strings.count, "tag dictionary")
        let prevWordStart = try r.next(Int32.self, count: strings.count + 1, "previous-tag word offsets")
        let prevWordTags = try r.next(Int32.self)
        let prevWordRows = try r.next(Int32.self, count: prevWordTags.count, "previous-tag word rows")
        let prevTagRows = try r.next(Int32.self, count: tagCount, "previous-tag rows")
        let prev2TagRows = try r.next(Int32.self, count: tagCount, "second previous-tag rows")
        let tagPairRows = try r.next(Int32.self, count: tagCount * tagCount, "tag pair rows")
        let rowStart = try r.next(Int32.self)
        let rowClasses = try r.next(UInt8.self)
        let rowWeights = try r.next(Double.self, count: rowClasses.count, "weights")
        try r.expectEnd()
        let rowCount = rowStart.count - 1
        guard rowCount >= 0 else { throw BinaryTableError("tagger: no weight rows") }
        let row = Int32(-1)..<Int32(rowCount)
        try TableCheck.offsets(prevWordStart, total: prevWordTags.count, "previous-tag words")
        try TableCheck.offsets(rowStart, total: rowClasses.count, "weight rows")
        try TableCheck.values(dictionaryTags, in: tag, "tag dictionary")
        try TableCheck.values(prevWordTags, in: 0..<tag.upperBound, "previous-tag word tags")
        for rows in [stringRows, prevWordRows, prevTagRows, prev2TagRows, tagPairRows] {
            try TableCheck.values(rows, in: row, "feature rows")
        }
        guard (-1..<Int64(rowCount)).contains(scalars[4]) else { throw BinaryTableError("tagger: bias row outside the rows") }
        for c in rowClasses where Int(c) >= classCount { throw BinaryTableError("tagger: weight of class \(c) ≥ \(classCount)") }

        self.memory = memory
        self.tagNames = (0..<tagCount).map { t in
            String(decoding: UnsafeBufferPointer(rebasing: names[Int(nameStarts[t])..<Int(nameStarts[t + 1])]), as: UTF8.self)
        }
        self.classes = Array(tagNames[0..<classCount])
        self.startTag = Int32(scalars[2])
        self.start2Tag = Int32(scalars[3])
        self.strings = strings
        self.stringRows = stringRows.baseAddress!
        self.dictionaryTags = dictionaryTags.baseAddress!
        self.prevWordStart = prevWordStart.baseAddress!
        self.prevWordTags = prevWordTags.baseAddress!
        self.prevWordRows = prevWordRows.baseAddress!
        self.prevTagRows = prevTagRows.baseAddress!
        self.prev2TagRows = prev2TagRows.baseAddress!
        self.tagPairRows = tagPairRows.baseAddress!
        self.tagCount = tagCount
        self.classCount = classCount
        self.biasRow = Int32(scalars[4])
        self.rowStart = rowStart.baseAddress!
        self.rowClasses = rowClasses.baseAddress!
        self.rowWeights = rowWeights.baseAddress!
        self.rowCount = rowCount
        boundaryWords = (boundary[0], boundary[1], boundary[2], boundary[3])
        boundarySuffixes = (boundary[4], boundary[5], boundary[6], boundary[7])
    }

    /// The model's three JSON files in `directory` (weights, tag dictionary, classes), as `init(directory:)`
    /// finds them.
    public static func modelFiles(in directory: URL) throws -> [URL] {
        try [".weights.json", ".tagdict.json", ".classes.json"].map { try modelFile(in: directory, suffix: $0) }
    }
}
