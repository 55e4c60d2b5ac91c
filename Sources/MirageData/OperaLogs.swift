import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The captions released with the OPERA paper (Huang et al., "OPERA: Alleviating Hallucination in
/// Multi-Modal Large Language Models via Over-Trust Penalty and Retrospection-Allocation", CVPR 2024):
/// 500 COCO val2014 images per file, `{"image_id", "caption"}` JSON Lines, for four models × three decoders.
public enum OperaLogs {
    public static let models = ["llava-1.5", "instructblip", "minigpt4", "shikra"]
    /// `ours` is OPERA itself.
    public static let decoders = ["greedy", "beam5", "ours"]

    /// shikiw/OPERA commit that added `log/chair_eval_results/` (aefb223, "upload logs"); the files are
    /// unchanged up to 61426ef (2024-07-26), the snapshot the project's reference documents describe.
    public static let commit = "aefb223d49315687b4d4e9dff54352673346f50c"

    /// SHA-256 of each released file (identical to ../shared/data/chair/opera-logs, see its SHA256SUMS).
    public static let sha256: [String: String] = [
        "instructblip-beam5.jsonl": "7f09f1a3a91b26bac7f88b7f02f786761a2bc4643165bf825ebbdc1e51907dad",
        "instructblip-greedy.jsonl": "b8885a2c69c974232076f0cbc4f7693358d5a340e126540f8a38a38ed7c79588",
        "instructblip-ours.jsonl": "b4b4287c1e8c01f83f6cfae1268edbf71d7201821637587c0b66b9d653dc064a",
        "llava-1.5-beam5.jsonl": "6e652d8790d4b7f1a1f6ae4c8c68c5b52199e6cf5510906407fa25bad623eb04",
        "llava-1.5-greedy.jsonl": "3d70bbefa95f1894a09e97e83f2a40531be39b12db50f4e2386c5bfc99842fdd",
        "llava-1.5-ours.jsonl": "63742c6032d28cfd0396afc24003900cef1aaf270ffef3f5ba3e10aaa7cde318",
        "minigpt4-beam5.jsonl": "f3ef58532c356c7dd0368dedeced593b8f671dce2ba94d4151791eeb132a131d",
        "minigpt4-greedy.jsonl": "e76ff7a33dc60da4e514623b44e7abe7dc7de269afd8400e23ef19eaa962dd00",
        "minigpt4-ours.jsonl": "320417cb9525ddab6a2cf3d9e3460e200c0a7271f5e1352dd9275b0be6698c6d",
        "shikra-beam5.jsonl": "1aa4f9558ed3597ffc2a1c4a7c633591e52cec8cf328c39a8e0e041d9fd57e11",
        "shikra-greedy.jsonl": "3de98f2257a7b06808702cbc843a66e1fbebcb21a4e06adacaabab1ae0ddf1b8",
        "shikra-ours.jsonl": "b21311809ac4bde55bc9a3bf73dbc7605b2d8c0ef5b603be304ab347ae01eb5d",
    ]

    /// The name a log is stored under: `<model>-<decoder>.jsonl`.
    public static func fileName(model: String, decoder: String) -> String { "\(model)-\(decoder).jsonl" }

    /// The original public URL of one log.
    public static func url(model: String, decoder: String) -> URL {
        URL(string: "https://raw.githubusercontent.com/shikiw/OPERA/\(commit)/log/chair_eval_results/\(model)/\(decoder).jsonl")!
    }
}

extension DataSource {
    /// OPERA's twelve released caption logs (`mirage reproduce opera`).
    public static let operaLogs = DataSource(
        id: "opera-logs",
        description: "captions released with the OPERA paper: 4 models x greedy/beam5/OPERA, 500 COCO val2014 images each",
        files: OperaLogs.models.flatMap { model in
            OperaLogs.decoders.map { decoder in
                let name = OperaLogs.fileName(model: model, decoder: decoder)
                return SourceFile(name, sha256: OperaLogs.sha256[name], validation: .text,
                                  importPaths: ["chair/opera-logs/\(name)", "opera-logs/\(name)", name,
                                                "log/chair_eval_results/\(model)/\(decoder).jsonl", "\(model)/\(decoder).jsonl"])
            }
        },
        origin: nil,
        provenance: "shikiw/OPERA @ \(OperaLogs.commit.prefix(7)) (unchanged at 61426ef), log/chair_eval_results/<model>/<decoder>.jsonl; MIT",
        fileOrigins: Dictionary(uniqueKeysWithValues: OperaLogs.models.flatMap { model in
            OperaLogs.decoders.map { (OperaLogs.fileName(model: model, decoder: $0), OperaLogs.url(model: model, decoder: $0)) }
        }))
}

extension DataStore {
    /// Downloads each file of a source from its own URL, verifies every file's pinned SHA-256 and installs
    /// the source atomically (for sources such as `opera-logs` whose files have no common archive).
    @discardableResult
    public func fetchFiles(_ id: String, urls: [String: URL], session: URLSession = .shared) async throws -> URL {
        let s = try source(id)
        try ensureRoot()
        let staging = try makeStaging(id)
        defer { try? FileManager.default.removeItem(at: staging) }
        var verification: [String: String] = [:]
        for file in s.files {
            guard let url = urls[file.name] else { continue }
            let destination = staging.appendingPathComponent(file.name)
            if url.isFileURL {
                do { try FileManager.default.copyItem(at: url, to: destination) } catch {
                    throw DataSourceError.downloadFailed(id: id, url: url, underlying: error.localizedDescription)
                }
            } else {
                try await Self.download(url, to: destination, id: id, session: session)
            }
            if let expected = file.sha256 {
                let actual = try SHA256.hex(ofFile: destination)
                if actual != expected {
                    throw DataSourceError.checksumMismatch(what: "\(file.name) from \(url.absoluteString)",
                                                           expected: .sha256(expected), actual: actual)
                }
                verification[file.name] = "sha256 verified"
            }
        }
        return try commit(id: id, staging: staging, origin: "fetched \(urls.count) files", verification: verification)
    }
}
