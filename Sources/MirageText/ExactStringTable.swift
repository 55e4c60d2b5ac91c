/// A set of strings compared **byte for byte** (UTF-8), each interned to a dense id `0..<count`.
///
/// Python compares `str` by code points, while Swift's `String` equality and hashing use canonical
/// equivalence ("é" precomposed equals "e" + U+0301). Reproducing NLTK's dictionary lookups exactly
/// therefore needs byte-exact keys; this table also lets callers look up slices of a buffer without
/// building a `String` per lookup (open addressing, keys stored contiguously).
struct ExactStringTable: Sendable {
    private var arena: [UInt8] = []
    /// `starts[id]..<starts[id + 1]` is the key of `id` in `arena`.
    private var starts: [Int32] = [0]
    private var keyHashes: [UInt64] = []
    /// Open-addressing slots holding `id + 1`; 0 marks an empty slot. Power-of-two sized.
    private var slots: [Int32]
    private var mask: Int

    init(minimumCapacity: Int = 16) {
        var size = 16
        while size < minimumCapacity * 2 { size <<= 1 }
        slots = [Int32](repeating: 0, count: size)
        mask = size - 1
    }

    var count: Int { keyHashes.count }

    /// FNV-1a over the bytes with a final avalanche; keys here are short (words, suffixes).
    @inline(__always)
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        h ^= h >> 29
        h = h &* 0xbf58_476d_1ce4_e5b9
        return h ^ (h >> 32)
    }

    /// The id of `key`, or -1 when absent.
    @inline(__always)
    func find(_ key: UnsafeBufferPointer<UInt8>) -> Int32 {
        let h = Self.hash(key)
        return slots.withUnsafeBufferPointer { slots in
            arena.withUnsafeBufferPointer { arena in
                starts.withUnsafeBufferPointer { starts in
                    keyHashes.withUnsafeBufferPointer { hashes in
                        var i = Int(truncatingIfNeeded: h) & mask
                        while true {
                            let s = slots[i]
                            if s == 0 { return -1 }
                            let id = Int(s - 1)
                            if hashes[id] == h {
                                let a = Int(starts[id]), b = Int(starts[id + 1])
                                if b - a == key.count
                                    && (key.count == 0 || memcmpEqual(arena.baseAddress! + a, key.baseAddress!, key.count)) {
                                    return Int32(id)
                                }
                            }
                            i = (i + 1) & mask
                        }
                    }
                }
            }
        }
    }

    func find(_ key: String) -> Int32 {
        withUTF8Buffer(key) { find($0) }
    }

    func find(_ key: [UInt8]) -> Int32 {
        key.withUnsafeBufferPointer { find($0) }
    }

    /// Interns `key`, returning its id (existing or new).
    @discardableResult
    mutating func insert(_ key: UnsafeBufferPointer<UInt8>) -> Int32 {
        let existing = find(key)
        if existing >= 0 { return existing }
        let id = Int32(keyHashes.count)
        arena.append(contentsOf: key)
        starts.append(Int32(arena.count))
        keyHashes.append(Self.hash(key))
        if keyHashes.count * 2 > slots.count { grow() } else { place(Int(id)) }
        return id
    }

    @discardableResult
    mutating func insert(_ key: String) -> Int32 {
        withUTF8Buffer(key) { insert($0) }
    }

    @discardableResult
    mutating func insert(_ key: [UInt8]) -> Int32 {
        key.withUnsafeBufferPointer { insert($0) }
    }

    /// The key of `id` as a string.
    func string(_ id: Int32) -> String {
        let a = Int(starts[Int(id)]), b = Int(starts[Int(id) + 1])
        return String(decoding: arena[a..<b], as: UTF8.self)
    }

    private mutating func place(_ id: Int) {
        var i = Int(truncatingIfNeeded: keyHashes[id]) & mask
        while slots[i] != 0 { i = (i + 1) & mask }
        slots[i] = Int32(id + 1)
    }

    private mutating func grow() {
        let size = slots.count * 2
        slots = [Int32](repeating: 0, count: size)
        mask = size - 1
        for id in 0..<keyHashes.count { place(id) }
    }
}

@inline(__always)
private func memcmpEqual(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ n: Int) -> Bool {
    for k in 0..<n where a[k] != b[k] { return false }
    return true
}

/// Runs `body` over the UTF-8 bytes of `string` without copying native strings.
@inline(__always)
func withUTF8Buffer<R>(_ string: String, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
    if let r = try string.utf8.withContiguousStorageIfAvailable(body) { return r }
    let bytes = Array(string.utf8)
    return try bytes.withUnsafeBufferPointer(body)
}
