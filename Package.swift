// swift-tools-version: 6.1
//
// Mirage: measure and reduce object hallucination in multimodal LLMs.
// One concern per module; see docs/ARCHITECTURE.md for how data flows between them.
import PackageDescription

/// Compute-heavy modules are always optimised and tuned for this CPU, in debug builds too:
/// without `-O` the SIMD kernels run ~200x slower, without `-target-cpu native` ~150x slower
/// (no AVX-512). `swift test` therefore runs kernels and the text pipeline at speed.
let optimised: [SwiftSetting] = [.unsafeFlags(["-O", "-target-cpu", "native"])]
let optimisedC: [CSetting] = [.unsafeFlags(["-O3", "-march=native"])]

let package = Package(
    name: "Mirage",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "mirage", targets: ["mirage"]),
        /// Performance measurements (`mirage-bench kernels`, `engine`, ...), kept out of the researcher's `mirage`.
        .executable(name: "mirage-bench", targets: ["mirage-bench"]),
        .library(name: "MirageText", targets: ["MirageText"]),
        .library(name: "MirageMetrics", targets: ["MirageMetrics"]),
        .library(name: "MirageEngine", targets: ["MirageEngine"]),
        .library(name: "MirageTokenizers", targets: ["MirageTokenizers"]),
        .library(name: "MirageImaging", targets: ["MirageImaging"]),
        .library(name: "MirageStore", targets: ["MirageStore"]),
        // For the package-benchmark suite in Benchmarks/ (its own package, which depends on this one by path).
        .library(name: "MirageKernels", targets: ["MirageKernels"]),
        .library(name: "MirageData", targets: ["MirageData"]),
        .library(name: "MirageDecoding", targets: ["MirageDecoding"]),
        .library(name: "MirageModels", targets: ["MirageModels"]),
        .library(name: "MirageRunner", targets: ["MirageRunner"]),
        .library(name: "MirageCLISupport", targets: ["MirageCLISupport"]),
        .library(name: "MirageBenchSupport", targets: ["MirageBenchSupport"]),
        /// The parsers as libFuzzer targets; built with the sanitizer by the separate Fuzz/ package (docs/fuzzing.md).
        .library(name: "MirageFuzzTargets", targets: ["MirageFuzzTargets"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/vapor/postgres-nio", exact: "1.33.2"),
    ],
    targets: [
        // MARK: Engine (issue: language-model core)
        /// The AVX512-BF16 dot-product loops (vdpbf16ps), which Swift cannot express; every other kernel is Swift.
        .target(name: "CMirageKernels", cSettings: optimisedC),
        /// SIMD kernels (linear layers in f32/f16/bf16/q8, element-wise math) and the persistent worker pool.
        .target(name: "MirageKernels", dependencies: ["CMirageKernels"], swiftSettings: optimised),
        /// Tokenizers: tokenizer.json (BPE with its normalizers, pre-tokenizers, decoders, added tokens).
        .target(name: "MirageTokenizers", swiftSettings: optimised),
        /// Images: Pillow-exact JPEG/PNG decoding (EXIF orientation, RGB conversion), resampling, and the
        /// CLIP/SigLIP image processors.
        .target(name: "MirageImaging", dependencies: ["CMirageImage"], swiftSettings: optimised),
        /// Weights, models, KV cache, sessions, vision towers.
        .target(name: "MirageEngine", dependencies: ["MirageKernels", "MirageImaging"], swiftSettings: optimised),
        /// Longjmp-safe wrappers around libjpeg-turbo and libpng (Debian: libjpeg62-turbo-dev, libpng-dev).
        .target(name: "CMirageImage", cSettings: optimisedC, linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png16")]),

        /// Vision-language model families behind one protocol (`VisionLanguageModel`) and their registry.
        .target(name: "MirageModels", dependencies: ["MirageEngine", "MirageTokenizers", "MirageImaging", "MirageKernels"], swiftSettings: optimised),

        /// Decoding methods behind one protocol.
        .target(name: "MirageDecoding", dependencies: ["MirageEngine", "MirageTokenizers"]),

        // MARK: Evaluation
        /// CHAIR's NLP: Punkt sentences, Treebank words, perceptron POS tags, WordNet lemmas.
        .target(name: "MirageText", swiftSettings: optimised),
        /// COCO annotations, question files, data sources (fetch with checksums, import), hashing.
        .target(name: "MirageData", dependencies: [
            "CMirageImage",
            .product(name: "ZIPFoundation", package: "ZIPFoundation"),
        ], swiftSettings: optimised),
        /// CHAIR and POPE scorers.
        .target(name: "MirageMetrics", dependencies: ["MirageText", "MirageData"], swiftSettings: optimised),
        /// The run store behind `RunRepository`: SQLite (GRDB) and PostgreSQL (postgres-nio), item claims for several workers.
        .target(name: "MirageStore", dependencies: [
            "MirageMetrics", "MirageData",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
        ]),

        // MARK: Experiments, analysis, reports
        /// Protocol and experiment files, image sets, and the loop that runs models x decoders x items into the store.
        .target(name: "MirageRunner", dependencies: [
            "MirageEngine", "MirageTokenizers", "MirageImaging", "MirageModels", "MirageDecoding", "MirageData", "MirageMetrics", "MirageStore",
            .product(name: "Yams", package: "Yams"),
        ]),
        /// Pictures without dependencies: PNG encoding, a raster canvas with a bitmap font, heatmaps, line plots, HTML reports.
        .target(name: "MirageVisuals", swiftSettings: optimised),
        /// Over-trust analysis: last-layer attention capture, summary-token detection, sub-sentence CHAIR by summary tokens.
        .target(name: "MirageAnalysis", dependencies: [
            "MirageEngine", "MirageTokenizers", "MirageDecoding", "MirageMetrics", "MirageStore", "MirageVisuals", "MirageText",
            "MirageRunner",
        ]),

        // MARK: Command line
        /// What `mirage` and `mirage-bench` share: locating CHAIR's data, error reporting, timing, the version.
        .target(name: "MirageCLISupport", dependencies: [
            "MirageText", "MirageData", "MirageMetrics",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "mirage", dependencies: [
            "MirageText", "MirageData", "MirageMetrics", "MirageStore", "MirageEngine", "MirageTokenizers", "MirageImaging", "MirageModels", "MirageKernels",
            "MirageDecoding", "MirageRunner", "MirageVisuals", "MirageAnalysis", "MirageCLISupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        /// What `mirage-bench` and the Benchmarks/ suite share so both measure the same work: synthesized
        /// models kept between runs, the decoder benchmarks' prompt, random weights, the reference data.
        .target(name: "MirageBenchSupport", dependencies: ["MirageKernels", "MirageEngine", "MirageModels", "MirageDecoding", "MirageData", "MirageMetrics", "MirageStore"]),
        .executableTarget(name: "mirage-bench", dependencies: [
            "MirageText", "MirageData", "MirageMetrics", "MirageStore", "MirageEngine", "MirageTokenizers", "MirageImaging", "MirageModels", "MirageKernels",
            "MirageDecoding", "MirageRunner", "MirageVisuals", "MirageAnalysis", "MirageCLISupport", "MirageBenchSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // MARK: Fuzzing
        /// Every file parser as `(Data) -> accepted | rejected`, shared by Fuzz/ (libFuzzer) and MirageFuzzTests (corpus replay).
        .target(name: "MirageFuzzTargets", dependencies: [
            "MirageData", "MirageEngine", "MirageTokenizers", "MirageImaging", "MirageModels", "MirageMetrics", "MirageRunner", "MirageStore", "MirageAnalysis",
        ]),

        // MARK: Tests
        /// Locating ../shared/data (tests skip when it is absent) and the built `mirage` binary.
        .target(name: "MirageTestSupport", path: "Tests/MirageTestSupport"),
        .testTarget(name: "MirageKernelsTests", dependencies: ["MirageKernels", "MirageData", "MirageTestSupport"], swiftSettings: optimised),
        .testTarget(name: "MirageEngineTests", dependencies: ["MirageEngine", "MirageTokenizers", "MirageImaging", "MirageData", "MirageTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "MirageModelsTests", dependencies: ["MirageModels", "MirageEngine", "MirageTokenizers", "MirageImaging", "MirageKernels", "MirageData", "MirageDecoding", "MirageTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "MirageDecodingTests", dependencies: ["MirageDecoding", "MirageTokenizers", "MirageTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "MirageTextTests", dependencies: ["MirageText", "MirageTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "MirageDataTests", dependencies: ["MirageData", "MirageEngine", "MirageImaging", "MirageMetrics", "MirageTestSupport"]),
        .testTarget(name: "MirageMetricsTests", dependencies: ["MirageMetrics", "MirageTestSupport"]),
        .testTarget(name: "MirageStoreTests", dependencies: ["MirageStore", "MirageMetrics", "MirageRunner", "MirageAnalysis", "MirageTestSupport"]),
        .testTarget(name: "MirageRunnerTests", dependencies: ["MirageRunner", "MirageModels", "MirageDecoding", "MirageEngine", "MirageTokenizers", "MirageImaging", "MirageTestSupport"]),
        .testTarget(name: "MirageVisualsTests", dependencies: ["MirageVisuals", "MirageEngine", "MirageImaging", "MirageData", "MirageTestSupport"]),
        .testTarget(name: "MirageAnalysisTests", dependencies: ["MirageAnalysis", "MirageTokenizers", "MirageImaging", "MirageTestSupport"]),
        .testTarget(name: "MirageFuzzTests", dependencies: ["MirageFuzzTargets", "MirageTestSupport"]),
        .testTarget(name: "MirageCLITests", dependencies: ["MirageTestSupport", "MirageStore", .product(name: "GRDB", package: "GRDB.swift")],
                    exclude: ["Golden"]),
    ],
    swiftLanguageModes: [.v5]
)
