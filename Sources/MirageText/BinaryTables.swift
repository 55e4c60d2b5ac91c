import Foundation

// A compact binary image of the lookup tables a text model is frozen into (`FrozenMemory`), so that a
// process can load a parsed model with one file read instead of parsing its JSON or text sources again.
//
// Layout (little-endian, as the tables are in memory on the platforms Mirage runs on):
//   header, 48 bytes: magic "MIRGTBL\0", kind (UInt32), format version (UInt32), section count (UInt32),
//     4 zero bytes, file size (UInt64), checksum of every byte after the header (UInt64), 8 zero bytes
//   section table: per section offset (UInt64), byte count (UInt64), element stride (UInt32), 4 zero bytes
//   sections, each starting at a multiple of 64 bytes
// A reader trusts nothing: sizes, offsets, strides and alignment are checked against the file, the
// checksum against its bytes, and the owner of the tables checks every index it will follow without
// bounds checks (see `PerceptronTagger.init(tables:)`, `WordNetLemmatizer.init(tables:)`).

/// Why a binary table image cannot be used (the caller then parses the sources instead).
public struct BinaryTableError: Error, CustomStringConvertible, Equatable {
    public let problem: String
    public init(_ problem: String) { self.problem = problem }
    public var description: String { "invalid binary table image: \(problem)" }
}

/// Collects arrays as sections and encodes them (`BinaryTableReader` reads them back in the same order).
public struct BinaryTableWriter {
    private var sections: [(bytes: [UInt8], stride: Int)] = []

    public init() {}

    mutating func append<T: BitwiseCopyable>(_ values: UnsafeBufferPointer<T>) {
        let bytes = values.count == 0 ? [] : Array(UnsafeRawBufferPointer(values))
        sections.append((bytes, MemoryLayout<T>.stride))
    }

    mutating func append<T: BitwiseCopyable>(_ values: [T]) {
        values.withUnsafeBufferPointer { append($0) }
    }

    mutating func append<T: BitwiseCopyable>(_ pointer: UnsafePointer<T>, count: Int) {
        append(UnsafeBufferPointer(start: pointer, count: count))
    }

    /// The image: header, section table, sections.
    public func encoded(kind: UInt32, version: UInt32) -> [UInt8] {
        let tableStart = BinaryTableFormat.headerSize
        var offset = BinaryTableFormat.align(tableStart + sections.count * BinaryTableFormat.entrySize)
        var entries: [(UInt64, UInt64, UInt32)] = []
        for s in sections {
            entries.append((UInt64(offset), UInt64(s.bytes.count), UInt32(s.stride)))
            offset = BinaryTableFormat.align(offset + s.bytes.count)
        }
        var out = [UInt8](repeating: 0, count: offset)
        out.withUnsafeMutableBytes { raw in
            func put<T: FixedWidthInteger>(_ value: T, at position: Int) {
                raw.storeBytes(of: value.littleEndian, toByteOffset: position, as: T.self)
            }
            raw.copyBytes(from: BinaryTableFormat.magic)
            put(kind, at: 8)
            put(version, at: 12)
            put(UInt32(sections.count), at: 16)
            put(UInt64(offset), at: 24)
            for (i, e) in entries.enumerated() {
                let p = tableStart + i * BinaryTableFormat.entrySize
                put(e.0, at: p)
                put(e.1, at: p + 8)
                put(e.2, at: p + 16)
                let bytes = sections[i].bytes
                if !bytes.isEmpty {
                    bytes.withUnsafeBytes { source in
                        UnsafeMutableRawBufferPointer(rebasing: raw[Int(e.0)..<(Int(e.0) + bytes.count)]).copyMemory(from: source)
                    }
                }
            }
            let checksum = BinaryTableFormat.checksum(UnsafeRawBufferPointer(rebasing: raw[BinaryTableFormat.headerSize...]))
            put(checksum, at: 32)
        }
        return out
    }
}

/// Reads the sections of an image in the order they were written, each checked for its element type.
/// The memory must stay alive (and unchanged) as long as the pointers handed out are used.
public struct BinaryTableReader {
    private let base: UnsafeRawPointer
    private let sections: [(offset: Int, byteCount: Int, stride: Int)]
    private var next = 0

