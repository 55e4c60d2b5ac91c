import Foundation

/// The image half of a Hugging Face processor: `CLIPImageProcessor` / `SiglipImageProcessor` semantics
/// as transformers 5.24 implements them in its PIL backend (`CLIPImageProcessorPil`,
/// `SiglipImageProcessorPil`: `backend="pil"`, formerly `use_fast=False`), read from
/// `preprocessor_config.json`. Steps, in order: optional LLaVA pad-to-square, resize (Pillow),
/// centre crop, rescale, normalize, channel-first float32 output.
public struct ImagePreprocessorConfig: Equatable, Sendable {
    /// Sizes (resize targets, crop sides) a preprocessor config may ask for: 1...16384 pixels a side (also
    /// `ConfigLimits.imageSize` for a tower's `image_size`).
    public static let sizeLimits = 1...(1 << 14)

    /// How `size` is interpreted.
    public enum Size: Equatable, Sendable {
        /// Scale so the shorter side is `n`; the longer is `Int(n * long / short)` (truncated).
        case shortestEdge(Int)
        /// Resize to exactly `height` × `width`, ignoring the aspect ratio.
        case fixed(height: Int, width: Int)
    }

    public var processorType: String
    /// `do_convert_rgb`: composite a PNG's transparent colour onto white (`convert_to_rgb`).
    public var doConvertRGB: Bool = true
    public var doResize: Bool
    public var size: Size
    public var resample: ResampleFilter
    public var doCenterCrop: Bool
    public var cropHeight: Int
    public var cropWidth: Int
    public var doRescale: Bool
    public var rescaleFactor: Double
    public var doNormalize: Bool
    public var imageMean: [Double]
    public var imageStd: [Double]

    /// OPENAI_CLIP_MEAN / OPENAI_CLIP_STD (transformers image_utils.py).
    public static let openAIClipMean = [0.48145466, 0.4578275, 0.40821073]
    public static let openAIClipStd = [0.26862954, 0.26130258, 0.27577711]

    /// The class defaults of `CLIPImageProcessor`.
    public static let clip = ImagePreprocessorConfig(
        processorType: "CLIPImageProcessor", doResize: true, size: .shortestEdge(224), resample: .bicubic,
        doCenterCrop: true, cropHeight: 224, cropWidth: 224, doRescale: true, rescaleFactor: 1.0 / 255,
        doNormalize: true, imageMean: openAIClipMean, imageStd: openAIClipStd)

    /// The class defaults of `SiglipImageProcessor` (IMAGENET_STANDARD_MEAN/STD = 0.5).
    public static let siglip = ImagePreprocessorConfig(
        processorType: "SiglipImageProcessor", doResize: true, size: .fixed(height: 224, width: 224),
        resample: .bicubic, doCenterCrop: false, cropHeight: 224, cropWidth: 224, doRescale: true,
        rescaleFactor: 1.0 / 255, doNormalize: true, imageMean: [0.5, 0.5, 0.5], imageStd: [0.5, 0.5, 0.5])

    public init(processorType: String, doResize: Bool, size: Size, resample: ResampleFilter, doCenterCrop: Bool,
                cropHeight: Int, cropWidth: Int, doRescale: Bool, rescaleFactor: Double, doNormalize: Bool,
                imageMean: [Double], imageStd: [Double]) {
        self.processorType = processorType
        self.doResize = doResize
        self.size = size
        self.resample = resample
        self.doCenterCrop = doCenterCrop
        self.cropHeight = cropHeight
        self.cropWidth = cropWidth
        self.doRescale = doRescale
        self.rescaleFactor = rescaleFactor
        self.doNormalize = doNormalize
        self.imageMean = imageMean
        self.imageStd = imageStd
    }

