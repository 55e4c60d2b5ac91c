import Foundation
import MirageTestSupport
import Testing
@testable import MirageText

@Suite("Perceptron tagger: Python semantics, tie-breaking, summation order, loading, errors, threads")
struct TaggerUnitTests {
    /// Expected values: NLTK 3.8.1's `PerceptronTagger(load=False).normalize(w)` (nltk-oracle venv).
    @Test("normalize follows Python's str.isdigit, str.lower (full mappings, final sigma) and code-point indexing",
          arguments: [
              ("a-b", "!HYPHEN"), ("-ab", "-ab"), ("-", "-"), ("1990", "!YEAR"), ("١٩٩٠", "!YEAR"),
              ("²³⁴⁵", "!YEAR"), ("½", "½"), ("12th", "!DIGITS"), ("ΟΔΟΣ", "οδος"), ("ΣΑ", "σα"),
              ("İ", "i\u{307}"), ("", ""), ("ABC", "abc"), ("Straße", "straße"), ("１２３４", "!YEAR"),
              ("x1990", "x1990"), ("𝟏𝟗𝟗𝟎", "!YEAR"),
          ])
    func normalize(word: String, expected: String) {
        #expect(Array(PerceptronTagger.normalize(word).utf8) == Array(expected.utf8))
    }

