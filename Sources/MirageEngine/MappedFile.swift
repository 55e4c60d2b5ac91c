import Foundation
import MirageKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file. Weight matrices point straight into it, so it lives as
/// long as any `WeightMatrix` built on it (they keep it as their `owner`).
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    public let base: UnsafeRawPointer

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            if errno == ENOENT {
                throw ModelError.fileNotFound(path: path, hint: "Check the model folder path.")
            }
            throw ModelError.cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw ModelError.cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        size = Int(info.st_size)
        if size == 0 {
            // mmap rejects empty mappings; an empty file is caught by the header checks.
            base = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 64))
            isMapped = false
            return
        }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw ModelError.cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(mapped)
        isMapped = true
    }

    /// A copy of `bytes` in memory standing in for a file named `path` (for parsing bytes that did not
    /// come from disk, e.g. the fuzz targets); nothing is mapped.
    public init(copying bytes: Data, path: String) {
        self.path = path
        size = bytes.count
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.copyBytes(to: buffer.assumingMemoryBound(to: UInt8.self), count: bytes.count)
        base = UnsafeRawPointer(buffer)
        isMapped = false
    }

    /// `size` bytes of memory standing in for a file named `path`, written by `fill` (a tensor materialized
    /// from a strided view of a checkpoint); nothing is mapped.
    public init(allocating size: Int, path: String, fill: (UnsafeMutableRawPointer) throws -> Void) rethrows {
        self.path = path
        self.size = size
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: 64)
        do { try fill(buffer) } catch {
            buffer.deallocate()
            throw error
        }
        base = UnsafeRawPointer(buffer)
        isMapped = false
    }

    private let isMapped: Bool

    /// Tells the kernel that the bytes `offset ..< offset + count` are done with: their pages leave this
    /// process's resident set and are read from the file again if touched later. A streaming conversion calls
    /// it after each tensor so that memory stays near one tensor, not the whole file. Nothing happens for
    /// memory that is not a mapping.
    public func releasePages(offset: Int, count: Int) {
        guard isMapped, count > 0, offset >= 0, offset < size else { return }
        let page = max(1, Int(sysconf(Int32(_SC_PAGESIZE))))
        let start = offset / page * page
        let end = min(size, offset + min(count, size - offset))
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, Int32(MADV_DONTNEED))
    }

    deinit {
        if isMapped {
            munmap(UnsafeMutableRawPointer(mutating: base), size)
        } else {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }
}

extension MappedFile: ReleasableMemory {
    /// `releasePages(offset:count:)` for a range given by address (a weight matrix's bytes inside the mapping).
    public func releasePages(_ start: UnsafeRawPointer, byteCount: Int) {
        let offset = Int(bitPattern: start) - Int(bitPattern: base)
        guard offset >= 0, offset < size else { return }
        releasePages(offset: offset, count: byteCount)
    }
}
