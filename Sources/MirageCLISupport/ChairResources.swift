import Foundation
import MirageData
import MirageMetrics
import MirageText

/// Finds and loads what CHAIR needs, from the folders the user names or else the data store.
public struct ChairResources {
    public var synonyms: String?
    public var nltkData: String?
    public var wordnet: String?
    public var groundTruth: String?
    public var cocoAnnotations: String?
    /// COCO annotation files named one by one (`mirage run --instances/--captions`): CHAIR's ground truth is
    /// built from them (and cached) when no prebuilt ground truth is named.
    public var annotationFiles: (instances: [URL], captions: [URL])? = nil
    public var cacheDir: String?
    public var threads: Int
    public var store = DataStore()

    public init(synonyms: String? = nil, nltkData: String? = nil, wordnet: String? = nil, groundTruth: String? = nil,
                cocoAnnotations: String? = nil, annotationFiles: (instances: [URL], captions: [URL])? = nil,
                cacheDir: String? = nil, threads: Int, store: DataStore = DataStore()) {
        self.synonyms = synonyms
        self.nltkData = nltkData
        self.wordnet = wordnet
        self.groundTruth = groundTruth
        self.cocoAnnotations = cocoAnnotations
        self.annotationFiles = annotationFiles
        self.cacheDir = cacheDir
        self.threads = threads
        self.store = store
    }

    public func vocabulary() throws -> ChairVocabulary {
        if let synonyms { return try ChairVocabulary(contentsOf: URL(fileURLWithPath: synonyms)) }
        return try ChairVocabulary(contentsOf: storeFile("chair-synonyms", "synonyms.txt", flag: "--synonyms FILE"))
    }

    /// An NLTK-style data folder: the component may sit directly in it or under tokenizers/ or taggers/.
    public func nltkComponent(_ relative: [String], id: String, flag: String) throws -> URL {
        if let nltkData {
            let root = URL(fileURLWithPath: nltkData)
            for path in relative where FileManager.default.fileExists(atPath: root.appendingPathComponent(path).path) {
                return root.appendingPathComponent(path)
            }
            throw ChairCommandError.missingData(
                what: "\(id) data in \(nltkData) (looked for \(relative.joined(separator: ", ")))",
                fix: "Point --nltk-data at a folder holding punkt_tab/english/ and averaged_perceptron_tagger_eng/, "
                    + "or drop the option to use the data store (`mirage data fetch \(id)`).")
        }
        return try storeFolder(id, flag: flag)
    }

    public func pipeline() throws -> ChairTextPipeline {
        var clock = StageClock(enabled: false)
        return try pipeline(clock: &clock)
    }

    /// The text pipeline, each part's load timed by `clock`. The tagger and WordNet come from their parsed
    /// images in the cache when these exist for the same files (`ChairResourceCache`).
    public func pipeline(clock: inout StageClock) throws -> ChairTextPipeline {
        let punkt = try nltkComponent(["punkt_tab/english", "tokenizers/punkt_tab/english"], id: "punkt",
                                      flag: "--nltk-data DIR")
        let taggerFolder = try nltkComponent(["averaged_perceptron_tagger_eng", "taggers/averaged_perceptron_tagger_eng"],
                                             id: "pos-tagger", flag: "--nltk-data DIR")
        let wordnetFolder = try wordnetDirectory()
        let cache = resourceCache
        let tokenizer = WordTokenizer(punkt: try clock.time("Punkt parameters") { try PunktParameters(directory: punkt) })
        let tagger = try clock.time("POS tagger") { try cache.tagger(directory: taggerFolder) }
        let lemmatizer = try clock.time("WordNet") { try cache.lemmatizer(directory: wordnetFolder) }
        if clock.enabled {
            FileHandle.standardError.write(Data(("tagger from its \(tagger.source == .image ? "cached image" : "JSON files"), "
                + "WordNet from \(lemmatizer.source == .image ? "its cached image" : "its database files") "
                + "(cache: \(cache.directory.path))\n").utf8))
        }
        return ChairTextPipeline(tokenizer: { tokenizer.tokenize($0) }, tagger: tagger.tagger, lemmatizer: lemmatizer.lemmatizer)
    }

    /// Parsed tagger, WordNet and ground-truth images in the data store's cache folder (docs/chair.md,
    /// "Start-up").
    public var resourceCache: ChairResourceCache {
        ChairResourceCache(directory: store.root.appendingPathComponent("cache/chair"))
    }

    /// Prebuilt ground truth JSON, through its cached image.
    public func prebuiltGroundTruth(_ url: URL) throws -> ChairGroundTruth {
        try resourceCache.groundTruth(prebuiltJSON: url).groundTruth
    }

    /// The WordNet folder: --wordnet, else the data store's (which counts Debian's /usr/share/wordnet).
    public func wordnetDirectory() throws -> URL {
        try wordnet.map { URL(fileURLWithPath: $0) } ?? storeFolder("wordnet", flag: "--wordnet DIR")
    }

