import Foundation
import Testing
import ZIPFoundation
@testable import MirageData
import MirageTestSupport

@Suite struct DataStoreTests {
    static func tempDir(_ name: String) -> URL {
        let url = TestTemporary.root.appendingPathComponent("mirage-\(name)-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func missingSourceNamesTheCommandsToRun() throws {
        let root = Self.tempDir("empty")
        defer { try? FileManager.default.removeItem(at: root) }
        let store = DataStore(root: root, useSystemFolders: false)
        do {
            _ = try store.locate("chair-synonyms")
            Issue.record("locate should fail")
        } catch let e as DataSourceError {
            #expect(e.description.contains("mirage data fetch chair-synonyms"))
            #expect(e.description.contains("mirage data import chair-synonyms --from DIR"))
        }
        do {
            _ = try store.locate("chair-ground-truth")
            Issue.record("locate should fail")
        } catch let e as DataSourceError {
            #expect(!e.description.contains("mirage data fetch"))
            #expect(e.description.contains("mirage data import chair-ground-truth --from DIR"))
        }
        #expect(throws: DataSourceError.self) { try store.locate("no-such-source") }
        #expect(!(try store.status("wordnet")).isPresent)
    }

    @Test func defaultRootFollowsEnvironment() {
        #expect(DataStore.defaultRoot(environment: ["MIRAGE_DATA": "/x/y"]).path == "/x/y")
        #expect(DataStore.defaultRoot(environment: ["HOME": "/home/u"]).path == "/home/u/.cache/mirage/data")
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/usr/share/wordnet/index.noun"),
                   "skipped: Debian's wordnet-base is not installed"))
    func systemWordNetCountsAsPresent() throws {
        let root = Self.tempDir("wn")
        defer { try? FileManager.default.removeItem(at: root) }
        let st = try DataStore(root: root).status("wordnet")
        #expect(st.location?.path == "/usr/share/wordnet")
        #expect(st.provenance == "system folder")
    }

    // MARK: fetch (file:// stands in for the network; the machine running tests has none)

    static func catalog(url: URL, checksum: Checksum, size: Int64?, unpacking: Unpacking, files: [String]) -> DataCatalog {
        DataCatalog([DataSource(
            id: "test-source", description: "test",
            files: files.map { SourceFile($0, validation: .text, importPaths: [$0]) },
            origin: Origin(url: url, checksum: checksum, size: size, unpacking: unpacking, checksumSource: "test"),
            provenance: "test")])
    }

    @Test func fetchVerifiesChecksumAndInstallsAtomically() async throws {
        let dir = Self.tempDir("fetch")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("upstream.txt")
        try Data("abc".utf8).write(to: file)
        // SHA-256("abc") is the FIPS 180-4 example digest.
        let good = Self.catalog(url: file, checksum: .sha256("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
                                size: 3, unpacking: .plain("data.txt"), files: ["data.txt"])
        let store = DataStore(root: dir.appendingPathComponent("store"), catalog: good)
        let location = try await store.fetch("test-source")
        #expect(try String(contentsOf: location.appendingPathComponent("data.txt"), encoding: .utf8) == "abc")
        #expect(try store.locate("test-source") == location)
        let manifest = try JSONDecoder().decode(SourceManifest.self, from: Data(contentsOf: location.appendingPathComponent(".mirage-source.json")))
        #expect(manifest.origin.hasPrefix("fetched file://"))
        #expect(manifest.sha256["data.txt"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // No staging or download leftovers.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: store.root.path).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty)

        let bad = Self.catalog(url: file, checksum: .md5("00000000000000000000000000000000"), size: nil,
                               unpacking: .plain("data.txt"), files: ["data.txt"])
        let badStore = DataStore(root: dir.appendingPathComponent("bad"), catalog: bad)
        await #expect(throws: DataSourceError.self) { try await badStore.fetch("test-source") }
        #expect(!(try badStore.status("test-source")).isPresent)

        let wrongSize = Self.catalog(url: file, checksum: .md5("900150983cd24fb0d6963f7d28e17f72"), size: 4,
                                     unpacking: .plain("data.txt"), files: ["data.txt"])
        await #expect(throws: DataSourceError.self) {
            try await DataStore(root: dir.appendingPathComponent("size"), catalog: wrongSize).fetch("test-source")
        }
    }

