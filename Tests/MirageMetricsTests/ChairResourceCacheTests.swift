import Foundation
import Testing
import MirageMetrics
import MirageTestSupport
@testable import MirageText

/// `ChairResourceCache`: the tagger, WordNet and the ground truth loaded from their binary images score every
/// caption of the 12 OPERA logs bit-identically to the parsed resources; damaged, truncated, foreign or stale
/// images are never used (the sources are parsed again, silently) and are rewritten.
@Suite struct ChairResourceCacheTests {
    static let tagger = SharedData.url("nltk/averaged_perceptron_tagger_eng")
    static let wordnet = URL(fileURLWithPath: SharedData.wordnet)
    static var isAvailable: Bool { ChairPipelineParityTests.isAvailable }

    /// A fresh cache folder (removed by the caller).
    static func temporaryFolder() throws -> URL {
        let url = TestTemporary.url("mirage-text-cache")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func images(in folder: URL) throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "bin" }.sorted { $0.path < $1.path }
    }

    @Test(.enabled(if: isAvailable, ChairPipelineParityTests.missingMessage))
    func cachedModelsScoreEveryCaptionBitIdentically() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let cache = ChairResourceCache(directory: folder)
        let first = try cache.tagger(directory: Self.tagger)
        let firstWordNet = try cache.lemmatizer(directory: Self.wordnet)
        #expect(first.source == .parsed && firstWordNet.source == .parsed)
        #expect(try Self.images(in: folder).count == 2)
        let second = try cache.tagger(directory: Self.tagger)
        let secondWordNet = try cache.lemmatizer(directory: Self.wordnet)
        #expect(second.source == .image && secondWordNet.source == .image)
        #expect(second.tagger.classes == first.tagger.classes)

        let parsed = try ChairPipelineParityTests.pipeline.get()
        let punkt = try PunktParameters(directory: SharedData.url("nltk/punkt_tab/english"))
        let tokenizer = WordTokenizer(punkt: punkt)
        let cached = ChairTextPipeline(tokenizer: { tokenizer.tokenize($0) }, tagger: second.tagger,
                                       lemmatizer: secondWordNet.lemmatizer)
        let vocabulary = try ChairReference.vocabulary()
        let truth = try ChairReference.groundTruth.get()
        let gtFile = SharedData.url("chair/coco2014_gt_objects.json")
        #expect(try cache.groundTruth(prebuiltJSON: gtFile).source == .parsed)
        let cachedTruth = try cache.groundTruth(prebuiltJSON: gtFile)
        #expect(cachedTruth.source == .image)
        #expect(cachedTruth.groundTruth == truth)
        #expect(try Self.images(in: folder).count == 3)
        var captions = 0
        for log in ChairReference.logNames {
            let items = try ChairReference.log(log)
            let a = try ChairScorer(vocabulary: vocabulary, groundTruth: truth, analyzer: parsed).score(items)
            let b = try ChairScorer(vocabulary: vocabulary, groundTruth: cachedTruth.groundTruth, analyzer: cached).score(items)
            // Compared as encoded JSON (NaN written as a string), so every value must match bit for bit
            // in its shortest round-trip form, and NaN equals NaN.
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            #expect(a.captions.count == b.captions.count)
            for (x, y) in zip(a.captions, b.captions) where try encoder.encode(x) != encoder.encode(y) {
                Issue.record("\(log) image \(x.imageId): the cached models give \(y), the parsed ones \(x)")
            }
            #expect(try encoder.encode(a) == encoder.encode(b), "\(log)")
            captions += a.captions.count
        }
        #expect(captions == 6000)
        // Every lemma WordNet knows comes back the same, including forms only the exception lists map.
        for (word, pos) in [("geese", WordNetPOS.noun), ("went", .verb), ("better", .adjective), ("dogs", .noun),
                            ("ran", .verb), ("women", .noun), ("xyzzy", .noun), ("Dogs", .noun)] {
            #expect(secondWordNet.lemmatizer.morphy(word, pos: pos) == firstWordNet.lemmatizer.morphy(word, pos: pos))
        }
    }

    /// Truncated, damaged (one flipped byte anywhere) and empty images, and images of the other model's
    /// kind, are rejected by the loader, parsed from the sources instead, and rewritten.
    @Test(.enabled(if: isAvailable, ChairPipelineParityTests.missingMessage))
    func damagedImagesAreNeverUsedAndAreRebuilt() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let cache = ChairResourceCache(directory: folder)
        _ = try cache.tagger(directory: Self.tagger)
        _ = try cache.lemmatizer(directory: Self.wordnet)
        let images = try Self.images(in: folder)
        let taggerImage = try #require(images.first { $0.lastPathComponent.hasPrefix("tagger-") })
        let wordnetImage = try #require(images.first { $0.lastPathComponent.hasPrefix("wordnet-") })
        let good = try Data(contentsOf: taggerImage)
        let goodWordNet = try Data(contentsOf: wordnetImage)
        let reference = try PerceptronTagger(directory: Self.tagger)
        let sentence = ["a", "man", "riding", "a", "wave", "on", "top", "of", "a", "surfboard", "."]

        var damaged: [(String, Data)] = [("empty", Data()), ("truncated", good.prefix(good.count / 2)),
                                         ("header only", good.prefix(48)), ("wordnet image", goodWordNet)]
        for position in [0, 9, 20, 40, 100, good.count / 3, good.count - 1] {
            var bytes = good
            bytes[position] ^= 0x10
            damaged.append(("byte \(position) flipped", bytes))
        }
        for (what, bytes) in damaged {
            try bytes.write(to: taggerImage)
            #expect(throws: BinaryTableError.self, "\(what)") { _ = try PerceptronTagger(image: taggerImage) }
            let loaded = try cache.tagger(directory: Self.tagger)
            #expect(loaded.source == .parsed, "\(what)")
            #expect(loaded.tagger.tag(sentence) == reference.tag(sentence), "\(what)")
            #expect(try Data(contentsOf: taggerImage) == good, "\(what): the image was not rewritten")
            #expect(try cache.tagger(directory: Self.tagger).source == .image, "\(what)")
        }
        var bytes = goodWordNet
        bytes[goodWordNet.count / 2] ^= 0x01
        try bytes.write(to: wordnetImage)
        #expect(throws: BinaryTableError.self) { _ = try WordNetLemmatizer(image: wordnetImage) }
        #expect(try cache.lemmatizer(directory: Self.wordnet).source == .parsed)
        #expect(try Data(contentsOf: wordnetImage) == goodWordNet)

        // Ground truth: a damaged image is rejected and rebuilt; the result equals the JSON's.
        let gtFile = SharedData.url("chair/coco2014_gt_objects.json")
        let truth = try ChairGroundTruth(prebuiltJSON: gtFile)
        _ = try cache.groundTruth(prebuiltJSON: gtFile)
        let gtImage = try #require(try Self.images(in: folder).first { $0.lastPathComponent.hasPrefix("ground-truth-") })
        let goodGT = try Data(contentsOf: gtImage)
        for position in [12, goodGT.count / 2, goodGT.count - 3] {
            var damagedGT = goodGT
            damagedGT[position] ^= 0x40
            try damagedGT.write(to: gtImage)
            #expect(throws: BinaryTableError.self) { _ = try ChairGroundTruth(image: gtImage) }
            let loaded = try cache.groundTruth(prebuiltJSON: gtFile)
            #expect(loaded.source == .parsed && loaded.groundTruth == truth)
            #expect(try Data(contentsOf: gtImage) == goodGT)
        }
    }

    /// A well-formed image (correct checksum) whose tables point outside themselves is rejected by the
    /// model's own checks instead of being read out of bounds.
    @Test func inconsistentTablesWithAValidChecksumAreRejected() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("crafted.bin")
        // A tagger image whose first sections are plausible but whose tag-name offsets overrun the names.
        var w = BinaryTableWriter()
        w.append([UInt8](repeating: 0x41, count: 4))
        w.append([Int32(0), 2, 9])
        try Data(w.encoded(kind: PerceptronTagger.imageKind, version: PerceptronTagger.imageVersion)).write(to: url)
        #expect(throws: BinaryTableError.self) { _ = try PerceptronTagger(image: url) }
        // A WordNet image whose first string table has a slot naming a key that does not exist.
        var t = BinaryTableWriter()
        t.append([UInt8](Array("dog".utf8)))
        t.append([Int32(0), 3])
        t.append([UInt64(1)])
        t.append([Int32(0), 7, 0, 0])
        try Data(t.encoded(kind: WordNetLemmatizer.imageKind, version: WordNetLemmatizer.imageVersion)).write(to: url)
        #expect(throws: BinaryTableError.self) { _ = try WordNetLemmatizer(image: url) }
        // Another format version is not read at all.
        try Data(t.encoded(kind: WordNetLemmatizer.imageKind, version: WordNetLemmatizer.imageVersion + 1)).write(to: url)
        #expect(throws: BinaryTableError.self) { _ = try WordNetLemmatizer(image: url) }
    }

    /// The image's name follows the sources' contents: a changed model file gets a new image, built from
    /// the changed file, and the old image is not used for it.
    @Test(.enabled(if: isAvailable, ChairPipelineParityTests.missingMessage))
    func changedSourcesGetANewImage() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = folder.appendingPathComponent("tagger")
        try FileManager.default.copyItem(at: Self.tagger, to: model)
        for name in try FileManager.default.contentsOfDirectory(atPath: model.path) {
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: model.appendingPathComponent(name).path)
        }
        let cache = ChairResourceCache(directory: folder.appendingPathComponent("cache"))
        _ = try cache.tagger(directory: model)
        #expect(try cache.tagger(directory: model).source == .image)
        // Drop the tag dictionary's entries: a different model (words then get scored, not looked up). The
        // write changes the file's state, so its content key is computed again.
        let tagdict = try PerceptronTagger.modelFiles(in: model)[1]
        try Data("{}".utf8).write(to: tagdict)
        let changed = try cache.tagger(directory: model)
        #expect(changed.source == .parsed)
        let parsed = try PerceptronTagger(directory: model)
        let words = ["the", "cat", "sat", "on", "a", "mat", "near", "two", "dogs", "."]
        #expect(changed.tagger.tag(words) == parsed.tag(words))
        #expect(try Self.images(in: folder.appendingPathComponent("cache")).count == 2)
        #expect(try cache.tagger(directory: model).source == .image)
        // A missing state memo only costs hashing: the image is found by content.
        for memo in try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("cache").path)
        where memo.hasSuffix(".key") {
            try FileManager.default.removeItem(at: folder.appendingPathComponent("cache").appendingPathComponent(memo))
        }
        #expect(try cache.tagger(directory: model).source == .image)
    }
}
