import ArgumentParser
import Foundation
import MirageCLISupport
import MirageData
import MirageEngine
import MirageImaging
import MirageModels

/// `mirage inspect pixels`: what a model's image processor makes of
/// one image.
struct InspectPixels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pixels",
        abstract: "Show the pixel tensor a model's image processor makes of one image.",
        discussion: """
        Decodes the JPEG or PNG as transformers' load_image does with Pillow 13 (EXIF orientation applied, \
        converted to RGB), then applies the model folder's preprocessor_config.json (CLIPImageProcessor or \
        SiglipImageProcessor; transformers' PIL backend, i.e. backend="pil" / use_fast=False): optional \
        LLaVA pad-to-square with the mean colour, Pillow resize, centre crop, rescale, normalize. The \
        result is bit-identical to processor(images=load_image(path), return_tensors="np").pixel_values[0].

        Prints each step's size, per-channel statistics and the SHA-256 of the float32 values \
        (little-endian, channel-first), which you can compare with Python:
          hashlib.sha256(pixel_values[0].astype("<f4").tobytes()).hexdigest()

        Examples:
          mirage inspect pixels --model ~/llava-1.5-7b-hf --image cat.jpg
          mirage inspect pixels --model ~/siglip --image cat.png --json --values 8
          mirage inspect pixels --model ~/llava-v1.5-7b --image c.jpg --dump px.f32
        """)

    @Option(name: .long, help: ArgumentHelp("Model folder with preprocessor_config.json (or processor_config.json); for a model that keeps its vision tower elsewhere (llava-original, shikra), the tower folder's is used.", valueName: "dir"))
    var model: String

    @Option(name: .long, help: ArgumentHelp("The vision tower folder of a model that keeps it outside its folder (default: found as `mirage generate` finds it; docs/vision.md).", valueName: "dir"))
    var visionTower: String?

    @Option(name: .long, help: ArgumentHelp("The JPEG or PNG image.", valueName: "file"))
    var image: String

    @Flag(name: .long, inversion: .prefixedNo,
          help: "Pad to a square with the mean colour first (LLaVA's expand2square). Default: on when the model's config.json has \"image_aspect_ratio\": \"pad\" (original LLaVA checkpoints), off otherwise.")
    var padSquare: Bool?

    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false

    @OptionGroup var pixelLimit: PixelLimitOptions

    @Option(name: .long, help: ArgumentHelp("Also print the first N float values (channel-first order).", valueName: "n"))
    var values = 0

    @Option(name: .long, help: ArgumentHelp("Write the float32 values (little-endian, channel-first) to this file.", valueName: "file"))
    var dump: String?

    func validate() throws {
        if values < 0 { throw ValidationError("--values must be 0 or more") }
    }

    func run() throws {
        try runReportingErrors {
            let modelDir = (model as NSString).expandingTildeInPath
            let processorDir = try ModelFamilies.imageProcessorFolder(
                of: URL(fileURLWithPath: modelDir),
                visionTower: visionTower.map { URL(fileURLWithPath: ($0 as NSString).expandingTildeInPath) }).path
            let config = try ImagePreprocessorConfig.load(modelDirectory: processorDir)
            let imagePath = try InputFile.check(image, option: "--image")
            let processor = ImagePreprocessor(config: config)
            let pad = padSquare ?? ImagePreprocessor.llavaPadsToSquare(modelDirectory: modelDir)
            try pixelLimit.apply()
            let decoded = try ImageDecoder.load(path: imagePath)
            let padded = pad ? ImagePreprocessor.expandToSquare(decoded, background: processor.padColour) : decoded
            let geometric = try processor.geometry(decoded, padToSquare: pad)
            let tensor = processor.normalize(geometric)
            var hasher = SHA256()
            tensor.values.withUnsafeBytes { hasher.update($0) }
            let digest = hasher.hexDigest()
            if let dump {
                try tensor.values.withUnsafeBytes { Data($0) }.write(to: URL(fileURLWithPath: dump))
            }
            let plane = tensor.height * tensor.width
            let stats: [(min: Float, max: Float, mean: Double)] = (0..<tensor.channels).map { c in
                let slice = tensor.values[c * plane ..< (c + 1) * plane]
                return (slice.min() ?? 0, slice.max() ?? 0, slice.reduce(0.0) { $0 + Double($1) } / Double(max(plane, 1)))
            }
            let resized = config.doResize ? processor.resizedSize(width: padded.width, height: padded.height)
                : (width: padded.width, height: padded.height)
            if json {
                var object: [String: Any] = [
                    "image": image,
                    "decoded": ["width": decoded.width, "height": decoded.height],
                    "pad_square": pad,
                    "padded": ["width": padded.width, "height": padded.height],
                    "resized": config.doResize ? ["width": resized.width, "height": resized.height] as Any : NSNull(),
                    "cropped": config.doCenterCrop ? ["width": config.cropWidth, "height": config.cropHeight] as Any : NSNull(),
                    "processor": describe(config),
                    "shape": [tensor.channels, tensor.height, tensor.width],
                    "sha256": digest,
                    "channels": stats.map { ["min": Double($0.min), "max": Double($0.max), "mean": $0.mean] },
                ]
                if values > 0 { object["values"] = tensor.values.prefix(values).map { Double($0) } }
                let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            print("image      \(image): \(decoded.width)x\(decoded.height) RGB (after EXIF orientation)")
            print("processor  \(config.processorType) (PIL backend), resample \(config.resample)")
            if pad { print("pad        expand2square to \(padded.width)x\(padded.height), fill \(processor.padColour)") }
            if config.doResize { print("resize     \(resized.width)x\(resized.height)  (\(sizeText(config.size)))") }
            if config.doCenterCrop { print("crop       \(config.cropWidth)x\(config.cropHeight) (centre)") }
            print("normalize  x*\(config.doRescale ? config.rescaleFactor : 1)"
                + (config.doNormalize ? ", mean \(config.imageMean), std \(config.imageStd)" : ", no mean/std"))
            print("tensor     [\(tensor.channels), \(tensor.height), \(tensor.width)] float32, sha256 \(digest)")
            for (c, s) in stats.enumerated() {
                print("channel \(c)  min \(fmt(s.min))  max \(fmt(s.max))  mean \(String(format: "%.6f", s.mean))")
            }
            if values > 0 { print("values     " + tensor.values.prefix(values).map { fmt($0) }.joined(separator: " ")) }
            if let dump { print("wrote      \(dump) (\(tensor.values.count * 4) bytes)") }
        }
    }

    private func fmt(_ v: Float) -> String { String(format: "%.6f", Double(v)) }

    private func sizeText(_ size: ImagePreprocessorConfig.Size) -> String {
        switch size {
        case .shortestEdge(let s): return "shortest_edge \(s)"
        case .fixed(let h, let w): return "height \(h), width \(w)"
        }
    }

    private func describe(_ c: ImagePreprocessorConfig) -> [String: Any] {
        var size: [String: Int]
        switch c.size {
        case .shortestEdge(let s): size = ["shortest_edge": s]
        case .fixed(let h, let w): size = ["height": h, "width": w]
        }
        return ["image_processor_type": c.processorType, "do_convert_rgb": c.doConvertRGB, "do_resize": c.doResize,
                "size": size, "resample": c.resample.rawValue, "do_center_crop": c.doCenterCrop,
                "crop_size": ["height": c.cropHeight, "width": c.cropWidth], "do_rescale": c.doRescale,
                "rescale_factor": c.rescaleFactor, "do_normalize": c.doNormalize,
                "image_mean": c.imageMean, "image_std": c.imageStd]
    }
}