    @Test func fetchUnpacksSelectedZipMembers() async throws {
        let dir = Self.tempDir("zip")
        defer { try? FileManager.default.removeItem(at: dir) }
        let zipURL = dir.appendingPathComponent("pkg.zip")
        let archive = try Archive(url: zipURL, accessMode: .create)
        for (path, text) in [("pkg/english/a.txt", "alpha\n"), ("pkg/english/b.tab", "x\t1\n"), ("pkg/german/a.txt", "nein\n")] {
            let data = Data(text.utf8)
            try archive.addEntry(with: path, type: .file, uncompressedSize: Int64(data.count)) { position, size in
                data.subdata(in: Int(position)..<Int(position) + size)
            }
        }
        let sum = try SHA256.hex(ofFile: zipURL)
        let catalog = Self.catalog(url: zipURL, checksum: .sha256(sum), size: nil,
                                   unpacking: .zip(["pkg/english/a.txt": "a.txt", "pkg/english/b.tab": "b.tab"]),
                                   files: ["a.txt", "b.tab"])
        let store = DataStore(root: dir.appendingPathComponent("store"), catalog: catalog)
        let location = try await store.fetch("test-source")
        #expect(try String(contentsOf: location.appendingPathComponent("a.txt"), encoding: .utf8) == "alpha\n")
        #expect(try String(contentsOf: location.appendingPathComponent("b.tab"), encoding: .utf8) == "x\t1\n")
        #expect(!FileManager.default.fileExists(atPath: location.appendingPathComponent("german").path))

        // The same archive placed in a folder is recognised by import and verified the same way.
        let other = DataStore(root: dir.appendingPathComponent("store2"), catalog: catalog)
        #expect(other.detect(in: dir) == ["test-source"])
        let result = try other.import("test-source", from: dir)
        #expect(result.verification["a.txt"] == "archive sha256 verified")
    }

    @Test func fetchWithoutNetworkFailsClearly() async throws {
        let dir = Self.tempDir("net")
        defer { try? FileManager.default.removeItem(at: dir) }
        let catalog = Self.catalog(url: URL(string: "http://127.0.0.1:9/nothing.txt")!, checksum: .md5("00"), size: nil,
                                   unpacking: .plain("x"), files: ["x"])
        do {
            try await DataStore(root: dir, catalog: catalog).fetch("test-source")
            Issue.record("fetch should fail without a server")
        } catch let e as DataSourceError {
            #expect(e.description.contains("could not download 'test-source'"))
            #expect(e.description.contains("mirage data import test-source --from DIR"))
        }
        await #expect(throws: DataSourceError.self) { try await DataStore(root: dir).fetch("chair-ground-truth") }
    }

    // MARK: import from the shared reference folder

    @Test(.enabled(if: SharedData.isAvailable, SharedData.missingMessage))
    func importsTheSharedFolderAsIs() throws {
        let root = Self.tempDir("import")
        defer { try? FileManager.default.removeItem(at: root) }
        let store = DataStore(root: root, useSystemFolders: false)
        let found = store.detect(in: SharedData.root)
        let expected = ["chair-synonyms", "punkt", "pos-tagger", "chair-ground-truth", "opera-logs",
                        "pope-coco", "pope-coco-opera", "pope-coco-vcd"]
        #expect(expected.allSatisfy(found.contains), "found \(found)")
        #expect(!found.contains("wordnet") && !found.contains("coco-annotations-2014"), "found \(found)")
        for id in expected {
            let result = try store.import(id, from: SharedData.root)
            #expect(try store.locate(id) == result.location)
        }
        let synonyms = try store.locate("chair-synonyms", file: "synonyms.txt")
        #expect(try SHA256.hex(ofFile: synonyms) == "b685537b36fe21b791c87151b96a991ceb582edff19f3da204dcc7a7905502f2")
        #expect(try store.import("chair-synonyms", from: SharedData.root).verification["synonyms.txt"] == "sha256 verified")
        #expect(try store.status("punkt").size > 0)

        // A tampered copy of a pinned file is refused.
        let bad = Self.tempDir("tampered")
        defer { try? FileManager.default.removeItem(at: bad) }
        try FileManager.default.createDirectory(at: bad.appendingPathComponent("chair"), withIntermediateDirectories: true)
        var text = try String(contentsOf: SharedData.url("chair/synonyms.txt"), encoding: .utf8)
        text += "extra\n"
        try text.write(to: bad.appendingPathComponent("chair/synonyms.txt"), atomically: true, encoding: .utf8)
        #expect(throws: DataSourceError.self) { try store.import("chair-synonyms", from: bad) }
    }

