import Foundation

/// The ZIP container of a `torch.save` file (PyTorch ≥ 1.6): a plain ZIP archive whose entries are stored
/// uncompressed (PyTorch writes them with miniz at level 0 and pads each entry's data to 64 bytes through the
/// local header's extra field, so tensor bytes can be memory-mapped in place).
///
/// Only the central directory is trusted for names and sizes (ZIP64 fields included); each entry's data
/// offset is read from its local header, whose extra field differs from the central one. Every offset and
/// size is checked against the file before use. Format: PKWARE APPNOTE.TXT 6.3.x, sections 4.3.7 (local
/// header), 4.3.12 (central directory header), 4.3.14–4.3.16 (ZIP64 end of central directory record and
/// locator, end of central directory record) and 4.5.3 (ZIP64 extended information extra field).
public struct TorchZipArchive: Sendable {
    public struct Entry: Sendable {
        public let name: String
        /// Offset of the entry's first data byte in the file.
        public let dataOffset: Int
        public let size: Int
    }

    public let path: String
    /// Entries by name, in central-directory order in `names`.
    public let entries: [String: Entry]
    public let names: [String]

    static let localHeaderSignature: UInt32 = 0x0403_4B50
    static let centralHeaderSignature: UInt32 = 0x0201_4B50
    static let endSignature: UInt32 = 0x0605_4B50
    static let zip64EndSignature: UInt32 = 0x0606_4B50
    static let zip64LocatorSignature: UInt32 = 0x0706_4B50

    /// True when the bytes start like a ZIP archive (a local file header).
    public static func looksLikeZip(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 4 && ByteReader(bytes).u32(0) == localHeaderSignature
    }

