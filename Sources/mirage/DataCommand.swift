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
          mirage data import coco-annotations-2014 --from ~/Downloads   # holds annotations_trainval2014.zip
        """,
        subcommands: [List.self, Fetch.self, Import.self]
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
                    if let origin = try store.source(id).origin {
                        let size = origin.size.map { " (\(List.size($0)))" } ?? ""
                        print("\(id): downloading \(origin.url.absoluteString)\(size)")
                    }
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
}