    @Test func importValidatesFilesWithoutPinnedChecksums() throws {
        let dir = Self.tempDir("validate")
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("{\"1\": [\"dog\"], \"2\": \"not a list\"}".utf8).write(to: dir.appendingPathComponent("coco2014_gt_objects.json"))
        let store = DataStore(root: dir.appendingPathComponent("store"))
        #expect(throws: JSONScanError.self) { try store.import("chair-ground-truth", from: dir) }
        try Data("{\"1\": [\"dog\"], \"2\": []}".utf8).write(to: dir.appendingPathComponent("coco2014_gt_objects.json"))
        let r = try store.import("chair-ground-truth", from: dir)
        #expect(r.verification["coco2014_gt_objects.json"] == "parsed as JSON object of string lists")
    }

    @Test(.enabled(if: SharedData.has("pope/opera/coco_pope_random.json"), SharedData.missingMessage))
    func popeVariantsAreToldApartByChecksum() async throws {
        let dir = Self.tempDir("pope")
        defer { try? FileManager.default.removeItem(at: dir) }
        // A flat folder holding OPERA's three files: only the opera variant is detected.
        let flat = dir.appendingPathComponent("flat")
        try FileManager.default.createDirectory(at: flat, withIntermediateDirectories: true)
        for split in ["random", "popular", "adversarial"] {
            try FileManager.default.copyItem(at: SharedData.url("pope/opera/coco_pope_\(split).json"),
                                             to: flat.appendingPathComponent("coco_pope_\(split).json"))
        }
        let store = DataStore(root: dir.appendingPathComponent("store"))
        #expect(store.detect(in: flat) == ["pope-coco-opera"])
        #expect(throws: DataSourceError.self) { try store.import("pope-coco", from: flat) }
        try store.import("pope-coco-opera", from: flat)
        let random = try POPEQuestionReader.load(store.locate("pope-coco-opera", file: "coco_pope_random.json"))
        #expect(random.variant.name == "opera/random")
        #expect(random.variant.known.first?.sourceID == "pope-coco-opera")

        // Per-file fetch (file:// mirror of the shared folder), each file verified against its pin.
        let mirror = DataSource.popeSource(id: "pope-coco-vcd", variant: "vcd", description: "test",
                                           urlBase: SharedData.url("pope/vcd").absoluteString, importFolders: [""],
                                           provenance: "test")
        let fetched = DataStore(root: dir.appendingPathComponent("fetched"), catalog: DataCatalog([mirror]))
        let location = try await fetched.fetch("pope-coco-vcd")
        #expect(try SHA256.hex(ofFile: location.appendingPathComponent("coco_pope_popular.json"))
                == "fa3a986eb3d586ceb527371112ad7170f398835cbe0a3f08a7e888771dbd8bd6")
        let wrong = DataSource.popeSource(id: "pope-coco-vcd", variant: "vcd", description: "test",
                                          urlBase: SharedData.url("pope/opera").absoluteString, importFolders: [""],
                                          provenance: "test")
        await #expect(throws: DataSourceError.self) {
            try await DataStore(root: dir.appendingPathComponent("wrong"), catalog: DataCatalog([wrong])).fetch("pope-coco-vcd")
        }
    }
}