    /// Validates the header, the section table and the checksum of `image` for `kind` and `version`.
    public init(_ image: UnsafeRawBufferPointer, kind: UInt32, version: UInt32) throws {
        let size = image.count
        guard size >= BinaryTableFormat.headerSize, let base = image.baseAddress else {
            throw BinaryTableError("\(size) bytes is shorter than the header")
        }
        guard Int(bitPattern: base) % BinaryTableFormat.alignment == 0 else {
            throw BinaryTableError("image memory is not \(BinaryTableFormat.alignment)-byte aligned")
        }
        func get<T: FixedWidthInteger>(_ type: T.Type, at position: Int) -> T {
            T(littleEndian: image.loadUnaligned(fromByteOffset: position, as: T.self))
        }
        guard image[0..<8].elementsEqual(BinaryTableFormat.magic) else { throw BinaryTableError("wrong magic bytes") }
        guard image[20..<24].allSatisfy({ $0 == 0 }), image[40..<48].allSatisfy({ $0 == 0 }) else {
            throw BinaryTableError("reserved header bytes are not zero")
        }
        guard get(UInt32.self, at: 8) == kind else { throw BinaryTableError("kind \(get(UInt32.self, at: 8)), expected \(kind)") }
        guard get(UInt32.self, at: 12) == version else {
            throw BinaryTableError("format version \(get(UInt32.self, at: 12)), expected \(version)")
        }
        guard get(UInt64.self, at: 24) == UInt64(size) else {
            throw BinaryTableError("header says \(get(UInt64.self, at: 24)) bytes, the image has \(size)")
        }
        let count = Int(get(UInt32.self, at: 16))
        let tableEnd = BinaryTableFormat.headerSize + count * BinaryTableFormat.entrySize
        guard count <= 4096, tableEnd <= size else { throw BinaryTableError("section table of \(count) entries does not fit") }
        let checksum = BinaryTableFormat.checksum(UnsafeRawBufferPointer(rebasing: image[BinaryTableFormat.headerSize...]))
        guard checksum == get(UInt64.self, at: 32) else { throw BinaryTableError("checksum mismatch (the file is damaged)") }
        var sections: [(Int, Int, Int)] = []
        for i in 0..<count {
            let p = BinaryTableFormat.headerSize + i * BinaryTableFormat.entrySize
            let offset = get(UInt64.self, at: p), byteCount = get(UInt64.self, at: p + 8), stride = get(UInt32.self, at: p + 16)
            guard get(UInt32.self, at: p + 20) == 0 else { throw BinaryTableError("section \(i): reserved bytes are not zero") }
            guard offset % UInt64(BinaryTableFormat.alignment) == 0, offset >= UInt64(tableEnd), offset <= UInt64(size),
                  byteCount <= UInt64(size) - offset, stride > 0, stride <= 64, byteCount % UInt64(stride) == 0 else {
                throw BinaryTableError("section \(i) (offset \(offset), \(byteCount) bytes, stride \(stride)) is out of bounds")
            }
            sections.append((Int(offset), Int(byteCount), Int(stride)))
        }
        self.base = base
        self.sections = sections
    }

    /// The next section as `T` values.
    public mutating func next<T: BitwiseCopyable>(_ type: T.Type) throws -> UnsafeBufferPointer<T> {
        guard next < sections.count else { throw BinaryTableError("section \(next) is missing") }
        let s = sections[next]
        guard s.stride == MemoryLayout<T>.stride, MemoryLayout<T>.alignment <= BinaryTableFormat.alignment else {
            throw BinaryTableError("section \(next) has \(s.stride)-byte elements, expected \(MemoryLayout<T>.stride)")
        }
        next += 1
        return UnsafeBufferPointer(start: (base + s.offset).assumingMemoryBound(to: T.self), count: s.byteCount / s.stride)
    }

    /// The next section, which must hold exactly `count` values.
    public mutating func next<T: BitwiseCopyable>(_ type: T.Type, count: Int, _ what: String) throws -> UnsafeBufferPointer<T> {
        let values = try next(type)
        guard values.count == count else { throw BinaryTableError("\(what): \(values.count) values, expected \(count)") }
        return values
    }

    /// Fails unless every section has been read.
    public func expectEnd() throws {
        guard next == sections.count else { throw BinaryTableError("\(sections.count - next) unexpected trailing sections") }
    }
}

enum BinaryTableFormat {
    static let magic: [UInt8] = Array("MIRGTBL\0".utf8)
    static let headerSize = 48
    static let entrySize = 24
    static let alignment = 64

