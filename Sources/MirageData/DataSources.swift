import Foundation

/// How a downloaded artifact becomes the source's files.
public enum Unpacking: Sendable, Hashable {
    /// The download is the single file of the source, stored under this name.
    case plain(String)
    /// A zip archive: each member path in the archive → the file name stored in the source's folder.
    case zip([String: String])
}

/// Where a source can be downloaded from, with the pinned checksum of the download.
public struct Origin: Sendable, Hashable {
    /// The original public URL (pinned to a commit when the source is a git repository).
    public var url: URL
    public var checksum: Checksum
    /// Size in bytes of the download, when the publisher records it.
    public var size: Int64?
    public var unpacking: Unpacking
    /// Where the checksum comes from (for `mirage data list --verbose` and audits).
    public var checksumSource: String

    public init(url: URL, checksum: Checksum, size: Int64?, unpacking: Unpacking, checksumSource: String) {
        self.url = url; self.checksum = checksum; self.size = size
        self.unpacking = unpacking; self.checksumSource = checksumSource
    }
}

/// A check that imported files are usable, for files that are not byte-identical to a pinned upstream.
public enum Validation: Sendable, Hashable {
    /// Non-empty UTF-8 text.
    case text
    /// Every non-empty line has `columns` tab-separated fields.
    case tabSeparated(columns: Int)
    /// A well-formed JSON document.
    case json
    /// A JSON object whose values are arrays of strings (`{"image_id": [words]}`).
    case stringListObject
    /// A COCO `instances_*.json` file.
    case cocoInstances
    /// A COCO `captions_*.json` file.
    case cocoCaptions
    /// CHAIR's synonyms.txt: comma-separated lines, 80 of them with a head word.
    case synonymList
}

extension Validation: CustomStringConvertible {
    public var description: String {
        switch self {
        case .text: return "UTF-8 text"
        case .tabSeparated(let n): return "\(n)-column tab-separated text"
        case .json: return "JSON"
        case .stringListObject: return "JSON object of string lists"
        case .cocoInstances: return "COCO instances file"
        case .cocoCaptions: return "COCO captions file"
        case .synonymList: return "CHAIR synonym list"
        }
    }
}

/// One file a source provides.
public struct SourceFile: Sendable, Hashable {
    /// Name inside the source's folder in the data store.
    public var name: String
    /// SHA-256 of the file when it is byte-identical to upstream (import verifies it); nil otherwise.
    public var sha256: String?
    public var validation: Validation
    /// Paths, relative to a folder the user imports from, where this file may be found, in preference
    /// order (covers the upstream layout and the `../shared/data` layout).
    public var importPaths: [String]
    /// Optional files do not make a source missing when absent.
    public var optional: Bool

    public init(_ name: String, sha256: String? = nil, validation: Validation, importPaths: [String], optional: Bool = false) {
        self.name = name; self.sha256 = sha256; self.validation = validation
        self.importPaths = importPaths; self.optional = optional
    }
}

/// A data set or model file Mirage needs, with where it comes from and how to check it.
public struct DataSource: Sendable, Hashable, Identifiable {
    public var id: String
    public var description: String
    public var files: [SourceFile]
    /// Nil for import-only sources.
    public var origin: Origin?
    /// Why the source cannot be fetched (import-only sources).
    public var importOnlyReason: String?
    /// System folders (e.g. Debian's `/usr/share/wordnet`) whose presence counts as installed.
    public var systemFolders: [String]
    /// License and provenance, for `mirage data list --verbose`.
    public var provenance: String
    /// For sources without a single archive: each file's own original URL (file name → URL). Every such
    /// file must have a pinned `sha256`; `fetch` downloads and verifies them one by one.
    public var fileOrigins: [String: URL]

    public init(id: String, description: String, files: [SourceFile], origin: Origin?, importOnlyReason: String? = nil,
                systemFolders: [String] = [], provenance: String, fileOrigins: [String: URL] = [:]) {
        self.id = id; self.description = description; self.files = files; self.origin = origin
        self.importOnlyReason = importOnlyReason; self.systemFolders = systemFolders; self.provenance = provenance
        self.fileOrigins = fileOrigins
    }

    public var isFetchable: Bool { origin != nil || !fileOrigins.isEmpty }
    public var requiredFiles: [SourceFile] { files.filter { !$0.optional } }
}

/// The catalog of sources Mirage knows. Other modules add their entries to `DataCatalog.standard`'s list.
public struct DataCatalog: Sendable {
    public var sources: [DataSource]

    public init(_ sources: [DataSource]) { self.sources = sources }

    public subscript(id: String) -> DataSource? { sources.first { $0.id == id } }

    public var ids: [String] { sources.map(\.id) }

    public static let standard = DataCatalog([
        .chairSynonyms, .punkt, .posTagger, .wordnet, .chairGroundTruth, .cocoAnnotations2014,
        .popeCOCO, .popeCOCOOpera, .popeCOCOVCD,
        .operaLogs,
    ])
}