    /// Reads `preprocessor_config.json` from a model folder, or the `image_processor` entry of
    /// `processor_config.json` when only that exists.
    public static func load(modelDirectory: String) throws -> ImagePreprocessorConfig {
        let dir = URL(fileURLWithPath: modelDirectory)
        let pre = dir.appendingPathComponent("preprocessor_config.json")
        if FileManager.default.fileExists(atPath: pre.path) {
            return try parse(jsonObject(pre), file: pre.path)
        }
        let processor = dir.appendingPathComponent("processor_config.json")
        if FileManager.default.fileExists(atPath: processor.path),
           let nested = try jsonObject(processor)["image_processor"] as? [String: Any] {
            return try parse(nested, file: processor.path)
        }
        throw ImageError.missingConfig(directory: modelDirectory)
    }

    static func jsonObject(_ url: URL) throws -> [String: Any] {
        do {
            let data = try Data(contentsOf: url)
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ImageError.badConfig(file: url.path, detail: "expected a JSON object")
            }
            return object
        } catch let error as ImageError {
            throw error
        } catch {
            throw ImageError.badConfig(file: url.path, detail: "not valid JSON (\(error.localizedDescription))")
        }
    }

    /// Builds a configuration from a parsed preprocessor config; missing keys take the class defaults of
    /// the named `image_processor_type` (CLIP unless it names SigLIP).
    public static func parse(_ json: [String: Any], file: String = "preprocessor_config.json") throws -> ImagePreprocessorConfig {
        func bad(_ detail: String) -> ImageError { .badConfig(file: file, detail: detail) }
        let type = (json["image_processor_type"] as? String) ?? "CLIPImageProcessor"
        let base: String = type.hasSuffix("Pil") ? String(type.dropLast(3)) : type.hasSuffix("Fast") ? String(type.dropLast(4)) : type
        var config: ImagePreprocessorConfig
        switch base {
        case "CLIPImageProcessor": config = .clip
        case "SiglipImageProcessor": config = .siglip
        case "BlipImageProcessor": config = .blip
        default:
            throw bad("image_processor_type \(type) is not supported: Mirage implements CLIPImageProcessor, "
                + "SiglipImageProcessor and BlipImageProcessor")
        }
        config.processorType = base
        func bool(_ key: String) throws -> Bool? {
            guard let value = json[key], !(value is NSNull) else { return nil }
            guard let b = value as? Bool else { throw bad("\(key) must be true or false") }
            return b
        }
        func number(_ key: String) throws -> Double? {
            guard let value = json[key], !(value is NSNull) else { return nil }
            guard let n = value as? NSNumber, !(value is Bool) else { throw bad("\(key) must be a number") }
            return n.doubleValue
        }
        func triple(_ key: String) throws -> [Double]? {
            guard let value = json[key], !(value is NSNull) else { return nil }
            if let n = value as? NSNumber { return [Double](repeating: n.doubleValue, count: 3) }
            guard let list = value as? [NSNumber], list.count == 3 else { throw bad("\(key) must be 3 numbers") }
            return list.map(\.doubleValue)
        }
        func int(_ value: Any?, _ key: String) throws -> Int {
            let sizes = Self.sizeLimits
            guard let n = value as? NSNumber, let v = Int(exactly: n.doubleValue), sizes.contains(v) else {
                throw bad("\(key) is \(value.map { "\($0)" } ?? "missing"); it must be an integer in \(sizes.lowerBound)...\(sizes.upperBound)")
            }
            return v
        }
        if let b = try bool("do_convert_rgb") { config.doConvertRGB = b }
        if let b = try bool("do_resize") { config.doResize = b }
        if let b = try bool("do_center_crop") { config.doCenterCrop = b }
        if let b = try bool("do_rescale") { config.doRescale = b }
        if let b = try bool("do_normalize") { config.doNormalize = b }
        if let v = try number("rescale_factor") { config.rescaleFactor = v }
        if let v = try triple("image_mean") { config.imageMean = v }
        if let v = try triple("image_std") { config.imageStd = v }
        if let r = try number("resample") {
            guard let code = Int(exactly: r), let filter = ResampleFilter(rawValue: code) else {
                throw bad("resample \(r) is not a Pillow filter number (0...5)")
            }
            config.resample = filter
        }
        if let size = json["size"], !(size is NSNull) {
            if let n = size as? NSNumber {
                // get_size_dict(int, default_to_square=False) → {"shortest_edge": n} for CLIP and SigLIP;
                // BlipImageProcessor has default_to_square = True → {"height": n, "width": n}.
                let side = try int(n, "size")
                config.size = base == "BlipImageProcessor" ? .fixed(height: side, width: side) : .shortestEdge(side)
            } else if let dict = size as? [String: Any] {
                if let h = dict["height"], let w = dict["width"] {
                    config.size = .fixed(height: try int(h, "size.height"), width: try int(w, "size.width"))
                } else if let s = dict["shortest_edge"], dict["longest_edge"] == nil {
                    config.size = .shortestEdge(try int(s, "size.shortest_edge"))
                } else {
                    throw bad("size \(dict.keys.sorted()) is not supported: use {\"shortest_edge\": n} or "
                        + "{\"height\": h, \"width\": w}")
                }
            } else {
                throw bad("size must be a number or an object")
            }
        }
        if let crop = json["crop_size"], !(crop is NSNull) {
            if let n = crop as? NSNumber {
                let s = try int(n, "crop_size")
                (config.cropHeight, config.cropWidth) = (s, s)
            } else if let dict = crop as? [String: Any], let h = dict["height"], let w = dict["width"] {
                (config.cropHeight, config.cropWidth) = (try int(h, "crop_size.height"), try int(w, "crop_size.width"))
            } else {
                throw bad("crop_size must be a number or {\"height\": h, \"width\": w}")
            }
        }
        if config.doNormalize, config.imageStd.contains(0) { throw bad("image_std must not contain 0") }
        return config
    }
}

