import Foundation

/// Reusable scratch memory (e.g. packed GEMM inputs): one cached buffer, handed to one user at a time;
/// a concurrent user gets a fresh allocation instead of waiting. Avoids page-faulting megabytes on
/// every prefill matmul.
final class ScratchArena: @unchecked Sendable {
    private let lock = NSLock()
    private var cached: AlignedBuffer?

    func withBuffer<R>(byteCount: Int, _ body: (UnsafeMutableRawPointer) throws -> R) rethrows -> R {
        lock.lock()
        var buffer = cached
        cached = nil
        lock.unlock()
        if buffer == nil || buffer!.byteCount < byteCount { buffer = AlignedBuffer(byteCount: byteCount) }
        defer {
            lock.lock()
            if cached == nil || cached!.byteCount < buffer!.byteCount { cached = buffer }
            lock.unlock()
        }
        return try body(buffer!.pointer)
    }
}