    public init(bytes: UnsafeRawBufferPointer, path: String) throws {
        self.path = path
        let r = ByteReader(bytes)
        func fail(_ detail: String) -> ModelError {
            .unreadableCheckpoint(path: path, detail: detail,
                                  fix: "The file is truncated or not a torch.save archive; download it again.")
        }
        // The end-of-central-directory record: 22 bytes plus a comment of at most 65,535 bytes at the end.
        guard bytes.count >= 22 else { throw fail("it has \(bytes.count) bytes, fewer than a ZIP archive's end record (22)") }
        var end = -1
        var at = bytes.count - 22
        let lowest = max(0, bytes.count - 22 - 65_535)
        while at >= lowest {
            if r.u32(at) == Self.endSignature, let commentLength = r.u16Checked(at + 20), at + 22 + Int(commentLength) == bytes.count {
                end = at
                break
            }
            at -= 1
        }
        guard end >= 0 else { throw fail("no ZIP end-of-central-directory record in its last 65,557 bytes") }
        var entryCount = Int(r.u16(end + 10))
        var directorySize = Int(r.u32(end + 12))
        var directoryOffset = Int(r.u32(end + 16))
        if entryCount == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            // ZIP64: a 20-byte locator right before the end record points at the 56-byte ZIP64 end record.
            let locator = end - 20
            guard locator >= 0, r.u32(locator) == Self.zip64LocatorSignature else {
                throw fail("the end record asks for ZIP64 fields but the ZIP64 locator is missing")
            }
            guard let record = r.intChecked64(locator + 8), record >= 0, record <= bytes.count - 56,
                  r.u32(record) == Self.zip64EndSignature else {
                throw fail("the ZIP64 end-of-central-directory record is outside the file or malformed")
            }
            guard let count = r.intChecked64(record + 32), let size = r.intChecked64(record + 40),
                  let offset = r.intChecked64(record + 48) else {
                throw fail("the ZIP64 end record holds sizes beyond 2^63")
            }
            entryCount = count
            directorySize = size
            directoryOffset = offset
        }
        guard directoryOffset >= 0, directorySize >= 0, directoryOffset <= bytes.count,
              directorySize <= bytes.count - directoryOffset else {
            throw fail("its central directory (\(directorySize) bytes at \(directoryOffset)) lies outside the file")
        }
        // Each central header is at least 46 bytes: a count beyond that is a lie, not a loop bound.
        guard entryCount <= directorySize / 46 else {
            throw fail("its end record claims \(entryCount) entries in a \(directorySize)-byte central directory")
        }
        var entries: [String: Entry] = [:]
        var names: [String] = []
        var p = directoryOffset
        let directoryEnd = directoryOffset + directorySize
        for index in 0..<entryCount {
            guard p <= directoryEnd - 46, r.u32(p) == Self.centralHeaderSignature else {
                throw fail("central directory entry \(index) at byte \(p) is malformed")
            }
            let flags = r.u16(p + 8)
            let method = r.u16(p + 10)
            var compressedSize = Int(r.u32(p + 20))
            var size = Int(r.u32(p + 24))
            let nameLength = Int(r.u16(p + 28))
            let extraLength = Int(r.u16(p + 30))
            let commentLength = Int(r.u16(p + 32))
            var localOffset = Int(r.u32(p + 42))
            let nameStart = p + 46
            guard nameStart + nameLength + extraLength + commentLength <= directoryEnd else {
                throw fail("central directory entry \(index) runs past the directory")
            }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[nameStart..<(nameStart + nameLength)]), as: UTF8.self)
            // ZIP64 extended information: the 8-byte values replace, in this order, the fields set to 0xFFFFFFFF.
            var e = nameStart + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {
                let id = r.u16(e), length = Int(r.u16(e + 2))
                let body = e + 4
                guard body + length <= extraEnd else { throw fail("entry '\(name)' has a malformed extra field") }
                if id == 0x0001 {
                    var q = body
                    func next() throws -> Int {
                        guard q + 8 <= body + length, let v = r.intChecked64(q) else {
                            throw fail("entry '\(name)' has a short or oversized ZIP64 extra field")
                        }
                        q += 8
                        return v
                    }
                    if size == 0xFFFF_FFFF { size = try next() }
                    if compressedSize == 0xFFFF_FFFF { compressedSize = try next() }
                    if localOffset == 0xFFFF_FFFF { localOffset = try next() }
                }
                e = body + length
            }
            p = extraEnd + commentLength
            if flags & 1 != 0 {
                throw ModelError.unreadableCheckpoint(path: path, detail: "entry '\(name)' is encrypted",
                                                      fix: "Save the checkpoint again with torch.save (it never encrypts).")
            }
            if method != 0 {
                let kind = method == 8 ? "deflate-compressed" : "compressed (method \(method))"
                throw ModelError.unreadableCheckpoint(
                    path: path, detail: "entry '\(name)' is \(kind); Mirage maps tensor data in place and reads only stored (uncompressed) entries",
                    fix: "The archive was re-zipped by another tool: save it again with torch.save, or rebuild it uncompressed (zip -0).")
            }
            guard compressedSize == size else { throw fail("stored entry '\(name)' has different compressed and plain sizes") }
            guard localOffset >= 0, localOffset <= bytes.count - 30, r.u32(localOffset) == Self.localHeaderSignature else {
                throw fail("entry '\(name)' points at byte \(localOffset), where there is no local file header")
            }
            let dataOffset = localOffset + 30 + Int(r.u16(localOffset + 26)) + Int(r.u16(localOffset + 28))
            guard size >= 0, dataOffset <= bytes.count, size <= bytes.count - dataOffset else {
                throw fail("entry '\(name)' (\(size) bytes at \(dataOffset)) runs past the end of the \(bytes.count)-byte file")
            }
            if entries[name] == nil { names.append(name) }
            entries[name] = Entry(name: name, dataOffset: dataOffset, size: size)
        }
        self.entries = entries
        self.names = names
    }
}

/// Little-endian reads from a byte buffer; callers check bounds before the unchecked reads, the `Checked`
/// ones return nil out of bounds.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    func u16(_ at: Int) -> UInt16 {
        guard at >= 0, at <= bytes.count - 2 else { return 0 }
        return UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self))
    }
    func u16Checked(_ at: Int) -> UInt16? {
        guard at >= 0, at <= bytes.count - 2 else { return nil }
        return u16(at)
    }
    func u32(_ at: Int) -> UInt32 {
        guard at >= 0, at <= bytes.count - 4 else { return 0 }
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))
    }
    func u64(_ at: Int) -> UInt64? {
        guard at >= 0, at <= bytes.count - 8 else { return nil }
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
    }
    /// An unsigned 64-bit field as Int, nil when absent or ≥ 2^63.
    func intChecked64(_ at: Int) -> Int? {
        guard let v = u64(at), v <= UInt64(Int.max) else { return nil }
        return Int(v)
    }
}
