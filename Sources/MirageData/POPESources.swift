import Foundation

// The published POPE COCO question sets as data sources (`mirage data fetch pope-coco-opera`), one per
// variant, each file pinned by SHA-256 and fetched from its original repository at a fixed commit.

extension DataSource {
    static func popeSource(id: String, variant: String, description: String, urlBase: String,
                           importFolders: [String], provenance: String) -> DataSource {
        let known = POPEQuestionReader.knownFiles.filter { $0.variant == variant }
        let files = known.map { k -> SourceFile in
            let name = "coco_pope_\(k.split.rawValue).json"
            return SourceFile(name, sha256: k.sha256, validation: .text,
                              importPaths: importFolders.map { $0.isEmpty ? name : "\($0)/\(name)" })
        }
        let urls = Dictionary(uniqueKeysWithValues: files.map { ($0.name, URL(string: "\(urlBase)/\($0.name)")!) })
        return DataSource(id: id, description: description, files: files, origin: nil, provenance: provenance,
                          fileOrigins: urls)
    }

    /// POPE's current COCO files (RUCAIBox/POPE HEAD, after the resampling and typo fixes).
    public static let popeCOCO = popeSource(
        id: "pope-coco", variant: "rucaibox",
        description: "POPE COCO question sets, current (RUCAIBox/POPE @ 3df3ba1): 3 x 3,000 questions over 500 val2014 images",
        urlBase: "https://raw.githubusercontent.com/RUCAIBox/POPE/3df3ba1b110ecce25696989577fad583b67d4239/output/coco",
        importFolders: ["pope/rucaibox", "output/coco", ""],
        provenance: "RUCAIBox/POPE @ 3df3ba1, output/coco/; MIT")

    /// The older files OPERA evaluated on (random has 2,910 questions; "imange" typo). OPERA copied them
    /// from POPE @ 28f884a, which is where they are fetched from (byte-identical, pinned by SHA-256).
    public static let popeCOCOOpera = popeSource(
        id: "pope-coco-opera", variant: "opera",
        description: "POPE COCO question sets as OPERA used them (POPE @ 28f884a = OPERA pope_coco/): random 2,910 questions",
        urlBase: "https://raw.githubusercontent.com/RUCAIBox/POPE/28f884aa900fbd34fd80c1fe898beb4c0623f920/output/coco",
        importFolders: ["pope/opera", "pope_coco", ""],
        provenance: "RUCAIBox/POPE @ 28f884a, output/coco/ (identical to shikiw/OPERA @ 61426ef, pope_coco/); MIT")

    /// The files VCD evaluated on (random identical to POPE HEAD's).
    public static let popeCOCOVCD = popeSource(
        id: "pope-coco-vcd", variant: "vcd",
        description: "POPE COCO question sets as VCD used them (DAMO-NLP-SG/VCD @ d6568ff)",
        urlBase: "https://raw.githubusercontent.com/DAMO-NLP-SG/VCD/d6568ff81b8fd306a49e630df44f2db5c2300191/experiments/data/POPE/coco",
        importFolders: ["pope/vcd", "experiments/data/POPE/coco", ""],
        provenance: "DAMO-NLP-SG/VCD @ d6568ff, experiments/data/POPE/coco/; Apache-2.0")
}

extension POPEKnownFile {
    /// The data source that provides this published file.
    public var sourceID: String {
        switch variant {
        case "opera": return "pope-coco-opera"
        case "vcd": return "pope-coco-vcd"
        default: return "pope-coco"
        }
    }

    public var fileName: String { "coco_pope_\(split.rawValue).json" }
}
