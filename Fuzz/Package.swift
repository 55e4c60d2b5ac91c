// swift-tools-version: 6.1
//
// libFuzzer driver for Mirage's parsers, kept out of the main package so `swift test` never builds it.
// Build only with the sanitizer: `swift build --sanitize=fuzzer` (Fuzz/run.sh does this); every target of
// the main package is then instrumented for coverage. The parsers themselves live in the main package's
// MirageFuzzTargets library (one function each); see docs/fuzzing.md.
import PackageDescription

let package = Package(
    name: "MirageFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "Mirage", path: ".."),
    ],
    targets: [
        /// One binary for every target; `MIRAGE_FUZZ_TARGET` picks the parser (`list` prints them).
        .executableTarget(name: "mirage-fuzz", dependencies: [
            .product(name: "MirageFuzzTargets", package: "Mirage"),
        ]),
    ],
    swiftLanguageModes: [.v5]
)
