import Foundation
import MirageData
import MirageText

/// Builds CHAIR's ground truth from the COCO annotation files the way the reference's
/// `CHAIR.get_annotations` does: for every image, the node word of each instance annotation's category
/// (`inverse_synonym_dict[category name]`), plus the node words CHAIR's pipeline finds in each human
/// caption, deduplicated. Images listed in the files without any annotation or caption get an empty set
/// (the reference's `defaultdict` gives them the same).
///
/// The result is cached as prebuilt JSON keyed by the SHA-256 of every input file, the vocabulary and the
/// text pipeline's version, so the second run loads it instead of analysing ~616k captions again.
public struct ChairGroundTruthBuilder: Sendable {
    public var vocabulary: ChairVocabulary
    public var analyzer: any CaptionAnalyzing
    public var threads: Int

    /// The files the reference reads from its `--coco_path` (train + val 2014).
    public static let instanceFiles = ["instances_train2014.json", "instances_val2014.json"]
    public static let captionFiles = ["captions_train2014.json", "captions_val2014.json"]

    public init(vocabulary: ChairVocabulary, analyzer: any CaptionAnalyzing, threads: Int = 2) {
        self.vocabulary = vocabulary
        self.analyzer = analyzer
        self.threads = max(1, threads)
    }

    public struct Result: Sendable {
        public var groundTruth: ChairGroundTruth
        /// True when the ground truth came from the cache.
        public var cacheHit: Bool
        /// The cache file read or written (nil without a cache folder).
        public var cacheFile: URL?
    }

    /// Builds (or loads from `cacheDirectory`) the ground truth for the four COCO 2014 files in
    /// `annotationsDirectory`. `pipelineVersion` names the text pipeline's exact behaviour; change it and
    /// the cache is rebuilt.
    public func build(annotationsDirectory: URL, cacheDirectory: URL?, pipelineVersion: String) throws -> Result {
        try build(instanceFiles: Self.instanceFiles.map { annotationsDirectory.appendingPathComponent($0) },
                  captionFiles: Self.captionFiles.map { annotationsDirectory.appendingPathComponent($0) },
                  cacheDirectory: cacheDirectory, pipelineVersion: pipelineVersion)
    }

    /// Same, from explicit file lists (any number of instance and caption files).
    public func build(instanceFiles: [URL], captionFiles: [URL], cacheDirectory: URL?,
                      pipelineVersion: String) throws -> Result {
        let files = instanceFiles + captionFiles
        for file in files where !FileManager.default.fileExists(atPath: file.path) {
            throw ChairError.invalidAnnotations(file.path, "the file does not exist")
        }
        var cacheFile: URL? = nil
        if let cacheDirectory {
            let key = try cacheKey(files: files, pipelineVersion: pipelineVersion,
                                   memo: cacheDirectory.appendingPathComponent("file-digests.json"))
            let url = cacheDirectory.appendingPathComponent("chair-gt-\(key.prefix(32)).json")
            cacheFile = url
            // The cached JSON is read through its binary image (`ChairResourceCache`, same folder): parsing
            // 5 MB of JSON took longer than the rest of `mirage chair`'s start-up.
            if FileManager.default.fileExists(atPath: url.path),
               let cached = try? ChairResourceCache(directory: cacheDirectory).groundTruth(prebuiltJSON: url).groundTruth {
                return Result(groundTruth: cached, cacheHit: true, cacheFile: url)
            }
        }
        // Read the annotation files, two at a time.
        let instances = try ParallelMap.run(count: instanceFiles.count, threads: threads, minimumPerThread: 1) { i in
            Swift.Result { try COCOReader.instances(at: instanceFiles[i]) }
        }.enumerated().map { i, r in try Self.annotationResult(r, file: instanceFiles[i]) }
        let captions = try ParallelMap.run(count: captionFiles.count, threads: threads, minimumPerThread: 1) { i in
            Swift.Result { try COCOReader.captions(at: captionFiles[i]) }
        }.enumerated().map { i, r in try Self.annotationResult(r, file: captionFiles[i]) }
        let truth = try build(instances: Array(zip(instanceFiles.map(\.path), instances)),
                              captions: captions)
        if let cacheFile {
            try? FileManager.default.createDirectory(at: cacheFile.deletingLastPathComponent(),
                                                     withIntermediateDirectories: true)
            let staging = cacheFile.appendingPathExtension("partial")
            if (try? truth.prebuiltJSONData().write(to: staging)) != nil {
                _ = try? FileManager.default.removeItem(at: cacheFile)
                try? FileManager.default.moveItem(at: staging, to: cacheFile)
            }
        }
        return Result(groundTruth: truth, cacheHit: false, cacheFile: cacheFile)
    }

