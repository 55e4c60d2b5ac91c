import Foundation
import MirageEngine
import MirageKernels

/// Which dot products a `--precision fast` model's weights take on this CPU (`Kernels.dotProducts`), by weight
/// format: two fast runs compute alike only on the same route, so the route is part of a fast run's resume key
/// and model fingerprint (`ExperimentRunner.precisionKeyField`, `modelSpec`; docs/runner.md, "Resume key and
/// resuming"). A vision tower in a folder of its own counts with its own formats (`ExperimentRunner.fastRoute`).
public struct FastRoute: Sendable, Hashable {
    /// One weight format the model multiplies by, and what it is multiplied with.
    public struct Entry: Sendable, Hashable {
        public let weightFormat: WeightFormat
        public let dotProducts: Kernels.DotProducts

        public init(weightFormat: WeightFormat, dotProducts: Kernels.DotProducts) {
            self.weightFormat = weightFormat
            self.dotProducts = dotProducts
        }

        /// The route `fast` took when runs were stored without one: bf16 dot products for bf16 weights (f16
        /// checkpoints' projections converted to bf16 at load), int8 dot products for q8, f32 FMAs for f32.
        /// Projections left f16 under `fast` mean the bf16 dot products did not pay: not that route.
        public var isStandard: Bool {
            switch weightFormat {
            case .bf16: dotProducts == .bf16
            case .q8: dotProducts == .int8
            case .f32: dotProducts == .f32
            case .f16: false
            }
        }
    }

    /// The projections' entry first, then bf16 for the vision tower and projector of a quantized bf16 checkpoint.
    public let entries: [Entry]

    public init(entries: [Entry]) {
        self.entries = entries
    }

    /// The route of a model whose decoder projections are loaded as `loadedFormat` from a checkpoint stored as
    /// `storedFormat`, by this CPU's probes unless other decisions are passed (tests use them to stand for
    /// another CPU). A quantized bf16 checkpoint keeps its vision tower and projector in bf16, so their bf16
    /// dot products are part of its route; likewise an f16 checkpoint's f16 tower where the f16 GEMM pays
    /// (`Kernels.usesF16DotProducts`: its prompts of more than 128 rows, e.g. 577 image patches, take it). `towerFormats` are the matrix formats of a vision tower loaded from
    /// a folder of its own (`--vision-tower`; `matrixFormats(in:)`), which loads them as stored: a bf16 one
    /// adds bf16 dot products when the rest of the route has none, an f16 one f16 FMAs where the CPU takes them
    /// (`Kernels.usesF16DotProducts`), f32 towers (and f16 ones elsewhere) take f32 FMAs and add nothing (so
    /// routes without such a tower are unchanged).
    public init(loadedFormat: WeightFormat, storedFormat: WeightFormat, towerFormats: Set<WeightFormat> = [],
                bf16DotProducts: Bool = Kernels.usesBF16DotProducts, int8DotProducts: Bool = Kernels.usesInt8DotProducts,
                f16DotProducts: Bool = Kernels.usesF16DotProducts) {
        // A quantized (or, f16, bf16-converted) checkpoint keeps its vision tower and projector as stored; bf16
        // ones take bf16 dot products, f16 ones the f16 GEMM where it pays.
        let keptTower = loadedFormat != storedFormat && (storedFormat == .bf16 || (storedFormat == .f16 && f16DotProducts))
        var formats = keptTower ? [loadedFormat, storedFormat] : [loadedFormat]
        if towerFormats.contains(.bf16) && !formats.contains(.bf16) { formats.append(.bf16) }
        if f16DotProducts && towerFormats.contains(.f16) && !formats.contains(.f16) { formats.append(.f16) }
        self.init(entries: formats.map {
            Entry(weightFormat: $0, dotProducts: Kernels.dotProducts(format: $0, precision: .fast, bf16DotProducts: bf16DotProducts,
                                                                     int8DotProducts: int8DotProducts, f16DotProducts: f16DotProducts))
        })
    }

    /// The formats of the weight matrices (floating tensors of two or more dimensions) stored in `folders`: a
    /// separate vision tower's (`ModelShape.otherWeightFolders`), for `init(loadedFormat:storedFormat:towerFormats:)`.
    public static func matrixFormats(in folders: [URL]) throws -> Set<WeightFormat> {
        var formats: Set<WeightFormat> = []
        for store in try folders.map({ try TensorStore(folder: $0) }) {
            for name in store.tensorNames {
                if let entry = store.entry(name), entry.shape.count >= 2, let format = entry.dtype.weightFormat {
                    formats.insert(format)
                }
            }
        }
        return formats
    }

    /// True when every entry is the route `fast` had before routes were recorded (`Entry.isStandard`): such runs
    /// keep the key and fingerprint fast runs were stored under.
    public var isStandard: Bool { entries.allSatisfy(\.isStandard) }

    /// The route as the resume key and the fingerprint record it: `<weight format>:<dot products>`, comma-separated.
    public var keyComponent: String {
        entries.map { "\($0.weightFormat.rawValue):\($0.dotProducts.rawValue)" }.joined(separator: ",")
    }

    /// Reads `keyComponent` back; nil for anything else.
    public init?(keyComponent: String) {
        var entries: [Entry] = []
        for part in keyComponent.split(separator: ",", omittingEmptySubsequences: false) {
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count == 2, let format = WeightFormat(rawValue: String(fields[0])),
                  let dots = Kernels.DotProducts(rawValue: String(fields[1])) else { return nil }
            entries.append(Entry(weightFormat: format, dotProducts: dots))
        }
        self.init(entries: entries)
    }

    /// A model fingerprint (`ExperimentRunner.modelSpec`) taken apart at its fast route: the fingerprint without
    /// the route (`<digest>[+q8]+fast`) and the route, nil for the standard one (a fingerprint ending in `+fast`).
    /// Nil when the fingerprint is not a fast run's or its route cannot be read.
    public static func split(fingerprint: String) -> (model: String, route: FastRoute?)? {
        if fingerprint.hasSuffix("+fast") { return (fingerprint, nil) }
        guard let marker = fingerprint.range(of: "+fast/", options: .backwards),
              let route = FastRoute(keyComponent: String(fingerprint[marker.upperBound...])) else { return nil }
        return (String(fingerprint[..<marker.lowerBound]) + "+fast", route)
    }

    /// E.g. "f16 weights with f32 FMAs".
    public var description: String {
        entries.map { entry in
            let dots = switch entry.dotProducts {
            case .f32: "f32 FMAs"
            case .bf16: "bf16 dot products"
            case .int8: "int8 dot products"
            case .f16: "f16 FMAs (AVX512-FP16, GEMM path)"
            }
            return "\(entry.weightFormat.rawValue) weights with \(dots)"
        }.joined(separator: ", ")
    }

    /// What `runs show` says of the standard route (fingerprints ending in `+fast`).
    public static let standardDescription = "bf16 dot products for bf16 and f16 weights, int8 dot products for q8, f32 FMAs for f32"
}
