import Foundation
import MirageEngine

/// Finds the vision tower folder a checkpoint names but does not contain (the original LLaVA layout's
/// `mm_vision_tower`, e.g. `openai/clip-vit-large-patch14-336`). In order: the folder given
/// (`--vision-tower DIR`, `LoadOptions.visionTower`); the name itself when it is a folder path; each folder
/// of `MIRAGE_VISION_TOWERS` (colon-separated), then the model's parent folder, holding the name or its
/// last component; the Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`: `models--openai--clip-vit-large-patch14-336/snapshots/*/`).
public enum VisionTowerLocator {
    /// Colon-separated folders that hold vision towers by name.
    public static let environmentVariable = "MIRAGE_VISION_TOWERS"

    public static func locate(_ name: String, model: URL, given: URL?,
                              environment: [String: String] = ProcessInfo.processInfo.environment) throws -> URL {
        let fm = FileManager.default
        func isTower(_ url: URL) -> Bool { fm.fileExists(atPath: url.appendingPathComponent("config.json").path) }
        if let given {
            guard isTower(given) else {
                throw ModelError.invalidInput("the vision tower folder \(given.path) has no config.json: give the folder of "
                    + "\(name) as Hugging Face writes it (config.json, weights, preprocessor_config.json)")
            }
            return given
        }
        var looked: [String] = []
        func check(_ url: URL) -> URL? {
            looked.append(url.path)
            return isTower(url) ? url : nil
        }
        let last = (name as NSString).lastPathComponent
        if name.hasPrefix("/") || name.hasPrefix("~") || name.hasPrefix(".") {
            if let found = check(URL(fileURLWithPath: (name as NSString).expandingTildeInPath)) { return found }
        }
        var roots = (environment[environmentVariable] ?? "").split(separator: ":").map {
            URL(fileURLWithPath: (String($0) as NSString).expandingTildeInPath)
        }
        roots.append(model.standardizedFileURL.deletingLastPathComponent())
        for root in roots {
            for candidate in Set([name, last]).sorted() where !candidate.isEmpty {
                if let found = check(root.appendingPathComponent(candidate)) { return found }
            }
        }
        let hub: URL
        if let cache = environment["HF_HUB_CACHE"], !cache.isEmpty {
            hub = URL(fileURLWithPath: cache)
        } else if let home = environment["HF_HOME"], !home.isEmpty {
            hub = URL(fileURLWithPath: home).appendingPathComponent("hub")
        } else {
            hub = fm.homeDirectoryForCurrentUser.appendingPathComponent(".cache/huggingface/hub")
        }
        // huggingface_hub's cache layout: models--{org}--{name}/snapshots/{revision}/, refs/main naming the
        // revision the last download resolved (huggingface/huggingface_hub, docs "Manage huggingface_hub cache-system").
        let repo = hub.appendingPathComponent("models--" + name.replacingOccurrences(of: "/", with: "--"))
        let snapshots = repo.appendingPathComponent("snapshots")
        var revisions = ((try? fm.contentsOfDirectory(atPath: snapshots.path)) ?? []).sorted()
        if let main = try? String(contentsOf: repo.appendingPathComponent("refs/main"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines), revisions.contains(main) {
            revisions = [main] + revisions.filter { $0 != main }
        }
        if revisions.isEmpty { looked.append(snapshots.path + "/*") }
        for revision in revisions {
            if let found = check(snapshots.appendingPathComponent(revision)) { return found }
        }
        throw ModelError.invalidInput(
            "the model in \(model.path) needs the vision tower \(name), which is not in its folder, and Mirage "
            + "found it nowhere; looked in: \(looked.joined(separator: ", ")). Give its folder with --vision-tower DIR "
            + "(vision_tower: in an experiment file), put it beside the model as \(last), list its parent folder in "
            + "\(environmentVariable), or download it into the Hugging Face cache: `huggingface-cli download \(name)`")
    }
}
