import Foundation
import MirageData
import MirageText

/// Parsed copies of CHAIR's slow-to-parse resources (the perceptron tagger's JSON weights, WordNet's index
/// and exception files, and prebuilt ground-truth JSON) as binary images in a cache folder, so that a
/// process loads each with one file read instead of parsing ~17 MB of JSON and text (docs/chair.md,
/// "Start-up").
///
/// An image is named by the SHA-256 of its kind, format version, `ChairTextPipeline.version` and every
/// source file's SHA-256, so an edited or replaced source never meets a stale image: it gets a new name and
/// is built on first use.
/// Hashing the sources on every start would cost more than parsing some of them, so the content key is
/// memoised per source state: a small key file named by the SHA-256 of the sources' paths and `stat`
/// identity (device, inode, size, modification and status-change times in nanoseconds) holds it. Any write
/// to a source changes its status-change time, which the kernel sets and no user can set back, so a changed
/// source is hashed again. An image that is missing, truncated, damaged or of another format version is
/// never trusted (`BinaryTableReader` checks sizes, offsets and a checksum; the models check every index
/// they follow): the source is then parsed, the image rewritten, and nothing is reported to the user.
/// Writing is best effort (temporary file renamed into place); a read-only or missing cache folder only
/// costs the parsing time. Outputs are bit-identical either way: an image holds the very tables parsing
/// produces.
public struct ChairResourceCache: Sendable {
    /// The folder holding the images (e.g. the data store's `cache/chair`).
    public let directory: URL

    public init(directory: URL) {
        self.directory = directory
    }

    /// How a resource was obtained (for `--timings`, tests and benches).
    public enum Source: String, Sendable { case image, parsed }

    /// The tagger of `directory` (NLTK's `averaged_perceptron_tagger_eng` folder).
    public func tagger(directory model: URL) throws -> (tagger: PerceptronTagger, source: Source) {
        // Missing or ambiguous files are reported by the parser, with its message.
        guard let files = try? PerceptronTagger.modelFiles(in: model) else {
            return (try PerceptronTagger(directory: model), .parsed)
        }
        return try cached("tagger", kind: PerceptronTagger.imageKind, version: PerceptronTagger.imageVersion,
                          sources: files, load: PerceptronTagger.init(image:),
                          parse: { try PerceptronTagger(directory: model) }, encode: { $0.encodedImage() })
    }

    /// The lemmatizer of the WordNet 3.0 folder `directory`.
    public func lemmatizer(directory database: URL) throws -> (lemmatizer: WordNetLemmatizer, source: Source) {
        let files = WordNetLemmatizer.sourceFileNames.map { database.appendingPathComponent($0) }
        guard files.allSatisfy({ FileManager.default.isReadableFile(atPath: $0.path) }) else {
            return (try WordNetLemmatizer(directory: database), .parsed)
        }
        return try cached("wordnet", kind: WordNetLemmatizer.imageKind, version: WordNetLemmatizer.imageVersion,
                          sources: files, load: WordNetLemmatizer.init(image:),
                          parse: { try WordNetLemmatizer(directory: database) }, encode: { $0.encodedImage() })
    }

    /// Prebuilt ground truth (`{"<image id>": [node words]}`, e.g. `coco2014_gt_objects.json`).
    public func groundTruth(prebuiltJSON url: URL) throws -> (groundTruth: ChairGroundTruth, source: Source) {
        guard FileManager.default.isReadableFile(atPath: url.path) else {
            return (try ChairGroundTruth(prebuiltJSON: url), .parsed)
        }
        return try cached("ground-truth", kind: ChairGroundTruth.imageKind, version: ChairGroundTruth.imageVersion,
                          sources: [url], load: ChairGroundTruth.init(image:),
                          parse: { try ChairGroundTruth(prebuiltJSON: url) }, encode: { $0.encodedImage() })
    }

    /// The image file for `sources`: `<name>-<content key>.bin`.
    public func imageURL(_ name: String, kind: UInt32, version: UInt32, sources: [URL]) throws -> URL {
        directory.appendingPathComponent("\(name)-\(try contentKey(name, kind: kind, version: version, sources: sources)).bin")
    }

    /// SHA-256 of the kind, version and every source's name and SHA-256; memoised by the sources' state.
    func contentKey(_ name: String, kind: UInt32, version: UInt32, sources: [URL]) throws -> String {
        // The pipeline's version too: a change of any stage's behaviour (which bumps it) retires old images
        // even if an image format version was not bumped.
        let header = "mirage-chair-resource-cache \(name) kind \(kind) version \(version) pipeline \(ChairTextPipeline.version)\n"
        var state = MirageData.SHA256()
        state.update(header)
        for file in sources {
            guard let identity = Self.statIdentity(file) else { throw ChairError.unreadableFile(file.path, "cannot stat") }
            state.update("\(file.path)\n\(identity)\n")
        }
        let memo = directory.appendingPathComponent("\(name)-state-\(state.hexDigest()).key")
        if let data = try? Data(contentsOf: memo), data.count == 64,
           data.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) {
            return String(decoding: data, as: UTF8.self)
        }
        var key = MirageData.SHA256()
        key.update(header)
        for file in sources {
            key.update("\(file.lastPathComponent) \(try MirageData.SHA256.hex(ofFile: file))\n")
        }
        let hex = key.hexDigest()
        write(Array(hex.utf8), to: memo)
        return hex
    }

    /// Device, inode, size, and modification and status-change times (ns) of `file`, or nil.
    static func statIdentity(_ file: URL) -> String? {
        var st = stat()
        guard stat(file.path, &st) == 0 else { return nil }
        return "\(st.st_dev) \(st.st_ino) \(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) "
            + "\(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec)"
    }

    private func cached<Model>(_ name: String, kind: UInt32, version: UInt32, sources: [URL],
                               load: (URL) throws -> Model, parse: () throws -> Model,
                               encode: (Model) -> [UInt8]) throws -> (Model, Source) {
        guard let url = try? imageURL(name, kind: kind, version: version, sources: sources) else {
            return (try parse(), .parsed)
        }
        if let model = try? load(url) { return (model, .image) }
        let model = try parse()
        write(encode(model), to: url)
        return (model, .parsed)
    }

    /// Writes `bytes` to a temporary file next to `url` and renames it into place; failures are ignored.
    private func write(_ bytes: [UInt8], to url: URL) {
        let fm = FileManager.default
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp")
        do {
            try fm.createDirectory(at: directory, withIntermediateDirectories: true)
            try Data(bytes).write(to: temporary)
            if rename(temporary.path, url.path) != 0 { try? fm.removeItem(at: temporary) }
        } catch {
            try? fm.removeItem(at: temporary)
        }
    }
}
