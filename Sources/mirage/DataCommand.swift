import ArgumentParser
import Foundation
import MirageData

/// `mirage data`: the data sources CHAIR and POPE need — list, fetch, import.
struct DataCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "List, download and import the data Mirage needs (CHAIR vocabulary, NLTK models, WordNet, COCO).",
        discussion: """
        Every source has a pinned origin: the original public URL (at a fixed commit for git repositories) and \
        the checksum published for it. `fetch` downloads and verifies; `import` takes the files from a folder \
        you already have (a mirror, an NLTK data folder, the unpacked COCO annotations, or the project's \
        ../shared/data folder as-is).

        Files are kept in $MIRAGE_DATA, or ~/.cache/mirage/data when it is not set, one folder per source.

        Examples:
          mirage data list
          mirage data fetch chair-synonyms punkt pos-tagger
          mirage data import --from ../shared/data
          mirage data import coco-annotations-2014 --from ~/Downloads     (folder with annotations_trainval2014.zip)
        """,
        subcommands: [List.self, Fetch.self, Import.self, Bench.self]
    )

    struct StoreOptions: ParsableArguments {
        @Option(name: .customLong("data-dir"), help: ArgumentHelp(
            "Data folder to use instead of $MIRAGE_DATA or ~/.cache/mirage/data.", valueName: "dir"))
        var dataDir: String?

        var store: DataStore { DataStore(root: dataDir.map { URL(fileURLWithPath: $0) }) }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show every data source: installed or missing, where, and how big.",
            discussion: "With --verbose, also the pinned URL, checksum and where that checksum comes from.")

        @OptionGroup var options: StoreOptions
        @Flag(name: .shortAndLong, help: "Show origins, checksums and provenance.") var verbose = false

        func run() throws {
            let store = options.store
            print("data folder: \(store.root.path)")
            for source in store.catalog.sources {
                let st = try store.status(source.id)
                let state = st.isPresent ? "present" : "missing"
                let detail = st.location.map { "\($0.path)  \(Self.size(st.size))" }
                    ?? (source.isFetchable ? "mirage data fetch \(source.id)" : "import only: mirage data import \(source.id) --from DIR")
                print("\(source.id.padding(toLength: 22, withPad: " ", startingAt: 0)) \(state.padding(toLength: 8, withPad: " ", startingAt: 0)) \(detail)")
                if verbose {
                    print("    \(source.description)")
                    if let o = source.origin {
                        print("    url: \(o.url.absoluteString)")
                        print("    \(o.checksum)\(o.size.map { ", \($0) bytes" } ?? "")  (\(o.checksumSource))")
                    } else if let reason = source.importOnlyReason {
                        print("    import only: \(reason)")
                    }
                    if let p = st.provenance { print("    installed: \(p)") }
                    print("    provenance: \(source.provenance)")
                }
            }
        }

        static func size(_ bytes: Int64) -> String {
            ByteCountFormatter.string(fromByteCount: bytes, countStyle: .file)
        }
    }

    struct Fetch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download sources from their pinned URLs and verify their checksums.",
            discussion: """
            The download goes to a temporary file, is checked against the pinned size and checksum, unpacked \
            and moved into place in one step: an interrupted or corrupt download never replaces good files. \
            Import-only sources (chair-ground-truth) cannot be fetched; use `mirage data import`.
            """)

        @OptionGroup var options: StoreOptions
        @Flag(help: "Fetch every source that can be fetched.") var all = false
        @Argument(help: ArgumentHelp("Source ids (see `mirage data list`).", valueName: "id")) var ids: [String] = []

        func validate() throws {
            if ids.isEmpty && !all { throw ValidationError("name the sources to fetch (e.g. `mirage data fetch punkt`) or pass --all") }
        }

        func run() async throws {
            let store = options.store
            let targets = all ? store.catalog.sources.filter(\.isFetchable).map(\.id) : ids
            var failures = 0
            for id in targets {
                do {
                    let location = try await store.fetch(id)
                    print("\(id): installed in \(location.path)")
                } catch {
                    failures += 1
                    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                }
            }
            if failures > 0 { throw ExitCode.failure }
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy sources from a folder you name, verifying or validating every file.",
            discussion: """
            Without ids, every source found in the folder is imported. Recognised layouts include the \
            project's ../shared/data folder (chair/synonyms.txt, nltk/punkt_tab/english/, \
            nltk/averaged_perceptron_tagger_eng/, chair/coco2014_gt_objects.json), an NLTK data folder \
            (tokenizers/punkt_tab/english/, taggers/averaged_perceptron_tagger_eng/, corpora/wordnet/), a WordNet \
            dict/ folder, COCO's annotations/ folder, or the upstream download itself (e.g. \
            annotations_trainval2014.zip). Files that are byte-identical to upstream are checked against their \
            pinned SHA-256; the others are parsed to make sure they are usable.
            """)

        @OptionGroup var options: StoreOptions
        @Option(help: ArgumentHelp("Folder to import from.", valueName: "dir")) var from: String
        @Argument(help: ArgumentHelp("Source ids to import (default: all found in the folder).", valueName: "id")) var ids: [String] = []

        func run() throws {
            let store = options.store
            let folder = URL(fileURLWithPath: from)
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
                throw ValidationError("\(folder.path) is not a folder; --from takes the folder that holds the files")
            }
            let targets = ids.isEmpty ? store.detect(in: folder) : ids
            if targets.isEmpty { throw DataSourceError.nothingToImport(folder: folder.path) }
            for id in targets {
                let r = try store.import(id, from: folder)
                let how = Set(r.verification.values).sorted().joined(separator: ", ")
                print("\(id): imported into \(r.location.path) (\(how))")
            }
        }
    }

    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure hashing and COCO annotation reading speed.",
            discussion: """
            Hashes a 256 MiB buffer with SHA-256 and MD5, then writes a synthetic data set in the COCO layout \
            at COCO 2014 train+val scale (123,287 images, ~900k instances with polygons, 616k captions) to a \
            temporary folder and reads it back with the streaming readers. Rates are compared with the \
            machine's ~45 GB/s DRAM bandwidth, the physical limit for a single pass over the bytes. Rates use \
            the thread's CPU time, so they stay meaningful on a shared machine; wall-clock times are shown too.
            """)

        @Option(help: "Images in the synthetic set.") var images = 123_287
        @Option(help: ArgumentHelp("Folder for the synthetic files (default: a temporary folder, removed afterwards).", valueName: "dir"))
        var work: String?

        static func cpuTime() -> Double {
            var ts = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
            return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
        }

        func run() throws {
            let bandwidth = 45e9
            var buffer = [UInt8](repeating: 0, count: 256 << 20)
            var rng = SplitMix64(seed: 1)
            buffer.withUnsafeMutableBytes { raw in
                let words = raw.bindMemory(to: UInt64.self)
                for i in words.indices { words[i] = rng.next() }
            }
            for (name, hash) in [("sha256", { (b: UnsafeRawBufferPointer) in var h = SHA256(); h.update(b); _ = h.finalize() }),
                                 ("md5", { (b: UnsafeRawBufferPointer) in var h = MD5(); h.update(b); _ = h.finalize() })] {
                let (t, c) = (Date(), Self.cpuTime())
                buffer.withUnsafeBytes { hash($0) }
                let rate = Double(buffer.count) / (Self.cpuTime() - c)
                print(String(format: "%@: %.0f MB/s per core (%.2f%% of DRAM bandwidth; wall %.2f s for 256 MiB)",
                             name, rate / 1e6, 100 * rate / bandwidth, Date().timeIntervalSince(t)))
            }
            let dir = work.map { URL(fileURLWithPath: $0) }
                ?? FileManager.default.temporaryDirectory.appendingPathComponent("mirage-bench-\(UUID().uuidString)")
            defer { if work == nil { try? FileManager.default.removeItem(at: dir) } }
            var t = Date()
            let c0 = Self.cpuTime()
            var config = SyntheticCOCO.coco2014Scale()
            config.images = images
            let files = try config.write(to: dir)
            print(String(format: "wrote synthetic set: %d images, %d instances, %d captions in %.1f s CPU (wall %.1f s)",
                         images, files.instanceCount, files.captionCount, Self.cpuTime() - c0, Date().timeIntervalSince(t)))
            for (name, url, read) in [("instances", files.instances, { (u: URL) throws -> Int in try COCOReader.instances(at: u).annotations.count }),
                                      ("captions", files.captions, { (u: URL) throws -> Int in try COCOReader.captions(at: u).captions.count })] {
                let bytes = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.doubleValue ?? 0
                t = Date()
                let c = Self.cpuTime()
                let n = try read(url)
                let s = Self.cpuTime() - c
                print(String(format: "read %@: %d records, %.0f MB in %.2f s CPU (wall %.2f s) = %.0f MB/s (%.2f%% of DRAM bandwidth)",
                             name, n, bytes / 1e6, s, Date().timeIntervalSince(t), bytes / s / 1e6, 100 * bytes / s / bandwidth))
            }
        }
    }
}
