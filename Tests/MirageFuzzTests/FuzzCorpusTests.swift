import Foundation
import MirageFuzzTargets
import MirageTestSupport
import Testing

/// Replays every committed fuzz input through the same functions libFuzzer calls (Fuzz/, docs/fuzzing.md),
/// without the sanitizer build: `Fuzz/corpus/<target>/` (seeds and the minimised corpus) and
/// `Fuzz/regressions/<target>/` (reproducers of fixed findings). A trap or crash in a parser aborts this
/// test process; a hang shows as the per-file time limit. Seeds named `valid-*` must also parse.
@Suite struct FuzzCorpusTests {
    static let fuzzFolder = SharedData.repositoryRoot.appendingPathComponent("Fuzz")

    /// Files directly inside `Fuzz/<kind>/<target>/`, sorted; none when the folder is absent.
    static func files(_ kind: String, _ target: String) -> [URL] {
        let folder = fuzzFolder.appendingPathComponent(kind).appendingPathComponent(target)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { folder.appendingPathComponent($0) }
    }

    /// Runs each file through `target`; returns (file name, outcome) pairs.
    static func replay(_ target: FuzzTarget, _ urls: [URL]) throws -> [(String, FuzzOutcome)] {
        try urls.map { url in
            let data = try Data(contentsOf: url)
            let start = Date()
            let outcome = target.run(data)
            let seconds = Date().timeIntervalSince(start)
            // libFuzzer's per-input timeout in Fuzz/run.sh is 10 s; debug builds are slower, so allow more.
            #expect(seconds < 30, "\(target.name)/\(url.lastPathComponent) took \(seconds) s")
            // A rejection must say what is wrong.
            if case .rejected(let message) = outcome {
                #expect(!message.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
                        "\(target.name)/\(url.lastPathComponent): the error has no message")
            }
            return (url.lastPathComponent, outcome)
        }
    }

    @Test func everyTargetHasSeeds() {
        #expect(FuzzTargets.all.count == Set(FuzzTargets.all.map(\.name)).count, "target names must be unique")
        for target in FuzzTargets.all {
            let seeds = Self.files("corpus", target.name)
            #expect(seeds.contains { $0.lastPathComponent.hasPrefix("valid-") },
                    "Fuzz/corpus/\(target.name)/ needs at least one valid-* seed")
            for url in seeds {
                let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
                #expect(size <= target.maxLength, "\(url.lastPathComponent) is longer than \(target.name)'s max_len \(target.maxLength)")
            }
        }
        // Every corpus folder belongs to a target (a renamed target must move its corpus).
        let folders = (try? FileManager.default.contentsOfDirectory(atPath: Self.fuzzFolder.appendingPathComponent("corpus").path)) ?? []
        for folder in folders where !folder.hasPrefix(".") {
            #expect(FuzzTargets.named(folder) != nil, "Fuzz/corpus/\(folder) has no target of that name")
        }
    }

    @Test(arguments: FuzzTargets.all.map(\.name))
    func corpusReplays(_ name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        let urls = Self.files("corpus", name)
        #expect(!urls.isEmpty, "Fuzz/corpus/\(name)/ is empty")
        for (file, outcome) in try Self.replay(target, urls) where file.hasPrefix("valid-") {
            #expect(outcome == .accepted, "\(name)/\(file) is a valid seed but was rejected: \(outcome)")
        }
    }

    @Test(arguments: FuzzTargets.all.map(\.name))
    func regressionsReplay(_ name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        _ = try Self.replay(target, Self.files("regressions", name))
    }
}
