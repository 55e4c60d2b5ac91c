import Foundation
import MirageData
import MirageMetrics

/// The images an experiment runs on: a folder of COCO images plus the annotation files the user names
/// (COCO instances JSON for file names and ids, and/or CHAIR's prebuilt `coco2014_gt_objects.json`).
public struct ImageSet: Sendable {
    public var folder: URL?
    /// image id → file name, from the instances files.
    public var fileNames: [Int: String]
    /// Every image id the annotation files know, sorted (what `images: {sample: N}` draws from):
    /// the instances files' images when given, else the ground truth's.
    public var annotatedIDs: [Int]
    /// Names in the folder, read once.
    private var folderNames: Set<String>

    public init(folder: URL?, instances: [URL] = [], groundTruth: ChairGroundTruth? = nil) throws {
        self.folder = folder
        var names: [Int: String] = [:]
        for url in instances {
            for image in try COCOReader.instances(at: url).images { names[image.id] = image.fileName }
        }
        fileNames = names
        if !names.isEmpty {
            annotatedIDs = names.keys.sorted()
        } else {
            annotatedIDs = groundTruth.map { $0.objectsByImage.keys.sorted() } ?? []
        }
        if let folder {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
                throw RunnerError.configuration("image folder \(folder.path) does not exist; name the folder holding the COCO images (images: in the experiment, or --images DIR)")
            }
            folderNames = Set((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
        } else {
            folderNames = []
        }
    }

    /// The file names tried for an image id, in order: the instances file's `file_name`, then COCO's
    /// `COCO_val2014_%012d.jpg`, `COCO_train2014_%012d.jpg` and `%012d.jpg` (COCO 2017).
    public func candidateNames(for id: Int) -> [String] {
        let digits = String(format: "%012d", id)
        return (fileNames[id].map { [$0] } ?? []) + ["COCO_val2014_\(digits).jpg", "COCO_train2014_\(digits).jpg", "\(digits).jpg"]
    }

    /// The image file of `id`, or nil when the folder has none of the candidate names.
    public func url(for id: Int) -> URL? {
        guard let folder else { return nil }
        for name in candidateNames(for: id) where folderNames.contains(name) {
            return folder.appendingPathComponent(name)
        }
        return nil
    }

    /// The failure reason recorded for an image that is not in the folder.
    public func missingReason(for id: Int) -> String {
        guard let folder else { return "no image folder given (images: DIR in the experiment or --images DIR)" }
        return "image file not found in \(folder.path) (tried \(candidateNames(for: id).joined(separator: ", ")))"
    }
}

/// Seeded sampling of image ids that never depends on input order.
public enum ImageSampler {
    /// `count` ids from `ids`: the ids are de-duplicated and sorted, shuffled by a partial Fisher–Yates
    /// with SplitMix64(`seed`) (position i swaps with i + uniform(n − i)), and the first `count` are
    /// returned sorted. Asking for more ids than there are returns all of them.
    public static func sample(_ ids: [Int], count: Int, seed: UInt64) -> [Int] {
        var pool = Array(Set(ids)).sorted()
        let take = min(count, pool.count)
        var rng = SplitMix64(seed: seed)
        for i in 0..<take {
            let j = i + rng.uniform(pool.count - i)
            pool.swapAt(i, j)
        }
        return pool.prefix(take).sorted()
    }
}

/// `--shard i/n`: which part of the items this process runs.
public struct Shard: Sendable, Equatable, CustomStringConvertible {
    public var index: Int
    public var count: Int

    public init(index: Int, count: Int) throws {
        guard count >= 1, index >= 0, index < count else { throw RunnerError.invalidShard("\(index)/\(count)") }
        self.index = index; self.count = count
    }

    /// Parses `i/n`.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else { throw RunnerError.invalidShard(text) }
        do { try self.init(index: i, count: n) } catch { throw RunnerError.invalidShard(text) }
    }

    public var description: String { "\(index)/\(count)" }

    /// The shard an image's items belong to: SplitMix64 of the image id, mod n. Every item of an image lands
    /// in the same shard (one image embedding per shard), whatever the protocol or item order.
    public static func of(imageID: Int, count: Int) -> Int {
        var rng = SplitMix64(seed: UInt64(bitPattern: Int64(imageID)))
        return Int(rng.next() % UInt64(count))
    }

    public func contains(imageID: Int) -> Bool { Shard.of(imageID: imageID, count: count) == index }
}
