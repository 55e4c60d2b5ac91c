/// Immutable memory for lookup tables read on hot paths from several threads at once.
///
/// Reading a Swift array stored in a shared value retains and releases its buffer; two threads doing
/// that per token fight over the same reference count (measured: tagging on 2 threads ran slower than
/// on 1). Tables are therefore copied once into raw memory owned by this object and read through plain
/// pointers. Nothing is written after the owning value's initializer returns.
final class FrozenMemory: @unchecked Sendable {
    private var allocations: [UnsafeMutableRawPointer] = []

    /// A read-only copy of `array`, alive as long as this object.
    func freeze<T: BitwiseCopyable>(_ array: [T]) -> UnsafePointer<T> {
        let pointer = UnsafeMutablePointer<T>.allocate(capacity: max(array.count, 1))
        array.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { pointer.initialize(from: base, count: source.count) }
        }
        allocations.append(UnsafeMutableRawPointer(pointer))
        return UnsafePointer(pointer)
    }

    /// Takes ownership of `pointer` (from `UnsafeMutableRawPointer.allocate`): freed with this object.
    func adopt(_ pointer: UnsafeMutableRawPointer) {
        allocations.append(pointer)
    }

    deinit {
        for allocation in allocations { allocation.deallocate() }
    }
}

/// Builds an `ExactStringTable`: interns strings, compared **byte for byte** (UTF-8), to dense ids
/// `0..<count`.
///
/// Python compares `str` by code points, while Swift's `String` equality and hashing use canonical
/// equivalence ("é" precomposed equals "e" + U+0301). Reproducing NLTK's dictionary lookups exactly
/// therefore needs byte-exact keys; the table also lets callers look up slices of a buffer without
/// building a `String` per lookup (open addressing, keys stored contiguously).
struct StringTableBuilder {
    fileprivate var arena: [UInt8] = []
    /// `starts[id]..<starts[id + 1]` is the key of `id` in `arena`.
    fileprivate var starts: [Int32] = [0]
    fileprivate var keyHashes: [UInt64] = []
    /// Open-addressing slots holding `id + 1`; 0 marks an empty slot. Power-of-two sized.
    fileprivate var slots: [Int32]

    init(minimumCapacity: Int = 16) {
        var size = 16
        while size < minimumCapacity * 2 { size <<= 1 }
        slots = [Int32](repeating: 0, count: size)
    }

    var count: Int { keyHashes.count }

    /// The id of `key`, or -1 when absent.
    func find(_ key: UnsafeBufferPointer<UInt8>) -> Int32 {
        arena.withUnsafeBufferPointer { arena in
            starts.withUnsafeBufferPointer { starts in
                keyHashes.withUnsafeBufferPointer { hashes in
                    slots.withUnsafeBufferPointer { slots in
                        tableFind(key, arena: arena.baseAddress!, starts: starts.baseAddress!,
                                  hashes: hashes.baseAddress!, slots: slots.baseAddress!, mask: slots.count - 1)
                    }
                }
            }
        }
    }

    func find(_ key: String) -> Int32 { withUTF8Buffer(key) { find($0) } }
    func find(_ key: [UInt8]) -> Int32 { key.withUnsafeBufferPointer { find($0) } }

    /// Interns `key`, returning its id (existing or new).
    @discardableResult
    mutating func insert(_ key: UnsafeBufferPointer<UInt8>) -> Int32 {
        let existing = find(key)
        if existing >= 0 { return existing }
        let id = Int32(keyHashes.count)
        arena.append(contentsOf: key)
        starts.append(Int32(arena.count))
        keyHashes.append(stringTableHash(key))
        if keyHashes.count * 2 > slots.count {
            slots = [Int32](repeating: 0, count: slots.count * 2)
            for id in 0..<keyHashes.count { place(id) }
        } else {
            place(Int(id))
        }
        return id
    }

    @discardableResult
    mutating func insert(_ key: String) -> Int32 { withUTF8Buffer(key) { insert($0) } }

    @discardableResult
    mutating func insert(_ key: [UInt8]) -> Int32 { key.withUnsafeBufferPointer { insert($0) } }

    /// The key of `id` as a string.
    func string(_ id: Int32) -> String {
        String(decoding: arena[Int(starts[Int(id)])..<Int(starts[Int(id) + 1])], as: UTF8.self)
    }

    private mutating func place(_ id: Int) {
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: keyHashes[id]) & mask
        while slots[i] != 0 { i = (i + 1) & mask }
        slots[i] = Int32(id + 1)
    }
}