extension DataSource {
    /// CHAIR's vocabulary (Rohrbach et al. 2018): 80 COCO categories with their synonyms.
    public static let chairSynonyms = DataSource(
        id: "chair-synonyms",
        description: "CHAIR vocabulary: the 80 COCO categories, one line each, \"node, synonym, ...\"",
        files: [SourceFile("synonyms.txt",
                           sha256: "b685537b36fe21b791c87151b96a991ceb582edff19f3da204dcc7a7905502f2",
                           validation: .synonymList,
                           importPaths: ["chair/synonyms.txt", "data/synonyms.txt", "synonyms.txt"])],
        origin: Origin(
            url: URL(string: "https://raw.githubusercontent.com/LisaAnne/Hallucination/6e4d33c4bedf6dfcd24c61bf527f40714717be47/data/synonyms.txt")!,
            checksum: .sha256("b685537b36fe21b791c87151b96a991ceb582edff19f3da204dcc7a7905502f2"),
            size: nil, unpacking: .plain("synonyms.txt"),
            checksumSource: "SHA-256 of data/synonyms.txt at LisaAnne/Hallucination@6e4d33c (identical to ../shared/data/chair/synonyms.txt)"),
        provenance: "LisaAnne/Hallucination @ 6e4d33c, data/synonyms.txt; BSD-2-Clause")

    static let punktFiles = ["abbrev_types.txt", "collocations.tab", "sent_starters.txt", "ortho_context.tab"]

    /// NLTK's English Punkt parameters in the plain-text punkt_tab layout.
    public static let punkt = DataSource(
        id: "punkt",
        description: "NLTK Punkt sentence-tokenizer parameters for English (punkt_tab layout)",
        files: [
            SourceFile("abbrev_types.txt", validation: .text,
                       importPaths: ["nltk/punkt_tab/english/abbrev_types.txt", "tokenizers/punkt_tab/english/abbrev_types.txt",
                                     "punkt_tab/english/abbrev_types.txt", "english/abbrev_types.txt", "abbrev_types.txt"]),
            SourceFile("collocations.tab", validation: .tabSeparated(columns: 2),
                       importPaths: ["nltk/punkt_tab/english/collocations.tab", "tokenizers/punkt_tab/english/collocations.tab",
                                     "punkt_tab/english/collocations.tab", "english/collocations.tab", "collocations.tab"]),
            SourceFile("sent_starters.txt", validation: .text,
                       importPaths: ["nltk/punkt_tab/english/sent_starters.txt", "tokenizers/punkt_tab/english/sent_starters.txt",
                                     "punkt_tab/english/sent_starters.txt", "english/sent_starters.txt", "sent_starters.txt"]),
            SourceFile("ortho_context.tab", validation: .tabSeparated(columns: 2),
                       importPaths: ["nltk/punkt_tab/english/ortho_context.tab", "tokenizers/punkt_tab/english/ortho_context.tab",
                                     "punkt_tab/english/ortho_context.tab", "english/ortho_context.tab", "ortho_context.tab"]),
        ],
        origin: Origin(
            url: URL(string: "https://raw.githubusercontent.com/nltk/nltk_data/550b6625bcef1f2abff2ff770a5a0d272c9c6b2a/packages/tokenizers/punkt_tab.zip")!,
            checksum: .sha256("e57f64187974277726a3417ca6f181ec5403676c717672eef6a748a7b20e0106"),
            size: 4_319_076,
            unpacking: .zip(Dictionary(uniqueKeysWithValues: punktFiles.map { ("punkt_tab/english/\($0)", $0) })),
            checksumSource: "nltk_data index.xml @ 550b662, package punkt_tab: sha256_checksum (md5 27ea9ee08fe27fe4484e4c5585cce748), size 4319076"),
        provenance: "nltk/nltk_data, packages/tokenizers/punkt_tab.zip; Apache-2.0")

    static let taggerFiles = ["averaged_perceptron_tagger_eng.weights.json", "averaged_perceptron_tagger_eng.tagdict.json",
                              "averaged_perceptron_tagger_eng.classes.json"]