/// Channel-first float32 pixels, `[channels][height][width]`, as `processor(images=...)["pixel_values"][0]`.
public struct PixelTensor: Equatable, Sendable {
    public var channels: Int
    public var height: Int
    public var width: Int
    public var values: [Float]

    /// Unchecked: `values` must hold `channels × height × width` floats (`init(validating:…)` in MirageEngine checks).
    public init(channels: Int, height: Int, width: Int, values: [Float]) {
        self.channels = channels
        self.height = height
        self.width = width
        self.values = values
    }
}

public struct ImagePreprocessor: Sendable {
    public var config: ImagePreprocessorConfig

    public init(config: ImagePreprocessorConfig) { self.config = config }

    /// LLaVA's `expand2square` background: `tuple(int(x * 255) for x in image_mean)`.
    public var padColour: (UInt8, UInt8, UInt8) {
        let c = config.imageMean.map { UInt8(clamping: Int($0 * 255)) }
        return (c[0], c[1], c[2])
    }

    /// The size `resize` produces for an image of `width` × `height` (transformers'
    /// `get_resize_output_image_size` with `default_to_square=False`).
    public func resizedSize(width: Int, height: Int) -> (width: Int, height: Int) {
        switch config.size {
        case .fixed(let h, let w):
            return (w, h)
        case .shortestEdge(let s):
            let short = min(width, height), long = max(width, height)
            // int(requested * long / short): Python true division of exact integers, then truncation.
            let newLong = Int(Double(s * long) / Double(short))
            return width <= height ? (s, newLong) : (newLong, s)
        }
    }

    /// The 8-bit image after pad-to-square, resize and centre crop (before rescale and normalize).
    public func geometry(_ image: RGBImage, padToSquare: Bool = false) throws -> RGBImage {
        var image = padToSquare ? Self.expandToSquare(image, background: padColour) : image
        if config.doConvertRGB { image = image.compositedOnWhite() }
        if config.doResize {
            let target = resizedSize(width: image.width, height: image.height)
            image = try ImageResampler.resize(image, width: target.width, height: target.height, filter: config.resample)
        }
        if config.doCenterCrop {
            image = Self.centerCrop(image, height: config.cropHeight, width: config.cropWidth)
        }
        return image
    }