/// The frozen form of a `StringTableBuilder`: byte-exact lookups through raw pointers (see
/// `FrozenMemory`), safe to share between threads.
struct ExactStringTable: @unchecked Sendable {
    private let arena: UnsafePointer<UInt8>
    private let starts: UnsafePointer<Int32>
    private let hashes: UnsafePointer<UInt64>
    private let slots: UnsafePointer<Int32>
    private let mask: Int
    let count: Int

    init(_ builder: StringTableBuilder, memory: FrozenMemory) {
        arena = memory.freeze(builder.arena)
        starts = memory.freeze(builder.starts)
        hashes = memory.freeze(builder.keyHashes)
        slots = memory.freeze(builder.slots)
        mask = builder.slots.count - 1
        count = builder.count
    }

    /// The id of `key`, or -1 when absent.
    @inline(__always)
    func find(_ key: UnsafeBufferPointer<UInt8>) -> Int32 {
        tableFind(key, arena: arena, starts: starts, hashes: hashes, slots: slots, mask: mask)
    }

    /// Appends the table as four sections (keys, key offsets, hashes, slots).
    func write(to writer: inout BinaryTableWriter) {
        writer.append(arena, count: Int(starts[count]))
        writer.append(starts, count: count + 1)
        writer.append(hashes, count: count)
        writer.append(slots, count: mask + 1)
    }

    /// A table read back from `write(to:)`'s sections, pointing into the image (no copy). Checks that
    /// every key lies inside the key bytes, every slot names a key or is empty, and the slot count is a
    /// power of two with a free slot (so a lookup of an absent key ends), so damaged data cannot make a
    /// lookup read out of bounds or loop.
    init(reading reader: inout BinaryTableReader, _ what: String) throws {
        let arena = try reader.next(UInt8.self)
        let starts = try reader.next(Int32.self)
        let count = starts.count - 1
        guard count >= 0 else { throw BinaryTableError("\(what): no key offsets") }
        let hashes = try reader.next(UInt64.self, count: count, "\(what) hashes")
        let slots = try reader.next(Int32.self)
        try TableCheck.offsets(starts, total: arena.count, "\(what) keys")
        guard slots.count > count, slots.count & (slots.count - 1) == 0 else {
            throw BinaryTableError("\(what): \(slots.count) slots for \(count) keys")
        }
        try TableCheck.values(slots, in: 0..<Int32(count + 1), "\(what) slots")
        guard slots.contains(0) else { throw BinaryTableError("\(what): no free slot") }
        self.arena = arena.baseAddress ?? UnsafePointer(bitPattern: 1)!
        self.starts = starts.baseAddress!
        self.hashes = hashes.baseAddress ?? UnsafePointer(bitPattern: 8)!
        self.slots = slots.baseAddress!
        mask = slots.count - 1
        self.count = count
    }

    func find(_ key: String) -> Int32 { withUTF8Buffer(key) { find($0) } }
    func find(_ key: [UInt8]) -> Int32 { key.withUnsafeBufferPointer { find($0) } }

    /// The key of `id` as UTF-8 bytes (valid as long as the table's memory).
    @inline(__always)
    func key(_ id: Int32) -> UnsafeBufferPointer<UInt8> {
        let a = Int(starts[Int(id)]), b = Int(starts[Int(id) + 1])
        return UnsafeBufferPointer(start: arena + a, count: b - a)
    }
}

/// FNV-1a over the bytes with a final avalanche; keys here are short (words, suffixes).
@inline(__always)
private func stringTableHash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
    h ^= h >> 29
    h = h &* 0xbf58_476d_1ce4_e5b9
    return h ^ (h >> 32)
}

@inline(__always)
private func tableFind(_ key: UnsafeBufferPointer<UInt8>, arena: UnsafePointer<UInt8>, starts: UnsafePointer<Int32>,
                       hashes: UnsafePointer<UInt64>, slots: UnsafePointer<Int32>, mask: Int) -> Int32 {
    let h = stringTableHash(key)
    var i = Int(truncatingIfNeeded: h) & mask
    while true {
        let s = slots[i]
        if s == 0 { return -1 }
        let id = Int(s - 1)
        if hashes[id] == h {
            let a = Int(starts[id]), n = Int(starts[id + 1]) - a
            if n == key.count {
                var equal = true
                for k in 0..<n where arena[a + k] != key[k] { equal = false; break }
                if equal { return Int32(id) }
            }
        }
        i = (i + 1) & mask
    }
}

/// Runs `body` over the UTF-8 bytes of `string` without copying native strings.
@inline(__always)
func withUTF8Buffer<R>(_ string: String, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
    if let r = try string.utf8.withContiguousStorageIfAvailable(body) { return r }
    let bytes = Array(string.utf8)
    return try bytes.withUnsafeBufferPointer(body)
}
