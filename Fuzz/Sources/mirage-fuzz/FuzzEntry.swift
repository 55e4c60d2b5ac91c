import Foundation
import MirageFuzzTargets

#if canImport(Glibc)
import Glibc
#endif

// libFuzzer supplies `main`; this file only exports its two hooks. The target is chosen once, in
// LLVMFuzzerInitialize, from MIRAGE_FUZZ_TARGET.

nonisolated(unsafe) private var selected: FuzzTarget?

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    let name = ProcessInfo.processInfo.environment["MIRAGE_FUZZ_TARGET"] ?? ""
    if name == "list" {
        // One line per target: name, max_len, summary (read by Fuzz/run.sh and Fuzz/run-all.sh).
        for target in FuzzTargets.all { print("\(target.name)\t\(target.maxLength)\t\(target.summary)") }
        exit(0)
    }
    guard let target = FuzzTargets.named(name) else {
        let names = FuzzTargets.all.map(\.name).joined(separator: ", ")
        let problem = name.isEmpty ? "MIRAGE_FUZZ_TARGET is not set" : "MIRAGE_FUZZ_TARGET '\(name)' is not a fuzz target"
        FileHandle.standardError.write(Data("error: \(problem); set it to one of: \(names) (or use Fuzz/run.sh TARGET)\n".utf8))
        exit(2)
    }
    selected = target
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let target = selected else { return 0 }
    let data = count == 0 || bytes == nil
        ? Data()
        : Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: bytes!), count: count, deallocator: .none)
    _ = target.run(data)
    return 0
}
