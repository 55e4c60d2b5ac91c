import ArgumentParser
import Foundation
import MirageEngine
import MirageImaging
import MirageModels

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file named on the command line that cannot be read as one: missing, a directory, a pipe or device,
/// or unreadable. The message names the option, the path, what it is and what to give instead.
struct InputFileError: Error, CustomStringConvertible {
    let description: String
}

/// The checks every command runs on the files it is given before reading them, so a directory, `/dev/null`
/// or a named pipe gets one clear message instead of whatever the reader's system error says.
enum InputFile {
    /// Checks that `path` (tilde expanded) is a readable regular file (symbolic links followed) and returns
    /// the expanded path. `option` names where the path came from in messages (e.g. "--captions").
    @discardableResult
    static func check(_ path: String, option: String) throws -> String {
        let expanded = (path as NSString).expandingTildeInPath
        var info = stat()
        guard stat(expanded, &info) == 0 else {
            let reason = errno == ENOENT || errno == ENOTDIR ? "does not exist" : "cannot be read (\(String(cString: strerror(errno))))"
            throw InputFileError(description: "\(option) \(path) \(reason): check the path")
        }
        let kind = info.st_mode & S_IFMT
        guard kind == S_IFREG else {
            let what: String
            switch kind {
            case S_IFDIR: what = "is a directory"
            case S_IFIFO: what = "is a named pipe (FIFO)"
            case S_IFCHR: what = "is a character device"
            case S_IFBLK: what = "is a block device"
            case S_IFSOCK: what = "is a socket"
            default: what = "is not a regular file"
            }
            let fix = kind == S_IFDIR ? "give the path of a file in it" : "save the data to a regular file first and give its path"
            throw InputFileError(description: "\(option) \(path) \(what), not a file: \(fix)")
        }
        guard access(expanded, R_OK) == 0 else {
            throw InputFileError(description: "\(option) \(path) cannot be read: permission denied; "
                                 + "check its permissions (e.g. chmod u+r)")
        }
        return expanded
    }

    /// Checks that `path` is a directory; `option` names it in messages.
    @discardableResult
    static func checkDirectory(_ path: String, option: String) throws -> String {
        let expanded = (path as NSString).expandingTildeInPath
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: expanded, isDirectory: &isDirectory) else {
            throw InputFileError(description: "\(option) \(path) does not exist: check the path")
        }
        guard isDirectory.boolValue else {
            throw InputFileError(description: "\(option) \(path) is a file; \(option) takes a folder")
        }
        return expanded
    }
}

extension RunCommand {
    /// The files and folders named on the command line, checked before anything is loaded (paths inside
    /// an experiment file are the runner's to read).
    func checkInputFiles() throws {
        if let experimentFile { try InputFile.check(experimentFile, option: "experiment file") }
        for file in instances { try InputFile.check(file, option: "--instances") }
        for file in captions { try InputFile.check(file, option: "--captions") }
        if let groundTruth { try InputFile.check(groundTruth, option: "--ground-truth") }
        if let images { try InputFile.checkDirectory(images, option: "--images") }
        for folder in model { try InputFile.checkDirectory(folder, option: "--model") }
    }
}

/// Reads and validates every model folder's config.json before a run starts, so a broken config stops the
/// command at once with the engine's message (file, field, allowed range) instead of after the models
/// before it have run.
func checkModelConfigs(_ folders: [String], visionTower: String? = nil) throws {
    for folder in folders {
        _ = try ModelFamilies.shape(of: URL(fileURLWithPath: (folder as NSString).expandingTildeInPath),
                                    visionTower: visionTower.map { URL(fileURLWithPath: ($0 as NSString).expandingTildeInPath) })
    }
}

/// `--max-image-pixels`: the decoded-image size limit of the commands that read images (`generate --image`,
/// `inspect pixels`, `run`, `demo`).
struct PixelLimitOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Refuse images whose header declares more pixels than this, before decoding them (default \(ImageDecoder.defaultMaxPixels), where Pillow raises DecompressionBombError; 0 turns the check off). Also read from \(ImageDecoder.maxPixelsEnvironmentVariable).",
        valueName: "n"))
    var maxImagePixels: Int?

    func validate() throws {
        if let maxImagePixels, maxImagePixels < 0 {
            throw ValidationError("--max-image-pixels must be 0 (no limit) or a positive pixel count (got \(maxImagePixels))")
        }
        _ = try limit()
    }

    /// The option's value, else the environment variable's, else nil (the decoder's default).
    func limit(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Int? {
        if let maxImagePixels { return maxImagePixels }
        guard let text = environment[ImageDecoder.maxPixelsEnvironmentVariable] else { return nil }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)), value >= 0 else {
            throw ValidationError("\(ImageDecoder.maxPixelsEnvironmentVariable) must be 0 (no limit) or a positive pixel count (got '\(text)')")
        }
        return value
    }

    /// Sets `ImageDecoder.maxPixels` for this process.
    func apply() throws {
        if let value = try limit() { ImageDecoder.maxPixels = value }
    }
}

/// Worker threads: more than the machine's CPUs only slows the pool down (workers wait for a core), so a
/// larger request is lowered to the CPU count with a note on standard error.
enum ThreadCount {
    static var available: Int { ProcessInfo.processInfo.activeProcessorCount }

    static func capped(_ requested: Int?, option: String = "--threads") -> Int {
        let cpus = max(1, available)
        guard let requested else { return cpus }
        if requested > cpus {
            FileHandle.standardError.write(Data("note: \(option) \(requested) is more than this machine's \(cpus) CPU\(cpus == 1 ? "" : "s"); using \(cpus)\n".utf8))
            return cpus
        }
        return requested
    }
}

/// Parses a seed option (`--seed 7`, `--seed -1` or `--seed=-1`): a seed is an unsigned 64-bit integer.
func parseSeed(_ text: String) throws -> UInt64 {
    guard let value = UInt64(text) else {
        throw ValidationError("seed must be a non-negative integer (0 to \(UInt64.max)); got '\(text)'")
    }
    return value
}