    /// A tiny model whose outputs were produced by NLTK 3.8.1 itself:
    /// `t = PerceptronTagger(load=False)`, with these weights, tagdict and classes, then `t.tag(...)`.
    @Test("ties go to the greatest label, scores are summed in feature order, raw-word features use code points")
    func tinyModel() throws {
        let folder = TestTemporary.root
            .appendingPathComponent("mirage-tagger-tiny-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        func write(_ name: String, _ text: String) throws {
            try Data(text.utf8).write(to: folder.appendingPathComponent("averaged_perceptron_tagger_eng.\(name).json"))
        }
        try write("weights", #"""
            {"bias": {"A": 0.1, "B": 0.6}, "i word x": {"A": 0.2}, "i+1 word y": {"A": 0.3}, "i word t": {"C": 0.5, "B": -0.1},
             "i-1 word x": {"C": 5.0}, "i suffix \u00c9\u00e9": {"C": 9.0}, "i pref1 \u00e9": {"D": 9.0}}
            """#)
        try write("tagdict", #"{"Known": "D", "\u00e9": "A"}"#)
        try write("classes", #"["D", "C", "B", "A"]"#)
        let tagger = try PerceptronTagger(directory: folder)
        #expect(tagger.classes == ["A", "B", "C", "D"])
        // 0.1 + 0.2 + 0.3 (in feature order) = 0.6000000000000001 beats B's 0.6; any other order ties,
        // and a tie would go to "B".
        #expect(tagger.tag(["x", "y"]) == ["A", "C"])
        #expect(tagger.tag(["z"]) == ["B"])
        // B and C both score 0.5: the greater label wins.
        #expect(tagger.tag(["t"]) == ["C"])
        #expect(tagger.tag(["Known", "x"]) == ["D", "B"])
        // "i suffix" is word[-3:] of the raw word: all of "XÉé", so "Éé" does not fire.
        #expect(tagger.tag(["XÉé"]) == ["B"])
        // "i pref1" is the first code point: "é" precomposed fires, "e" + U+0301 does not.
        #expect(tagger.tag(["éa"]) == ["D"])
        #expect(tagger.tag(["e\u{301}a"]) == ["B"])
        #expect(tagger.tag([]) == [])
        // Without any weights every label scores 0.0: the greatest label, every time.
        try write("weights", "{}")
        #expect(try PerceptronTagger(directory: folder).tag(["q", "r"]) == ["D", "D"])
    }

    @Test("the fast decimal parser gives exactly Double(text) for every weight of the model",
          .enabled(if: TaggerLemmaModels.taggerAvailable, SharedData.missingMessage))
    func weightParsing() throws {
        let url = SharedData.url("\(TaggerLemmaModels.taggerFolder)/averaged_perceptron_tagger_eng.weights.json")
        var reader = ModelJSONReader([UInt8](try Data(contentsOf: url)))
        let text = try String(contentsOf: url, encoding: .utf8)
        var parsed: [Double] = []
        try reader.objectMembers { reader in
            _ = try reader.string()
            try reader.colon()
            try reader.objectMembers { reader in
                _ = try reader.string()
                try reader.colon()
                parsed.append(try reader.number())
            }
        }
        // The same numbers, parsed by the standard library from their text.
        let expected = text.split(whereSeparator: { ",{}".contains($0) }).compactMap { part -> Double? in
            guard let colon = part.lastIndex(of: ":") else { return nil }
            return Double(part[part.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        #expect(parsed.count == 271_206)
        #expect(parsed.count == expected.count)
        #expect(zip(parsed, expected).allSatisfy { $0.bitPattern == $1.bitPattern })
        var r = ModelJSONReader(Array("[0.1, -2.5e-3, 1e400, 12345678901234567890.5, -0.0]".utf8))
        var values: [Double] = []
        try r.array { values.append(try $0.number()) }
        #expect(values.map(\.bitPattern) == [0.1, -2.5e-3, Double.infinity, 12345678901234567890.5, -0.0].map(\.bitPattern))
    }

    @Test("missing or damaged model files give errors that say what to do")
    func errors() throws {
        let missing = URL(fileURLWithPath: "/nonexistent/mirage-tagger")
        #expect(throws: TaggerError.directoryMissing(path: missing.path)) { try PerceptronTagger(directory: missing) }
        let folder = TestTemporary.root
            .appendingPathComponent("mirage-tagger-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        do {
            _ = try PerceptronTagger(directory: folder)
            Issue.record("loading an empty folder must fail")
        } catch let error as TaggerError {
            #expect(error == .modelFileMissing(directory: folder.path, suffix: ".weights.json", candidates: []))
            #expect(error.description.contains("averaged_perceptron_tagger_eng"))
        }
        for name in ["weights", "tagdict", "classes"] {
            try Data((name == "weights" ? #"{"bias": {"NN": 1.0,}}"# : name == "tagdict" ? "{}" : #"["NN"]"#).utf8)
                .write(to: folder.appendingPathComponent("averaged_perceptron_tagger_eng.\(name).json"))
        }
        do {
            _ = try PerceptronTagger(directory: folder)
            Issue.record("a trailing comma must be rejected")
        } catch let error as TaggerError {
            guard case .malformed(let path, let offset, _) = error else { Issue.record("\(error)"); return }
            #expect(path.hasSuffix(".weights.json"))
            #expect(offset == 20)
            #expect(error.description.contains("download it again"))
        }
    }

    @Test("two threads sharing one tagger and one lemmatizer get the sequential results",
          .enabled(if: SharedData.isAvailable, SharedData.missingMessage),
          .enabled(if: TaggerLemmaModels.wordNetAvailable, TaggerLemmaModels.wordNetMissing))
    func concurrentUse() throws {
        let captions = try readReferenceAnalyses(SharedData.url("chair/reference/llava-1.5-beam5.jsonl"))
        let tagger = TaggerLemmaModels.tagger, lemmatizer = TaggerLemmaModels.lemmatizer
        func analyse(_ c: ReferenceAnalysis) -> [String] {
            let tags = tagger.tag(c.tokens)
            return tags + zip(c.tokens, tags).map { lemmatizer.lemmatize($0, pos: WordNetPOS(pennTag: $1)) }
        }
        let sequential = captions.map(analyse)
        let results = ConcurrentResults(count: captions.count)
        DispatchQueue.concurrentPerform(iterations: 2) { worker in
            for i in stride(from: worker, to: captions.count, by: 2) { results.set(i, analyse(captions[i])) }
        }
        #expect(results.values() == sequential)
    }
}

/// Results written by several threads, one slot each.
private final class ConcurrentResults: @unchecked Sendable {
    private var slots: [[String]]
    private let lock = NSLock()
    init(count: Int) { slots = Array(repeating: [], count: count) }
    func set(_ i: Int, _ value: [String]) { lock.lock(); slots[i] = value; lock.unlock() }
    func values() -> [[String]] { lock.lock(); defer { lock.unlock() }; return slots }
}
