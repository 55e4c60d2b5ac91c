import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ZIPFoundation

public enum DataSourceError: Error, CustomStringConvertible {
    case unknownSource(String, known: [String])
    case missing(id: String, root: String, fetchable: Bool)
    case importOnly(id: String, reason: String)
    case checksumMismatch(what: String, expected: Checksum, actual: String)
    case sizeMismatch(what: String, expected: Int64, actual: Int64)
    case downloadFailed(id: String, url: URL, underlying: String)
    case notInArchive(id: String, member: String)
    case notFoundInFolder(id: String, folder: String, tried: [String])
    case invalidFile(path: String, reason: String)
    case cannotWrite(String)
    case nothingToImport(folder: String)

    public var description: String {
        switch self {
        case .unknownSource(let id, let known):
            return "unknown data source '\(id)'; known sources: \(known.joined(separator: ", ")) (see `mirage data list`)"
        case .missing(let id, let root, let fetchable):
            let fetch = fetchable ? "run `mirage data fetch \(id)` (needs internet) or " : ""
            return "data source '\(id)' is not installed in \(root): \(fetch)run `mirage data import \(id) --from DIR` with a folder that contains it"
        case .importOnly(let id, let reason):
            return "data source '\(id)' cannot be fetched: \(reason). Use `mirage data import \(id) --from DIR`"
        case .checksumMismatch(let what, let expected, let actual):
            return "\(what) has \(expected.algorithm.rawValue) \(actual) but \(expected.hex) was expected: the file is corrupt, truncated or a different version; download it again or import the pinned version"
        case .sizeMismatch(let what, let expected, let actual):
            return "\(what) is \(actual) bytes but \(expected) were expected: the download is incomplete or a different version; try again"
        case .downloadFailed(let id, let url, let underlying):
            return "could not download '\(id)' from \(url.absoluteString): \(underlying). Without internet access, get the file elsewhere and run `mirage data import \(id) --from DIR`"
        case .notInArchive(let id, let member):
            return "the archive for '\(id)' has no member \(member): it is not the pinned upstream archive"
        case .notFoundInFolder(let id, let folder, let tried):
            return "'\(id)' was not found in \(folder) (looked for \(tried.joined(separator: ", "))); point --from at the folder that holds these files"
        case .invalidFile(let path, let reason):
            return "\(path) is not usable: \(reason)"
        case .cannotWrite(let path):
            return "cannot write \(path): check permissions and free space, or choose another data folder with MIRAGE_DATA"
        case .nothingToImport(let folder):
            return "no known data source was found in \(folder); `mirage data list` shows the sources and `mirage data import --help` the layouts it recognises"
        }
    }
}

/// Whether a source is installed, and where.
public struct SourceStatus: Sendable {
    public var source: DataSource
    /// The folder holding the source's files, when installed.
    public var location: URL?
    /// Total size in bytes of the source's files, when installed.
    public var size: Int64
    /// Required files that are missing.
    public var missingFiles: [String]
    /// How it got there (from the manifest written at fetch/import), when known.
    public var provenance: String?

    public var isPresent: Bool { location != nil }
}

/// The record `fetch`/`import` leave in a source's folder (`.mirage-source.json`).
public struct SourceManifest: Codable, Sendable {
    public var id: String
    /// "fetched <url>" or "imported from <folder>".
    public var origin: String
    /// How each file was checked: "sha256 verified", "archive <algorithm> verified" or "parsed as <format>".
    public var verification: [String: String]
    /// SHA-256 of every stored file.
    public var sha256: [String: String]
    public var date: String
}

/// What an import did, per source.
public struct ImportResult: Sendable {
    public var id: String
    public var location: URL
    /// File name → "sha256 verified", "archive <algorithm> verified" or "parsed as <format>".
    public var verification: [String: String]
}

/// The local folder where Mirage keeps data sources: `<root>/<source id>/<files>`.
///
/// Default root: `$MIRAGE_DATA`, else `~/.cache/mirage/data`.
public struct DataStore: Sendable {
    public let root: URL
    public let catalog: DataCatalog
    /// Whether system folders (e.g. `/usr/share/wordnet`) count as installed sources.
    public let useSystemFolders: Bool

    public init(root: URL? = nil, catalog: DataCatalog = .standard, useSystemFolders: Bool = true,
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.root = root ?? DataStore.defaultRoot(environment: environment)
        self.catalog = catalog
        self.useSystemFolders = useSystemFolders
    }