    /// The core: instance files (named, for errors) and caption files already read.
    public func build(instances: [(file: String, content: COCOInstances)], captions: [COCOCaptions]) throws
        -> ChairGroundTruth {
        var objects: [Int: Set<String>] = [:]
        for (file, content) in instances {
            for image in content.images where objects[image.id] == nil { objects[image.id] = [] }
            let names = Dictionary(content.categories.map { ($0.id, $0.name) }, uniquingKeysWith: { first, _ in first })
            for a in content.annotations {
                guard let name = names[a.categoryID] else {
                    throw ChairError.invalidAnnotations(file, "an annotation refers to category id \(a.categoryID), "
                                                        + "which the file's \"categories\" does not define")
                }
                // Like the reference, only categories that annotations use must be vocabulary entries.
                guard let node = vocabulary.nodeWord(for: name) else {
                    throw ChairError.unknownCategory(name, file: file)
                }
                objects[a.imageID, default: []].insert(node)
            }
        }
        for content in captions {
            for image in content.images where objects[image.id] == nil { objects[image.id] = [] }
        }
        // Analyse every human caption; each thread collects (image, node words) for its contiguous share.
        let all = captions.flatMap(\.captions)
        let vocabulary = self.vocabulary, analyzer = self.analyzer
        let parts = ParallelMap.chunks(count: all.count, threads: threads) { range -> [(Int, [String])] in
            var found: [(Int, [String])] = []
            for i in range {
                let words = vocabulary.words(fromLemmas: analyzer.analyze(all[i].caption).lemmas)
                if !words.mentions.isEmpty { found.append((all[i].imageID, words.mentions.map(\.nodeWord))) }
            }
            return found
        }
        for part in parts {
            for (image, nodes) in part { objects[image, default: []].formUnion(nodes) }
        }
        return ChairGroundTruth(objectsByImage: objects)
    }

    /// A file's SHA-256 remembered with its size and modification time, so an unchanged ~500 MB input set
    /// is not hashed again on every run (the same trade-off as git's index).
    struct FileDigest: Codable, Equatable {
        var size: Int64
        var modified: Double
        var sha256: String
    }

    static func stat(_ url: URL) -> (size: Int64, modified: Double)? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: url.path),
              let size = (attributes[.size] as? NSNumber)?.int64Value,
              let modified = attributes[.modificationDate] as? Date else { return nil }
        return (size, modified.timeIntervalSince1970)
    }

    /// SHA-256 over the inputs' checksums, the vocabulary and the pipeline version. Input checksums are
    /// memoised in `memo` by path, size and modification time.
    func cacheKey(files: [URL], pipelineVersion: String, memo: URL? = nil) throws -> String {
        var remembered: [String: FileDigest] = [:]
        if let memo, let data = try? Data(contentsOf: memo),
           let decoded = try? JSONDecoder().decode([String: FileDigest].self, from: data) {
            remembered = decoded
        }
        let stats = files.map(Self.stat)
        let known = remembered
        let digests = try ParallelMap.run(count: files.count, threads: threads, minimumPerThread: 1) { i in
            if let st = stats[i], let entry = known[files[i].path], entry.size == st.size,
               entry.modified == st.modified {
                return Swift.Result<String, Error>.success(entry.sha256)
            }
            return Swift.Result { try SHA256.hex(ofFile: files[i]) }
        }.enumerated().map { i, r in try Self.annotationResult(r, file: files[i]) }
        if let memo {
            for (i, file) in files.enumerated() {
                if let st = stats[i] {
                    remembered[file.path] = FileDigest(size: st.size, modified: st.modified, sha256: digests[i])
                }
            }
            if remembered != known, let data = try? JSONEncoder().encode(remembered) {
                try? FileManager.default.createDirectory(at: memo.deletingLastPathComponent(),
                                                         withIntermediateDirectories: true)
                try? data.write(to: memo, options: .atomic)
            }
        }
        var hash = SHA256()
        hash.update("chair-ground-truth/1\n\(pipelineVersion)\n")
        for (file, digest) in zip(files, digests) { hash.update("\(file.lastPathComponent) \(digest)\n") }
        for entry in vocabulary.entries { hash.update(entry + "\n") }
        for (pair, target) in vocabulary.doubleWords.sorted(by: { $0.key < $1.key }) {
            hash.update("\(pair)=\(target)\n")
        }
        return hash.hexDigest()
    }

    static func annotationResult<T>(_ result: Swift.Result<T, Error>, file: URL) throws -> T {
        switch result {
        case .success(let value): return value
        case .failure(let error as ChairError): throw error
        case .failure(let error): throw ChairError.invalidAnnotations(file.path, "\(error)")
        }
    }
}