    public func groundTruth(vocabulary: ChairVocabulary, pipeline: @autoclosure () throws -> ChairTextPipeline) throws
        -> ChairGroundTruth {
        if let groundTruth { return try prebuiltGroundTruth(URL(fileURLWithPath: groundTruth)) }
        if let cocoAnnotations { return try build(from: URL(fileURLWithPath: cocoAnnotations), vocabulary, pipeline()) }
        if let files = annotationFiles, !files.instances.isEmpty {
            return try build(instances: files.instances, captions: files.captions, vocabulary, pipeline())
        }
        if let prebuilt = try? store.locate("chair-ground-truth", file: "coco2014_gt_objects.json") {
            return try prebuiltGroundTruth(prebuilt)
        }
        if let annotations = try? store.locate("coco-annotations-2014") {
            return try build(from: annotations, vocabulary, pipeline())
        }
        throw ChairCommandError.missingData(
            what: "CHAIR ground truth",
            fix: "Run `mirage data fetch coco-annotations-2014` (the COCO 2014 annotations; built and cached on "
                + "first use), or `mirage data import chair-ground-truth --from DIR` with a folder holding "
                + "coco2014_gt_objects.json, or pass --ground-truth FILE, or COCO annotations (`mirage chair "
                + "--coco-annotations DIR`; `mirage run --instances FILE --captions FILE`).")
    }

    public func build(from folder: URL, _ vocabulary: ChairVocabulary, _ pipeline: ChairTextPipeline) throws
        -> ChairGroundTruth {
        try build(instances: ChairGroundTruthBuilder.instanceFiles.map { folder.appendingPathComponent($0) },
                  captions: ChairGroundTruthBuilder.captionFiles.map { folder.appendingPathComponent($0) },
                  vocabulary, pipeline, source: folder.path)
    }

    /// CHAIR's ground truth from COCO instances and captions files (objects of the instances, plus the
    /// objects CHAIR's vocabulary finds in the captions), cached by the files' content.
    public func build(instances: [URL], captions: [URL], _ vocabulary: ChairVocabulary, _ pipeline: ChairTextPipeline,
               source: String? = nil) throws -> ChairGroundTruth {
        let cache = cacheDir.map { URL(fileURLWithPath: $0) }
            ?? store.root.appendingPathComponent("cache/chair-ground-truth")
        let builder = ChairGroundTruthBuilder(vocabulary: vocabulary, analyzer: pipeline, threads: threads)
        let result = try builder.build(instanceFiles: instances, captionFiles: captions, cacheDirectory: cache,
                                       pipelineVersion: ChairTextPipeline.version)
        if !result.cacheHit {
            let from = source ?? (instances + captions).map(\.lastPathComponent).joined(separator: ", ")
            FileHandle.standardError.write(Data("built CHAIR ground truth for \(result.groundTruth.imageCount) images from \(from); cached in \(cache.path)\n".utf8))
        }
        return result.groundTruth
    }

    public func scorer(options: ChairOptions) throws -> ChairScorer {
        var clock = StageClock(enabled: false)
        return try scorer(options: options, clock: &clock)
    }

    /// The scorer, the load of the vocabulary, each pipeline part and the ground truth timed by `clock`.
    public func scorer(options: ChairOptions, clock: inout StageClock) throws -> ChairScorer {
        let vocabulary = try clock.time("vocabulary") { try self.vocabulary() }
        let pipeline = try self.pipeline(clock: &clock)
        let truth = try clock.time("ground truth") { try groundTruth(vocabulary: vocabulary, pipeline: pipeline) }
        return ChairScorer(vocabulary: vocabulary, groundTruth: truth, analyzer: pipeline, options: options,
                           threads: threads)
    }

    private func storeFolder(_ id: String, flag: String) throws -> URL {
        do {
            return try store.locate(id)
        } catch {
            throw ChairCommandError.notInStore("\(error)", flag: flag)
        }
    }

    private func storeFile(_ id: String, _ name: String, flag: String) throws -> URL {
        do {
            return try store.locate(id, file: name)
        } catch {
            throw ChairCommandError.notInStore("\(error)", flag: flag)
        }
    }
}

/// Wall time per stage, printed to standard error by `mirage chair --timings`.
public struct StageClock {
    public let enabled: Bool
    private var stages: [(String, Double)] = []

    public init(enabled: Bool) { self.enabled = enabled }

    public mutating func time<T>(_ stage: String, _ body: () throws -> T) rethrows -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { stages.append((stage, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)) }
        return try body()
    }

    public func report() {
        guard enabled else { return }
        for (stage, seconds) in stages {
            FileHandle.standardError.write(Data((String(format: "%8.3f s  ", seconds) + stage + "\n").utf8))
        }
    }
}

/// Every *.jsonl/*.json caption log directly in `folder`, sorted by name and read once: the input of
/// `mirage-bench chair` and `tokenize` and of the CHAIR benchmark in Benchmarks/.
public func readCaptionLogs(in folder: URL) throws -> [(name: String, file: ChairCaptionFile)] {
    let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        .filter { $0.hasSuffix(".jsonl") || $0.hasSuffix(".json") }.sorted()
    guard !names.isEmpty else {
        throw ChairCommandError.missingData(what: "caption logs (*.jsonl or *.json) in \(folder.path)",
                                            fix: "Name a folder of caption logs (JSON Lines with image_id and caption).")
    }
    return try names.map { ($0, try ChairCaptionFile.read(folder.appendingPathComponent($0))) }
}