    public static func defaultRoot(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let dir = environment["MIRAGE_DATA"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        let home = environment["HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser
        return home.appendingPathComponent(".cache/mirage/data")
    }

    public func source(_ id: String) throws -> DataSource {
        guard let s = catalog[id] else { throw DataSourceError.unknownSource(id, known: catalog.ids) }
        return s
    }

    func folder(_ id: String) -> URL { root.appendingPathComponent(id, isDirectory: true) }

    // MARK: Status and lookup

    public func status(_ id: String) throws -> SourceStatus {
        let s = try source(id)
        let fm = FileManager.default
        var candidates = [folder(id)]
        if useSystemFolders { candidates += s.systemFolders.map { URL(fileURLWithPath: $0, isDirectory: true) } }
        var firstMissing: [String] = s.requiredFiles.map(\.name)
        for dir in candidates {
            let missing = s.requiredFiles.map(\.name).filter { !fm.fileExists(atPath: dir.appendingPathComponent($0).path) }
            if missing.isEmpty {
                var size: Int64 = 0
                for f in s.files {
                    let attrs = try? fm.attributesOfItem(atPath: dir.appendingPathComponent(f.name).path)
                    size += (attrs?[.size] as? NSNumber)?.int64Value ?? 0
                }
                var provenance: String? = nil
                if let data = try? Data(contentsOf: dir.appendingPathComponent(".mirage-source.json")),
                   let m = try? JSONDecoder().decode(SourceManifest.self, from: data) {
                    provenance = m.origin
                } else if dir != folder(id) {
                    provenance = "system folder"
                }
                return SourceStatus(source: s, location: dir, size: size, missingFiles: [], provenance: provenance)
            }
            if dir == folder(id) { firstMissing = missing }
        }
        return SourceStatus(source: s, location: nil, size: 0, missingFiles: firstMissing, provenance: nil)
    }

    /// The folder holding the source's files; throws a message naming the fetch/import command when missing.
    public func locate(_ id: String) throws -> URL {
        let st = try status(id)
        guard let location = st.location else {
            throw DataSourceError.missing(id: id, root: root.path, fetchable: st.source.isFetchable)
        }
        return location
    }

    /// One file of an installed source.
    public func locate(_ id: String, file name: String) throws -> URL {
        let dir = try locate(id)
        let url = dir.appendingPathComponent(name)
        // Optional files (e.g. WordNet's lexnames) may live in the store while the rest is a system folder.
        if !FileManager.default.fileExists(atPath: url.path) {
            let stored = folder(id).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: stored.path) { return stored }
            throw DataSourceError.missing(id: id, root: root.path, fetchable: try source(id).isFetchable)
        }
        return url
    }

    // MARK: Fetch

    /// Downloads the source from its pinned URL, verifies size and checksum, unpacks it into a staging
    /// folder and moves it into place atomically. `file://` URLs (local mirrors) are copied.
    @discardableResult
    public func fetch(_ id: String, session: URLSession = .shared) async throws -> URL {
        let s = try source(id)
        if s.origin == nil && !s.fileOrigins.isEmpty {
            return try await fetchFiles(id, urls: s.fileOrigins, session: session)
        }
        guard let origin = s.origin else {
            throw DataSourceError.importOnly(id: id, reason: s.importOnlyReason ?? "it has no public download")
        }
        try ensureRoot()
        let download = root.appendingPathComponent(".download-\(id)-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: download) }
        if origin.url.isFileURL {
            do { try FileManager.default.copyItem(at: origin.url, to: download) } catch {
                throw DataSourceError.downloadFailed(id: id, url: origin.url, underlying: error.localizedDescription)
            }
        } else {
            try await Self.download(origin.url, to: download, id: id, session: session)
        }
        return try install(id: id, archive: download, origin: origin, note: "fetched \(origin.url.absoluteString)")
    }

    static func download(_ url: URL, to destination: URL, id: String, session: URLSession) async throws {
        let result: (URL, URLResponse)
        do {
            result = try await withCheckedThrowingContinuation { (cont: CheckedContinuation<(URL, URLResponse), Error>) in
                let task = session.downloadTask(with: url) { tmp, response, error in
                    if let error { cont.resume(throwing: error); return }
                    guard let tmp, let response else {
                        cont.resume(throwing: URLError(.badServerResponse)); return
                    }
                    // The temporary file is deleted when this handler returns: move it first.
                    let keep = destination.appendingPathExtension("part")
                    do {
                        try? FileManager.default.removeItem(at: keep)
                        try FileManager.default.moveItem(at: tmp, to: keep)
                        cont.resume(returning: (keep, response))
                    } catch { cont.resume(throwing: error) }
                }
                task.resume()
            }
        } catch {
            throw DataSourceError.downloadFailed(id: id, url: url, underlying: error.localizedDescription)
        }
        if let http = result.1 as? HTTPURLResponse, !(200..<300).contains(http.statusCode) {
            try? FileManager.default.removeItem(at: result.0)
            throw DataSourceError.downloadFailed(id: id, url: url, underlying: "HTTP status \(http.statusCode)")
        }
        try FileManager.default.moveItem(at: result.0, to: destination)
    }

    /// Verifies a downloaded (or user-supplied) artifact against the origin and installs it.
    func install(id: String, archive: URL, origin: Origin, note: String) throws -> URL {
        let s = try source(id)
        let what = "the download for '\(id)' (\(archive.lastPathComponent))"
        if let expected = origin.size {
            let attrs = try FileManager.default.attributesOfItem(atPath: archive.path)
            let actual = (attrs[.size] as? NSNumber)?.int64Value ?? -1
            if actual != expected { throw DataSourceError.sizeMismatch(what: what, expected: expected, actual: actual) }
        }
        let actual = try origin.checksum.compute(file: archive)
        if actual != origin.checksum.hex {
            throw DataSourceError.checksumMismatch(what: what, expected: origin.checksum, actual: actual)
        }
        let staging = try makeStaging(id)
        defer { try? FileManager.default.removeItem(at: staging) }
        switch origin.unpacking {
        case .plain(let name):
            try FileManager.default.copyItem(at: archive, to: staging.appendingPathComponent(name))
        case .zip(let members):
            let zip: Archive
            do { zip = try Archive(url: archive, accessMode: .read) } catch {
                throw DataSourceError.invalidFile(path: archive.path, reason: "not a readable zip archive (\(error))")
            }
            for (member, name) in members.sorted(by: { $0.key < $1.key }) {
                guard let entry = zip[member] else {
                    if s.files.first(where: { $0.name == name })?.optional == true { continue }
                    throw DataSourceError.notInArchive(id: id, member: member)
                }
                _ = try zip.extract(entry, to: staging.appendingPathComponent(name))
            }
        }
        var verification: [String: String] = [:]
        for f in s.files where FileManager.default.fileExists(atPath: staging.appendingPathComponent(f.name).path) {
            verification[f.name] = "archive \(origin.checksum.algorithm.rawValue) verified"
        }
        return try commit(id: id, staging: staging, origin: note, verification: verification)
    }

    // MARK: Import

    /// Sources whose required files are all present in `folder` (in any recognised layout), or whose
    /// upstream download file (e.g. `annotations_trainval2014.zip`) sits there.
    /// Files with a pinned SHA-256 count only when their content matches, so that folders holding several
    /// variants of a file (e.g. POPE's question sets) are told apart.
    public func detect(in folder: URL) -> [String] {
        catalog.sources.filter { s in
            if archiveCandidate(s, in: folder) != nil { return true }
            return s.requiredFiles.allSatisfy { f in
                guard let url = resolve(f, in: folder) else { return false }
                guard let pinned = f.sha256 else { return true }
                return (try? SHA256.hex(ofFile: url)) == pinned
            }
        }.map(\.id)
    }

    /// The first import path that exists; among several, the first whose content matches the pinned
    /// SHA-256 (if the file has one).
    func resolve(_ file: SourceFile, in folder: URL) -> URL? {
        var first: URL?
        for p in file.importPaths {
            let url = folder.appendingPathComponent(p)
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue else { continue }
            guard let pinned = file.sha256 else { return url }
            if (try? SHA256.hex(ofFile: url)) == pinned { return url }
            if first == nil { first = url }
        }
        return first
    }

    func archiveCandidate(_ s: DataSource, in folder: URL) -> URL? {
        guard let origin = s.origin, case .zip = origin.unpacking else { return nil }
        let url = folder.appendingPathComponent(origin.url.lastPathComponent)
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }

    /// Imports a source from a folder the user names. Files byte-identical to upstream are checked
    /// against their pinned SHA-256; the others are validated by parsing. If the folder holds the
    /// upstream archive itself, it is verified against the pinned checksum and unpacked.
    @discardableResult
    public func `import`(_ id: String, from folder: URL) throws -> ImportResult {
        let s = try source(id)
        if let archive = archiveCandidate(s, in: folder), let origin = s.origin {
            let location = try install(id: id, archive: archive, origin: origin, note: "imported \(archive.path)")
            let v = Dictionary(uniqueKeysWithValues: s.files.map { ($0.name, "archive \(origin.checksum.algorithm.rawValue) verified") })
            return ImportResult(id: id, location: location, verification: v)
        }
        var found: [(SourceFile, URL)] = []
        for f in s.files {
            if let url = resolve(f, in: folder) { found.append((f, url)) }
            else if !f.optional {
                throw DataSourceError.notFoundInFolder(id: id, folder: folder.path, tried: f.importPaths)
            }
        }
        var verification: [String: String] = [:]
        for (f, url) in found {
            if let expected = f.sha256 {
                let actual = try SHA256.hex(ofFile: url)
                if actual != expected {
                    throw DataSourceError.checksumMismatch(what: url.path, expected: .sha256(expected), actual: actual)
                }
                verification[f.name] = "sha256 verified"
            } else {
                try Validator.validate(url, as: f.validation)
                verification[f.name] = "parsed as \(f.validation)"
            }
        }
        try ensureRoot()
        let staging = try makeStaging(id)
        defer { try? FileManager.default.removeItem(at: staging) }
        for (f, url) in found {
            try FileManager.default.copyItem(at: url, to: staging.appendingPathComponent(f.name))
        }
        let location = try commit(id: id, staging: staging, origin: "imported from \(folder.path)", verification: verification)
        return ImportResult(id: id, location: location, verification: verification)
    }

    // MARK: Staging

    func ensureRoot() throws {
        do { try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true) } catch {
            throw DataSourceError.cannotWrite(root.path)
        }
    }

    func makeStaging(_ id: String) throws -> URL {
        let staging = root.appendingPathComponent(".staging-\(id)-\(UUID().uuidString)", isDirectory: true)
        do { try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true) } catch {
            throw DataSourceError.cannotWrite(staging.path)
        }
        return staging
    }