    /// The full pipeline: `processor(images=[load_image(path)], return_tensors="np")["pixel_values"][0]`,
    /// with LLaVA's `expand2square` first when `padToSquare` is set.
    public func process(_ image: RGBImage, padToSquare: Bool = false) throws -> PixelTensor {
        let geometric = try geometry(image, padToSquare: padToSquare)
        return normalize(geometric)
    }

    /// The 256 float32 outputs each 8-bit value can map to, per channel: rescale is
    /// `float32(float64(v) * rescale_factor)`, normalize is `(x - float32(mean)) / float32(std)` in float32,
    /// exactly transformers' `rescale` and `normalize` (image_transforms.py).
    public func lookupTables() -> [[Float]] {
        (0..<3).map { c in
            (0..<256).map { v -> Float in
                var x = config.doRescale ? Float(Double(v) * config.rescaleFactor) : Float(v)
                if config.doNormalize { x = (x - Float(config.imageMean[c])) / Float(config.imageStd[c]) }
                return x
            }
        }
    }

    public func normalize(_ image: RGBImage) -> PixelTensor {
        let plane = image.width * image.height
        var values = [Float](repeating: 0, count: plane * 3)
        let tables = lookupTables()
        image.pixels.withUnsafeBufferPointer { px in
            values.withUnsafeMutableBufferPointer { out in
                for c in 0..<3 {
                    tables[c].withUnsafeBufferPointer { table in
                        let base = out.baseAddress! + c * plane
                        for i in 0..<plane { base[i] = table[Int(px[i * 3 + c])] }
                    }
                }
            }
        }
        return PixelTensor(channels: 3, height: image.height, width: image.width, values: values)
    }

    /// LLaVA's `expand2square`: paste the image centred (offset `(long - short) // 2`) on a square canvas
    /// of the background colour; square images are returned unchanged. The new canvas carries no
    /// transparent colour (a new PIL image has no `info`), so padding disables `compositedOnWhite`.
    public static func expandToSquare(_ image: RGBImage, background: (UInt8, UInt8, UInt8)) -> RGBImage {
        let side = max(image.width, image.height)
        if image.width == image.height { return image }
        var out = RGBImage(width: side, height: side, fill: background)
        let dx = (side - image.width) / 2, dy = (side - image.height) / 2
        for y in 0..<image.height {
            let src = y * image.width * 3, dst = ((y + dy) * side + dx) * 3
            out.pixels[dst ..< dst + image.width * 3] = image.pixels[src ..< src + image.width * 3]
        }
        return out
    }

    /// transformers' `center_crop`: offset `(size - crop) // 2` per axis; an axis shorter than the crop
    /// is zero-padded with the image at offset `ceil((crop - size) / 2)`.
    public static func centerCrop(_ image: RGBImage, height: Int, width: Int) -> RGBImage {
        if image.width == width && image.height == height { return image }
        func axis(_ size: Int, _ crop: Int) -> (source: Int, target: Int, length: Int) {
            size >= crop ? ((size - crop) / 2, 0, crop) : (0, (crop - size + 1) / 2, size)
        }
        let (sx, tx, lx) = axis(image.width, width)
        let (sy, ty, ly) = axis(image.height, height)
        var out = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<ly {
            let src = ((y + sy) * image.width + sx) * 3, dst = ((y + ty) * width + tx) * 3
            out[dst ..< dst + lx * 3] = image.pixels[src ..< src + lx * 3]
        }
        return RGBImage(width: width, height: height, pixels: out)
    }
}

extension ImagePreprocessor {
    /// Whether an original LLaVA checkpoint pads images to squares: its config.json says
    /// `"image_aspect_ratio": "pad"` (llava/mm_utils.py `process_images` then applies `expand2square`).
    /// Hugging Face `llava-hf` conversions have no such key and their processor does not pad.
    public static func llavaPadsToSquare(modelDirectory: String) -> Bool {
        let url = URL(fileURLWithPath: modelDirectory).appendingPathComponent("config.json")
        guard let data = try? Data(contentsOf: url),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
        return (object["image_aspect_ratio"] as? String) == "pad"
    }
}
