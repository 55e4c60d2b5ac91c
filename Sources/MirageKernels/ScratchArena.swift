import Foundation

/// Reusable scratch memory (packed GEMM inputs): one cached buffer, handed to one user at a time; a
/// concurrent user gets a fresh allocation instead of waiting. Avoids page-faulting megabytes on every
/// prefill matmul.
final class ScratchArena: @unchecked Sendable {
    private let lock = NSLock()
    private var cached: AlignedBuffer?

    /// A buffer of at least `byteCount` bytes; hand it back with `give` when done.
    func take(byteCount: Int) -> AlignedBuffer {
        lock.lock()
        let buffer = cached
        cached = nil
        lock.unlock()
        if let buffer, buffer.byteCount >= byteCount { return buffer }
        return AlignedBuffer(byteCount: byteCount)
    }

    /// Returns a buffer; the arena keeps the largest it has seen.
    func give(_ buffer: AlignedBuffer) {
        lock.lock()
        if cached == nil || cached!.byteCount < buffer.byteCount { cached = buffer }
        lock.unlock()
    }
}
