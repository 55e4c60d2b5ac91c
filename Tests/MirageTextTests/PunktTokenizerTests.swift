import Foundation
import MirageTestSupport
import Testing
@testable import MirageText

/// Loading the punkt_tab layout, its errors, and the sentence splitter on the shared English model.
@Suite struct PunktTokenizerTests {
    /// Writes a punkt_tab folder with the given file contents into a fresh temporary directory.
    static func folder(_ files: [PunktParameters.File: String]) throws -> URL {
        let dir = TestTemporary.root
            .appendingPathComponent("punkt-test-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (file, text) in files {
            try Data(text.utf8).write(to: dir.appendingPathComponent(file.rawValue))
        }
        return dir
    }

    static let valid: [PunktParameters.File: String] = [
        .abbreviations: "dr\nu.s\n\ne.g\n",
        .collocations: "##number##\tpepper\nb\tedelman\n",
        .sentenceStarters: "however\nbut\n",
        .orthographicContext: "coverage\t36\nthe\t2\nthe\t32\n",
    ]

    @Test func loadsTheTabLayout() throws {
        let dir = try Self.folder(Self.valid)
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = try PunktParameters(directory: dir)
        #expect(p.abbreviationTypes == ["dr", "u.s", "e.g"])
        #expect(p.collocations == [.init("##number##", "pepper"), .init("b", "edelman")])
        #expect(p.sentenceStarters == ["however", "but"])
        // Repeated types combine their flags, as NLTK's add_ortho_context does.
        #expect(p.orthographicContext == ["coverage": 36, "the": 34])
    }

    @Test func malformedLinesNameFileAndLine() throws {
        var files = Self.valid
        files[.orthographicContext] = "coverage\t36\nthe 32\n"
        var dir = try Self.folder(files)
        #expect(throws: PunktParametersError.self) { try PunktParameters(directory: dir) }
        do {
            _ = try PunktParameters(directory: dir)
        } catch let error as PunktParametersError {
            guard case let .malformedLine(file, line, _, found) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(file.hasSuffix("ortho_context.tab"))
            #expect(line == 2)
            #expect(found == "the 32")
            #expect(error.description.contains("ortho_context.tab:2"))
        }
        try? FileManager.default.removeItem(at: dir)

        files = Self.valid
        files[.orthographicContext] = "coverage\tmany\n"
        dir = try Self.folder(files)
        #expect(throws: PunktParametersError.self) { try PunktParameters(directory: dir) }
        try? FileManager.default.removeItem(at: dir)

        files = Self.valid
        files[.collocations] = "a\tb\tc\n"
        dir = try Self.folder(files)
        #expect(throws: PunktParametersError.self) { try PunktParameters(directory: dir) }
        try? FileManager.default.removeItem(at: dir)
    }

    @Test func missingFileSaysWhatToProvide() throws {
        var files = Self.valid
        files[.sentenceStarters] = nil
        let dir = try Self.folder(files)
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            _ = try PunktParameters(directory: dir)
            Issue.record("loading should fail without sent_starters.txt")
        } catch let error as PunktParametersError {
            guard case let .unreadable(file, _) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(file.hasSuffix("sent_starters.txt"))
            #expect(error.description.contains("punkt_tab"))
        }
    }

    @Test(.enabled(if: TokenizerTestData.hasPunkt, TokenizerTestData.missingPunkt))
    func sharedEnglishModelSizes() throws {
        // Sizes of NLTK 3.8.1's English model (len() of each field of nltk_data's PY3/english.pickle).
        let p = try TokenizerTestData.punkt()
        #expect(p.abbreviationTypes.count == 156)
        #expect(p.collocations.count == 37)
        #expect(p.sentenceStarters.count == 39)
        #expect(p.orthographicContext.count == 20366)
        #expect(p.abbreviationTypes.contains(". . "), "entries are kept verbatim, spaces included")
    }

    /// Sentence splits on the CHAIR reference captions: word_tokenize of the concatenated sentences must
    /// equal the reference tokens, and every sentence is a piece of the caption in order.
    @Test(.enabled(if: SharedData.isAvailable && TokenizerTestData.hasPunkt, SharedData.missingMessage))
    func sentencesCoverTheCaption() throws {
        let splitter = PunktSentenceTokenizer(parameters: try TokenizerTestData.punkt())
        for record in try TokenizerTestData.jsonLines(SharedData.url("chair/reference/llava-1.5-greedy.jsonl")) {
            guard let original = record.caption else { continue }  // the overall_metrics line
            let caption = PythonStr.lowercased(original)
            let sentences = splitter.sentences(caption)
            var rest = Substring(caption)
            for sentence in sentences {
                let range = try #require(rest.range(of: sentence), "sentence \(sentence) not found in order")
                #expect(rest[..<range.lowerBound].allSatisfy { $0.isWhitespace })
                rest = rest[range.upperBound...]
            }
            #expect(rest.allSatisfy { $0.isWhitespace })
        }
    }
}
