import Foundation
import MirageData

/// The model organism shipped in the repository (docs/organism.md): a small LLaVA model trained from
/// scratch by Scripts/organism on a generated world of COCO objects (Models/organism), and its held-out
/// set (Annotations/organism: 150 images of seeds the training never saw, COCO instances, POPE questions).
enum Organism {
    static let modelFolder = "Models/organism"
    static let setFolder = "Annotations/organism"
    /// Held-out images the demo runs by default.
    static let defaultCount = 100
    /// CHAIR's max_new_tokens for the organism: its captions run to about 50 tokens (one sentence per object).
    static let captionTokens = 80

    struct Files {
        var model: URL
        var images: URL
        var instances: URL
        var pope: [POPESplit: URL]
    }

    /// The organism in the current directory, else in the checkout the binary was built in (the binary's
    /// ancestor folders), or an error saying where to run from.
    static func locate() throws -> Files {
        var candidates = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath)]
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            candidates.append(dir)
            dir = dir.deletingLastPathComponent()
        }
        let fm = FileManager.default
        for root in candidates {
            let model = root.appendingPathComponent(modelFolder), set = root.appendingPathComponent(setFolder)
            guard fm.fileExists(atPath: model.appendingPathComponent("config.json").path),
                  fm.fileExists(atPath: set.appendingPathComponent("instances_organism.json").path) else { continue }
            var pope: [POPESplit: URL] = [:]
            for split in POPESplit.allCases {
                let url = set.appendingPathComponent("pope/coco_pope_\(split.rawValue).json")
                if fm.fileExists(atPath: url.path) { pope[split] = url }
            }
            return Files(model: model, images: set.appendingPathComponent("images"),
                         instances: set.appendingPathComponent("instances_organism.json"), pope: pope)
        }
        throw OrganismError.notFound(searched: candidates.first!.path)
    }
}

enum OrganismError: Error, CustomStringConvertible {
    case notFound(searched: String)

    var description: String {
        switch self {
        case .notFound(let searched):
            return "the model organism (\(Organism.modelFolder) and \(Organism.setFolder) of Mirage's repository) is not in "
                + "\(searched) nor in the checkout this binary was built in; run `mirage demo` from the repository, "
                + "or pass --random-model for the synthetic random-weight model"
        }
    }
}