    /// NLTK's English averaged-perceptron POS tagger in the JSON layout of NLTK ≥ 3.9.
    public static let posTagger = DataSource(
        id: "pos-tagger",
        description: "NLTK averaged-perceptron English POS tagger (weights, tagdict, classes as JSON)",
        files: taggerFiles.map { name in
            SourceFile(name, validation: .json,
                       importPaths: ["nltk/averaged_perceptron_tagger_eng/\(name)", "taggers/averaged_perceptron_tagger_eng/\(name)",
                                     "averaged_perceptron_tagger_eng/\(name)", name])
        },
        origin: Origin(
            url: URL(string: "https://raw.githubusercontent.com/nltk/nltk_data/550b6625bcef1f2abff2ff770a5a0d272c9c6b2a/packages/taggers/averaged_perceptron_tagger_eng.zip")!,
            checksum: .sha256("6025f530624335c67d6547d44757b357b4e79bae030a0383e9887a92c1718f0b"),
            size: 1_539_115,
            unpacking: .zip(Dictionary(uniqueKeysWithValues: taggerFiles.map { ("averaged_perceptron_tagger_eng/\($0)", $0) })),
            checksumSource: "nltk_data index.xml @ 550b662, package averaged_perceptron_tagger_eng: sha256_checksum (md5 729e2255f83045670374180de9bdb613), size 1539115"),
        provenance: "nltk/nltk_data, packages/taggers/averaged_perceptron_tagger_eng.zip; MIT (textblob-aptagger)")

    static let wordnetRequired = ["index.noun", "index.verb", "index.adj", "index.adv",
                                  "noun.exc", "verb.exc", "adj.exc", "adv.exc",
                                  "data.noun", "data.verb", "data.adj", "data.adv"]

    /// WordNet 3.0 database files (what NLTK's WordNet reader and morphy need).
    public static let wordnet = DataSource(
        id: "wordnet",
        description: "WordNet 3.0 database (index.*, data.*, *.exc; lexnames optional)",
        files: wordnetRequired.map { name in
            SourceFile(name, validation: .text, importPaths: ["wordnet/\(name)", "dict/\(name)", "corpora/wordnet/\(name)", name])
        } + [SourceFile("lexnames", validation: .text,
                        importPaths: ["nltk/wordnet-lexnames", "wordnet/lexnames", "dict/lexnames", "lexnames"], optional: true)],
        origin: Origin(
            url: URL(string: "https://raw.githubusercontent.com/nltk/nltk_data/550b6625bcef1f2abff2ff770a5a0d272c9c6b2a/packages/corpora/wordnet.zip")!,
            checksum: .sha256("cbda5ea6eef7f36a97a43d4a75f85e07fccbb4f23657d27b4ccbc93e2646ab59"),
            size: 10_775_600,
            unpacking: .zip(Dictionary(uniqueKeysWithValues: (wordnetRequired + ["lexnames"]).map { ("wordnet/\($0)", $0) })),
            checksumSource: "nltk_data index.xml @ 550b662, package wordnet (version 3.0): sha256_checksum (md5 b3f38606f626e54c6f060548546f71f0), size 10775600"),
        systemFolders: ["/usr/share/wordnet"],
        provenance: "WordNet 3.0 (Princeton; WordNet license) via nltk_data corpora/wordnet.zip, or Debian's wordnet-base at /usr/share/wordnet")

    /// CHAIR ground-truth objects for COCO 2014 train+val, exported from the pickled evaluator.
    public static let chairGroundTruth = DataSource(
        id: "chair-ground-truth",
        description: "CHAIR ground truth for COCO 2014 train+val: {\"image_id\": [node words]} JSON",
        files: [SourceFile("coco2014_gt_objects.json", validation: .stringListObject,
                           importPaths: ["chair/coco2014_gt_objects.json", "coco2014_gt_objects.json"])],
        origin: nil,
        importOnlyReason: """
        no public URL serves it in this form: upstream publishes it only inside a Python pickle (chair.pkl in \
        BillChan226/HALC @ d55e5a4). Import an exported JSON, or build it from coco-annotations-2014 with `mirage chair`.
        """,
        provenance: "exported from BillChan226/HALC @ d55e5a4 chair.pkl (MIT)")

    static let cocoAnnotationMembers = ["instances_train2014.json", "instances_val2014.json",
                                        "captions_train2014.json", "captions_val2014.json"]

    /// The official COCO 2014 train+val annotations (instances + captions).
    public static let cocoAnnotations2014 = DataSource(
        id: "coco-annotations-2014",
        description: "COCO 2014 train+val annotations: instances_{train,val}2014.json, captions_{train,val}2014.json",
        files: cocoAnnotationMembers.map { name in
            SourceFile(name, validation: name.hasPrefix("instances") ? .cocoInstances : .cocoCaptions,
                       importPaths: ["annotations/\(name)", "coco/annotations/\(name)", name])
        },
        origin: Origin(
            url: URL(string: "http://images.cocodataset.org/annotations/annotations_trainval2014.zip")!,
            checksum: .md5("0a379cfc70b0e71301e0f377548639bd"),
            size: 252_872_794,
            unpacking: .zip(Dictionary(uniqueKeysWithValues: cocoAnnotationMembers.map { ("annotations/\($0)", $0) })),
            checksumSource: "MD5 (= the S3 ETag of the object; COCO publishes no SHA-256), size 252872794 bytes, as pinned by torchvision-style downloaders"),
        provenance: "cocodataset.org, annotations_trainval2014.zip; CC BY 4.0")
}