    static func align(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    /// A 64-bit checksum of `bytes` (four interleaved multiply-xor lanes over 8-byte words, then the
    /// tail): fast enough to run on every load, and any damaged byte changes it with overwhelming probability.
    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let prime: UInt64 = 0x9E37_79B9_7F4A_7C15
        var lanes: (UInt64, UInt64, UInt64, UInt64) = (1, 2, 3, 4)
        let words = bytes.count / 8
        var i = 0
        @inline(__always) func mix(_ h: UInt64, _ w: UInt64) -> UInt64 {
            let x = (h ^ w) &* prime
            return x ^ (x >> 29)
        }
        while i + 4 <= words {
            lanes.0 = mix(lanes.0, bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
            lanes.1 = mix(lanes.1, bytes.loadUnaligned(fromByteOffset: (i + 1) * 8, as: UInt64.self))
            lanes.2 = mix(lanes.2, bytes.loadUnaligned(fromByteOffset: (i + 2) * 8, as: UInt64.self))
            lanes.3 = mix(lanes.3, bytes.loadUnaligned(fromByteOffset: (i + 3) * 8, as: UInt64.self))
            i += 4
        }
        var h = mix(mix(mix(lanes.0, lanes.1), lanes.2), lanes.3)
        while i < words {
            h = mix(h, bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
            i += 1
        }
        for k in (words * 8)..<bytes.count { h = mix(h, UInt64(bytes[k]) | 0x100) }
        return mix(h, UInt64(bytes.count))
    }
}

extension FrozenMemory {
    /// `byteCount` bytes of 64-byte aligned memory owned by this object (e.g. a table image read from a file).
    func allocate(byteCount: Int) -> UnsafeMutableRawPointer {
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: BinaryTableFormat.alignment)
        adopt(pointer)
        return pointer
    }
}

/// Checks the invariants the lookups rely on, so a damaged image fails validation instead of reading
/// out of bounds.
enum TableCheck {
    /// `values` all in `range`.
    static func values(_ values: UnsafeBufferPointer<Int32>, in range: Range<Int32>, _ what: String) throws {
        for v in values where !range.contains(v) { throw BinaryTableError("\(what): value \(v) outside \(range)") }
    }

    /// CSR offsets: starts at 0, never decreases, ends at `total`.
    static func offsets(_ starts: UnsafeBufferPointer<Int32>, total: Int, _ what: String) throws {
        guard let first = starts.first, first == 0, Int(starts.last!) == total else {
            throw BinaryTableError("\(what): offsets must run from 0 to \(total)")
        }
        for k in 1..<starts.count where starts[k] < starts[k - 1] { throw BinaryTableError("\(what): offsets decrease at \(k)") }
    }
}

/// Reads a whole file into memory owned by `memory` (one read), for `BinaryTableReader`.
func readImage(_ url: URL, into memory: FrozenMemory) throws -> UnsafeRawBufferPointer {
    let handle = try FileHandle(forReadingFrom: url)
    defer { try? handle.close() }
    let size = Int(try handle.seekToEnd())
    try handle.seek(toOffset: 0)
    let pointer = memory.allocate(byteCount: size)
    var filled = 0
    while filled < size {
        let n = read(handle.fileDescriptor, pointer + filled, size - filled)
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw BinaryTableError("\(url.path) ended after \(filled) of \(size) bytes") }
        filled += n
    }
    return UnsafeRawBufferPointer(start: pointer, count: size)
}

/// A binary table image read from a file in one go, owning its (64-byte aligned) memory; for models
/// outside this module that build their values from an image (e.g. CHAIR's ground truth).
public final class BinaryTableFile: @unchecked Sendable {
    private let memory = FrozenMemory()
    /// The file's bytes, valid as long as this object.
    public let bytes: UnsafeRawBufferPointer

    public init(contentsOf url: URL) throws {
        bytes = try readImage(url, into: memory)
    }

    /// A reader over the image, checked for `kind` and `version` (see `BinaryTableReader`).
    public func reader(kind: UInt32, version: UInt32) throws -> BinaryTableReader {
        try BinaryTableReader(bytes, kind: kind, version: version)
    }
}

extension BinaryTableWriter {
    /// Appends a list of strings as two sections (UTF-8 bytes, offsets); read back by `nextStrings`.
    public mutating func appendStrings(_ strings: [String]) {
        var bytes: [UInt8] = [], starts: [Int32] = [0]
        for s in strings {
            bytes += Array(s.utf8)
            starts.append(Int32(bytes.count))
        }
        append(bytes)
        append(starts)
    }

    /// Appends values as a section (public form of the typed appends).
    public mutating func appendValues<T: BitwiseCopyable>(_ values: [T]) { append(values) }
}

extension BinaryTableReader {
    /// A list of strings written by `appendStrings` (offsets checked).
    public mutating func nextStrings(_ what: String) throws -> [String] {
        let bytes = try next(UInt8.self)
        let starts = try next(Int32.self)
        try TableCheck.offsets(starts, total: bytes.count, what)
        return (0..<(starts.count - 1)).map { i in
            String(decoding: UnsafeBufferPointer(rebasing: bytes[Int(starts[i])..<Int(starts[i + 1])]), as: UTF8.self)
        }
    }
}
