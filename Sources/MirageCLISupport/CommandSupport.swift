import ArgumentParser
import Foundation
import MirageData

/// Helpers shared by the `mirage` and `mirage-bench` executables: the version both print and record, error
/// reporting, and process timing.
public enum MirageVersion {
    /// The release (`MirageRelease.version` of MirageData, which the store records too).
    public static let string = MirageRelease.version
}

/// Runs a command body and turns its errors into a clear message and a failing exit code.
public func runReportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

/// Wall-clock seconds of a closure.
public func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let start = DispatchTime.now().uptimeNanoseconds
    let value = try body()
    return (value, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
}

/// CPU seconds (user + system, all threads) this process has used so far.
public func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Peak resident set size of this process so far, in bytes (Linux `ru_maxrss` is in KiB).
public func peakResidentBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Int(usage.ru_maxrss) * 1024
}