    /// Writes the manifest and swaps the staging folder into place (rename within one file system).
    func commit(id: String, staging: URL, origin: String, verification: [String: String]) throws -> URL {
        let fm = FileManager.default
        var sums: [String: String] = [:]
        for name in try fm.contentsOfDirectory(atPath: staging.path) {
            sums[name] = try SHA256.hex(ofFile: staging.appendingPathComponent(name))
        }
        let manifest = SourceManifest(id: id, origin: origin, verification: verification, sha256: sums,
                                      date: ISO8601DateFormatter().string(from: Date()))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(manifest).write(to: staging.appendingPathComponent(".mirage-source.json"))
        let target = folder(id)
        if fm.fileExists(atPath: target.path) {
            let old = root.appendingPathComponent(".old-\(id)-\(UUID().uuidString)")
            try fm.moveItem(at: target, to: old)
            defer { try? fm.removeItem(at: old) }
            try fm.moveItem(at: staging, to: target)
        } else {
            try fm.moveItem(at: staging, to: target)
        }
        return target
    }
}

/// Parse checks for imported files (see `Validation`).
public enum Validator {
    public static func validate(_ url: URL, as validation: Validation) throws {
        let path = url.path
        func fail(_ reason: String) -> DataSourceError { .invalidFile(path: path, reason: reason) }
        switch validation {
        case .text, .tabSeparated, .synonymList:
            let data = try Data(contentsOf: url, options: .alwaysMapped)
            guard !data.isEmpty else { throw fail("the file is empty") }
            guard let text = String(data: data, encoding: .utf8) else { throw fail("not UTF-8 text") }
            if case .tabSeparated(let columns) = validation {
                for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated()
                where line.split(separator: "\t", omittingEmptySubsequences: false).count != columns {
                    throw fail("line \(i + 1) does not have \(columns) tab-separated fields")
                }
            }
            if case .synonymList = validation {
                let lines = text.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
                guard lines.count == 80 else { throw fail("expected 80 category lines, found \(lines.count)") }
            }
        case .json:
            try JSONScanner.withContents(of: url) { s in
                try s.skipValue()
                guard s.isAtEnd else { throw s.error("unexpected data after the JSON value") }
            }
        case .stringListObject:
            try JSONScanner.withContents(of: url) { s in
                try s.forEachMember { _, s in
                    try s.forEachElement { s in _ = try s.readString() }
                }
            }
        case .cocoInstances:
            let i = try COCOReader.instances(at: url)
            guard !i.images.isEmpty else { throw fail("no images") }
        case .cocoCaptions:
            let c = try COCOReader.captions(at: url)
            guard !c.captions.isEmpty else { throw fail("no captions") }
        }
    }
}
