import ArgumentParser
import Foundation
import MirageData

/// `mirage-bench data`: SHA-256/MD5 throughput and COCO annotation reading at COCO 2014 scale.
struct BenchDataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Measure hashing and COCO annotation reading speed (MirageData).",
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

    static func threadCPUSeconds() -> Double {
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
            let (t, c) = (Date(), Self.threadCPUSeconds())
            buffer.withUnsafeBytes { hash($0) }
            let rate = Double(buffer.count) / (Self.threadCPUSeconds() - c)
            print(String(format: "%@: %.0f MB/s per core (%.2f%% of DRAM bandwidth; wall %.2f s for 256 MiB)",
                         name, rate / 1e6, 100 * rate / bandwidth, Date().timeIntervalSince(t)))
        }
        let dir = work.map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("mirage-bench-\(UUID().uuidString)")
        defer { if work == nil { try? FileManager.default.removeItem(at: dir) } }
        var t = Date()
        let c0 = Self.threadCPUSeconds()
        var config = SyntheticCOCO.coco2014Scale()
        config.images = images
        let files = try config.write(to: dir)
        print(String(format: "wrote synthetic set: %d images, %d instances, %d captions in %.1f s CPU (wall %.1f s)",
                     images, files.instanceCount, files.captionCount, Self.threadCPUSeconds() - c0, Date().timeIntervalSince(t)))
        for (name, url, read) in [("instances", files.instances, { (u: URL) throws -> Int in try COCOReader.instances(at: u).annotations.count }),
                                  ("captions", files.captions, { (u: URL) throws -> Int in try COCOReader.captions(at: u).captions.count })] {
            let bytes = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.doubleValue ?? 0
            t = Date()
            let c = Self.threadCPUSeconds()
            let n = try read(url)
            let s = Self.threadCPUSeconds() - c
            print(String(format: "read %@: %d records, %.0f MB in %.2f s CPU (wall %.2f s) = %.0f MB/s (%.2f%% of DRAM bandwidth)",
                         name, n, bytes / 1e6, s, Date().timeIntervalSince(t), bytes / s / 1e6, 100 * bytes / s / bandwidth))
        }
    }
}
