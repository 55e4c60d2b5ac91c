import ArgumentParser
import Foundation
import MirageData
import MirageEngine

/// What `models convert` and `models apply-delta` share: the output folder, the files copied beside the
/// weights, shard sizes, progress and the closing summary with sizes and checksums.
enum ModelFolderOutput {
    /// Prepares `path` as an output folder: created if absent; an existing non-empty folder only with `force`.
    static func prepare(_ path: String, force: Bool) throws -> URL {
        let folder = URL(fileURLWithPath: (path as NSString).expandingTildeInPath).standardizedFileURL
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: folder.path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw ValidationError("\(folder.path) is a file; --out must name a folder")
            }
            let existing = (try? fm.contentsOfDirectory(atPath: folder.path)) ?? []
            if !existing.isEmpty && !force {
                throw ValidationError("\(folder.path) is not empty; choose another --out or pass --force to overwrite its files")
            }
            // Stale weight files of an earlier output would mix with the new ones.
            for name in existing where isWeightFile(name) {
                try fm.removeItem(at: folder.appendingPathComponent(name))
            }
        } else {
            do { try fm.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
                throw ValidationError("cannot create \(folder.path): \(error.localizedDescription)")
            }
        }
        return folder
    }

    /// Weight files and their indexes, which are never copied as side files.
    static func isWeightFile(_ name: String) -> Bool {
        [".safetensors", ".bin", ".pth", ".pt", ".ckpt"].contains { name.hasSuffix($0) }
            || name.hasSuffix(".index.json")
    }

    /// Copies the folder's config, tokenizer, processor and template files (top-level `.json`, `.txt`,
    /// `.model`, `.jinja`, `.tiktoken` files that are not weights or weight indexes) into `out`.
    static func copySideFiles(from input: URL, to out: URL) throws -> [String] {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: input.path, isDirectory: &isDirectory), isDirectory.boolValue else { return [] }
        let names = ((try? fm.contentsOfDirectory(atPath: input.path)) ?? []).sorted().filter { name in
            [".json", ".txt", ".model", ".jinja", ".tiktoken"].contains { name.hasSuffix($0) } && !isWeightFile(name)
        }
        for name in names {
            let source = input.appendingPathComponent(name), target = out.appendingPathComponent(name)
            if source.standardizedFileURL == target.standardizedFileURL { continue }
            try? fm.removeItem(at: target)
            do { try fm.copyItem(at: source, to: target) } catch {
                throw ModelError.writeFailed(path: target.path, reason: error.localizedDescription)
            }
        }
        return names
    }

    /// "5GB", "500MB", "64KB", "2GiB" or a byte count → bytes (transformers' units: KB = 1000, KiB = 1024).
    static func parseSize(_ text: String) -> Int? {
        let units: [(String, Int)] = [("KIB", 1 << 10), ("MIB", 1 << 20), ("GIB", 1 << 30),
                                      ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("B", 1)]
        let upper = text.uppercased().trimmingCharacters(in: .whitespaces)
        for (suffix, factor) in units where upper.hasSuffix(suffix) {
            guard let n = Double(upper.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), n > 0 else { return nil }
            let bytes = n * Double(factor)
            return bytes < 9e18 ? Int(bytes) : nil
        }
        return Int(upper).flatMap { $0 > 0 ? $0 : nil }
    }

    /// Progress on standard error when it is a terminal: percent of bytes written.
    final class Progress {
        let label: String
        let interactive = isatty(STDERR_FILENO) != 0
        var lastPercent = -1
        init(_ label: String) { self.label = label }
        func update(_ done: Int, _ total: Int) {
            guard interactive else { return }
            let percent = total > 0 ? done * 100 / total : 100
            if percent != lastPercent {
                lastPercent = percent
                FileHandle.standardError.write(Data("\r\(label): \(percent)% of \(formatBytes(total))".utf8))
            }
        }
        func finish() { if interactive && lastPercent >= 0 { FileHandle.standardError.write(Data("\n".utf8)) } }
    }

    static func formatBytes(_ n: Int) -> String {
        let value = Double(n)
        if value >= 1e9 { return String(format: "%.2f GB", value / 1e9) }
        if value >= 1e6 { return String(format: "%.1f MB", value / 1e6) }
        if value >= 1e3 { return String(format: "%.1f KB", value / 1e3) }
        return "\(n) B"
    }

    /// One line per written file: name, size and SHA-256 (read back from disk).
    static func printSummary(_ files: [URL], copied: [String], folder: URL) throws {
        for url in files {
            let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
            let digest = try SHA256.hex(ofFile: url)
            print("  \(url.lastPathComponent)  \(size) bytes  sha256 \(digest)")
        }
        if !copied.isEmpty { print("  copied: \(copied.joined(separator: ", "))") }
        // The folder must open as Mirage opens model folders (headers validated, every indexed tensor present).
        let check = try TensorStore(folder: folder)
        print("checked: \(folder.path) opens with \(check.tensorNames.count) tensors")
    }
}
