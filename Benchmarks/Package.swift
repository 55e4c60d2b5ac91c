// swift-tools-version: 6.1
//
// Mirage's package-benchmark suite: its own package (so the root package's `swift test` never builds it),
// depending on the root package by path. Run from this folder:
//   swift package benchmark                       # every target
//   swift package benchmark --target Kernels      # one target
//   swift package benchmark baseline update main  # save a baseline; `baseline compare main` checks against it
// See README.md beside this file.
import PackageDescription

let package = Package(
    name: "MirageBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "Mirage", path: ".."),
        // The malloc interposer counts allocations; the Linux ARC runtime interposer (the other default
        // trait) is left off.
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [],
    swiftLanguageModes: [.v5]
)

/// One executable per area, as package-benchmark expects (Benchmarks/<Name>/).
func benchmarkTarget(_ name: String, _ products: [String]) -> Target {
    .executableTarget(
        name: name,
        dependencies: [
            .product(name: "Benchmark", package: "benchmark"),
            .product(name: "MirageBenchSupport", package: "Mirage"),
        ] + products.map { .product(name: $0, package: "Mirage") },
        path: "Benchmarks/\(name)",
        plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    )
}

package.targets += [
    benchmarkTarget("Kernels", ["MirageKernels"]),
    benchmarkTarget("Engine", ["MirageEngine"]),
    benchmarkTarget("Decoders", ["MirageEngine", "MirageDecoding"]),
    benchmarkTarget("Runner", ["MirageEngine", "MirageModels", "MirageData", "MirageRunner", "MirageStore", "MirageCLISupport"]),
    benchmarkTarget("Chair", ["MirageMetrics", "MirageData", "MirageCLISupport"]),
    benchmarkTarget("Store", ["MirageStore", "MirageMetrics", "MirageRunner", "MirageData", "MirageCLISupport"]),
]
