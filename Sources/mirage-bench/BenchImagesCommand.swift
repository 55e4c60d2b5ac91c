import ArgumentParser
import Foundation
import MirageCLISupport
import MirageEngine
import MirageImaging

/// `mirage-bench images`: JPEG/PNG decoding and preprocessing time per image.
struct BenchImagesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "images",
        abstract: "Time image decoding and CLIP/SigLIP preprocessing (budget: < 10 ms per 640x480 JPEG).",
        discussion: """
        For each image, best of --repeat on one thread: decode (libjpeg-turbo / libpng, Pillow's settings, \
        EXIF orientation, RGB), then preprocessing (resize, crop, normalize to channel-first float32). \
        Without --model the preprocessing is LLaVA-1.5's CLIP-336 (shortest edge 336, bicubic, crop 336). \
        Decoding and resizing are compute-bound integer work, so no bandwidth or FLOP ratio is given; \
        the output tensor's size is shown for scale.

        EXAMPLE:
          swift build -c release
          .build/release/mirage-bench images --image cat.jpg
          .build/release/mirage-bench images --images ../shared/data/coco/images
          .build/release/mirage-bench images --images DIR --model ~/siglip
        """)

    @Option(name: .long, help: ArgumentHelp("An image to time (repeatable).", valueName: "file"))
    var image: [String] = []

    @Option(name: .long, help: ArgumentHelp("A folder: time every .jpg/.jpeg/.png in it.", valueName: "dir"))
    var images: String?

    @Option(name: .long, help: ArgumentHelp("Model folder whose preprocessor_config.json to use (default: CLIP-336).", valueName: "dir"))
    var model: String?

    @Flag(name: .long, help: "Pad to a square first (LLaVA's expand2square).")
    var padSquare = false

    @Option(name: .customLong("repeat"), help: "Timed rounds per image; the best is reported.")
    var repetitions = 20

    func run() throws {
        try runReportingErrors {
            var paths = image
            if let images {
                let names = try FileManager.default.contentsOfDirectory(atPath: images).sorted()
                    .filter { ["jpg", "jpeg", "png"].contains(($0 as NSString).pathExtension.lowercased()) }
                paths += names.map { (images as NSString).appendingPathComponent($0) }
            }
            guard !paths.isEmpty else { throw ValidationError("give --image FILE or --images DIR") }
            var config = ImagePreprocessorConfig.clip
            config.size = .shortestEdge(336)
            (config.cropHeight, config.cropWidth) = (336, 336)
            if let model { config = try ImagePreprocessorConfig.load(modelDirectory: (model as NSString).expandingTildeInPath) }
            let processor = ImagePreprocessor(config: config)
            print("\(config.processorType), resample \(config.resample), repeat \(repetitions), best round per image")
            var totals: [Double] = []
            for path in paths {
                let data = try Data(contentsOf: URL(fileURLWithPath: path))
                var bestDecode = Double.infinity, bestProcess = Double.infinity
                var decoded = try ImageDecoder.decode(data, name: path)
                var shape = [0, 0, 0]
                for _ in 0..<max(1, repetitions) {
                    let (d, decodeSeconds) = try timed { try ImageDecoder.decode(data, name: path) }
                    let (t, processSeconds) = try timed { try processor.process(d, padToSquare: padSquare) }
                    decoded = d
                    shape = [t.channels, t.height, t.width]
                    bestDecode = min(bestDecode, decodeSeconds)
                    bestProcess = min(bestProcess, processSeconds)
                }
                totals.append(bestDecode + bestProcess)
                print(String(format: "%@  %dx%d  decode %.2f ms  preprocess %.2f ms  total %.2f ms  -> [%d, %d, %d]",
                             (path as NSString).lastPathComponent, decoded.width, decoded.height,
                             bestDecode * 1e3, bestProcess * 1e3, (bestDecode + bestProcess) * 1e3,
                             shape[0], shape[1], shape[2]))
            }
            if totals.count > 1 {
                let sorted = totals.sorted()
                print(String(format: "%d images: median %.2f ms, max %.2f ms per image (budget 10 ms for 640x480)",
                             sorted.count, sorted[sorted.count / 2] * 1e3, sorted.last! * 1e3))
            }
        }
    }
}
