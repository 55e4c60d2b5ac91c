import Foundation
import Testing

/// Where the project's reference data lives for tests: `../shared/data` beside the repository
/// (CI has the same layout). Tests that need it are disabled with a clear message when it is absent,
/// e.g. `@Test(.enabled(if: SharedData.isAvailable, SharedData.missingMessage))`.
public enum SharedData {
    /// The repository root, derived from this file's location (Tests/MirageTestSupport/SharedData.swift).
    public static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `../shared/data`, or `$MIRAGE_SHARED_DATA` when set.
    public static let root: URL = {
        if let override = ProcessInfo.processInfo.environment["MIRAGE_SHARED_DATA"], !override.isEmpty {
            return URL(fileURLWithPath: override)
        }
        return repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/data")
    }()

    public static var isAvailable: Bool {
        FileManager.default.fileExists(atPath: root.appendingPathComponent("README.md").path)
    }

    public static let missingMessage: Comment =
        "skipped: reference data not found at ../shared/data (set MIRAGE_SHARED_DATA to its location)"

    /// A file or folder below the shared data root, e.g. `SharedData.url("chair/synonyms.txt")`.
    public static func url(_ relativePath: String) -> URL { root.appendingPathComponent(relativePath) }

    /// True when every named path exists below the root.
    public static func has(_ relativePaths: String...) -> Bool {
        relativePaths.allSatisfy { FileManager.default.fileExists(atPath: url($0).path) }
    }

    /// The shared `tools/` folder (e.g. `nltk-oracle`).
    public static var toolsRoot: URL { root.deletingLastPathComponent().appendingPathComponent("tools") }

    /// WordNet 3.0 where Debian's `wordnet-base` installs it.
    public static let wordnet = "/usr/share/wordnet"

    /// What a CHAIR-scored `mirage run` over real COCO images needs: the images, CHAIR's ground truth and
    /// synonyms, Punkt, and WordNet.
    public static var chairRunAvailable: Bool {
        has("coco/images", "chair/coco2014_gt_objects.json", "chair/synonyms.txt", "nltk/punkt_tab")
            && FileManager.default.fileExists(atPath: wordnet + "/index.noun")
    }

    public static let chairRunMissingMessage: Comment =
        "skipped: needs ../shared/data (coco/images, chair/, nltk/) and WordNet 3.0 in /usr/share/wordnet (Debian wordnet-base)"
}

/// Locates executables built alongside the test runner (same products folder).
public enum BuiltProducts {
    public static var directory: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    }

    /// The `mirage` executable of this build (the researcher's tool).
    public static var mirage: URL? { executable("mirage") }

    /// The `mirage-bench` executable of this build (performance measurements).
    public static var mirageBench: URL? { executable("mirage-bench") }

    /// An executable of this build, searched in the test runner's folder and its parents (the runner may
    /// sit inside a `.xctest` bundle).
    public static func executable(_ name: String) -> URL? {
        var dir = directory
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent(name)
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDir), !isDir.boolValue {
                return candidate
            }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }
}

/// Runs a built executable and captures its output.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

public func runProcess(_ executable: URL, _ arguments: [String], stdin: Data? = nil,
                       environment: [String: String]? = nil, currentDirectory: URL? = nil) throws -> ProcessResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if let environment { process.environment = environment }
    if let currentDirectory { process.currentDirectoryURL = currentDirectory }
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    // Drain both pipes on other threads (while standard input is written) so a chatty child never
    // blocks on a full pipe. Each box is written by one thread and read after `group.wait()`.
    final class Box: @unchecked Sendable { var data = Data() }
    let outBox = Box(), errBox = Box()
    let outHandle = out.fileHandleForReading, errHandle = err.fileHandleForReading
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { outBox.data = outHandle.readDataToEndOfFile(); group.leave() }
    group.enter()
    DispatchQueue.global().async { errBox.data = errHandle.readDataToEndOfFile(); group.leave() }
    if let stdin { input.fileHandleForWriting.write(stdin) }
    try? input.fileHandleForWriting.close()
    process.waitUntilExit()
    group.wait()
    return ProcessResult(status: process.terminationStatus,
                         stdout: String(decoding: outBox.data, as: UTF8.self),
                         stderr: String(decoding: errBox.data, as: UTF8.self))
}

/// Every temporary file and folder of one test process lives under one folder, `mirage-tests-<pid>` in the
/// system's temporary directory, which is removed when the process exits; folders that earlier test
/// processes left behind (killed, or crashed before exiting) are removed on first use. Tests name their
/// folders with `TestTemporary.url("prefix")` instead of `FileManager.default.temporaryDirectory`.
public enum TestTemporary {
    public static let root: URL = {
        let fm = FileManager.default
        let system = fm.temporaryDirectory
        let pid = getpid()
        for name in (try? fm.contentsOfDirectory(atPath: system.path)) ?? [] where name.hasPrefix("mirage-tests-") {
            guard let other = Int32(name.dropFirst("mirage-tests-".count)), other != pid else { continue }
            // kill(pid, 0) fails with ESRCH only when no such process exists.
            if kill(other, 0) != 0 && errno == ESRCH { try? fm.removeItem(at: system.appendingPathComponent(name)) }
        }
        let url = system.appendingPathComponent("mirage-tests-\(pid)")
        try? fm.createDirectory(at: url, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: TestTemporary.root) }
        return url
    }()

    /// A fresh path below `root` (not created): `<root>/<prefix>-<UUID>`.
    public static func url(_ prefix: String) -> URL {
        root.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    }
}
