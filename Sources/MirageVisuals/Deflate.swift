// A small zlib/deflate compressor: greedy LZ77 matching (hash chains over a 32 KiB window) coded with
// deflate's fixed Huffman codes, falling back to stored blocks when that would be larger. Constants are
// the format's, from RFC 1951 (deflate) sections 3.2.5-3.2.6 and RFC 1950 (zlib).

/// Compresses bytes into a zlib stream (RFC 1950) that any inflater accepts.
public enum ZlibCompressor {
    /// A zlib stream holding `input`: header, one deflate stream, Adler-32 trailer.
    public static func compress(_ input: [UInt8]) -> [UInt8] {
        // CMF 0x78: deflate with a 32 KiB window; FLG 0x01 makes (CMF << 8 | FLG) a multiple of 31.
        var out: [UInt8] = [0x78, 0x01]
        let fixed = FixedHuffmanDeflater.deflate(input)
        if fixed.count <= storedSize(input.count) {
            out += fixed
        } else {
            appendStored(input, to: &out)
        }
        let adler = Adler32.checksum(input)
        out += [UInt8(adler >> 24), UInt8(adler >> 16 & 0xFF), UInt8(adler >> 8 & 0xFF), UInt8(adler & 0xFF)]
        return out
    }

    /// Deflate stored blocks: at most 65535 bytes each, a 5-byte header per block.
    static func storedSize(_ count: Int) -> Int { max(1, (count + 65534) / 65535) * 5 + count }

    /// Appends `input` as a sequence of stored (uncompressed) blocks, the last one marked final.
    static func appendStored(_ input: [UInt8], to out: inout [UInt8]) {
        var start = 0
        repeat {
            let length = min(65535, input.count - start)
            let final = start + length == input.count
            out.append(final ? 1 : 0)  // BFINAL, BTYPE 00, padded to the byte boundary
            out += [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8((~length >> 8) & 0xFF)]
            out += input[start..<(start + length)]
            start += length
        } while start < input.count
    }
}

/// Writes bits least-significant first, as deflate requires.
struct BitWriter {
    private(set) var bytes: [UInt8] = []
    private var buffer: UInt64 = 0
    private var count = 0

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    mutating func write(_ value: UInt32, bits: Int) {
        buffer |= UInt64(value) << UInt64(count)
        count += bits
        while count >= 8 {
            bytes.append(UInt8(truncatingIfNeeded: buffer))
            buffer >>= 8
            count -= 8
        }
    }

    mutating func finish() -> [UInt8] {
        if count > 0 { bytes.append(UInt8(truncatingIfNeeded: buffer)) }
        buffer = 0
        count = 0
        return bytes
    }
}

/// One final deflate block with BTYPE 01 (fixed Huffman codes).
enum FixedHuffmanDeflater {
    // RFC 1951 3.2.5: length codes 257...285, their base lengths and extra bits.
    static let lengthBase: [Int] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                    35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    static let lengthExtra: [Int] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                     3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    // Distance codes 0...29.
    static let distanceBase: [Int] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
                                      257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    static let distanceExtra: [Int] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
                                       7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]

    /// For each literal/length symbol 0...287: its fixed code, bit-reversed for LSB-first output, and length.
    /// RFC 1951 3.2.6: 0-143 -> 8 bits from 0x30, 144-255 -> 9 bits from 0x190, 256-279 -> 7 bits from 0,
    /// 280-287 -> 8 bits from 0xC0.
    static let literalCodes: [(code: UInt32, bits: Int)] = (0..<288).map { symbol in
        let (code, bits): (Int, Int)
        switch symbol {
        case 0...143: (code, bits) = (0x30 + symbol, 8)
        case 144...255: (code, bits) = (0x190 + symbol - 144, 9)
        case 256...279: (code, bits) = (symbol - 256, 7)
        default: (code, bits) = (0xC0 + symbol - 280, 8)
        }
        return (reversed(UInt32(code), bits: bits), bits)
    }

    /// Length 3...258 -> index into `lengthBase`.
    static let lengthCodeIndex: [UInt8] = {
        var table = [UInt8](repeating: 0, count: 259)
        for code in 0..<lengthBase.count {
            let end = code + 1 < lengthBase.count ? lengthBase[code + 1] : 259
            for length in lengthBase[code]..<end { table[length] = UInt8(code) }
        }
        table[258] = 28
        return table
    }()

    static func reversed(_ value: UInt32, bits: Int) -> UInt32 {
        var v = value, r: UInt32 = 0
        for _ in 0..<bits { r = r << 1 | (v & 1); v >>= 1 }
        return r
    }

    static func distanceCode(_ distance: Int) -> Int {
        // Binary search over the 30 bases.
        var lo = 0, hi = distanceBase.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if distanceBase[mid] <= distance { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    static let windowSize = 32768
    static let minMatch = 3
    static let maxMatch = 258
    static let hashBits = 15
    /// How many earlier positions with the same 3-byte hash are tried per match.
    static let maxChain = 16

    static func deflate(_ input: [UInt8]) -> [UInt8] {
        var writer = BitWriter(capacity: input.count / 4 + 64)
        writer.write(1, bits: 1)  // BFINAL
        writer.write(1, bits: 2)  // BTYPE 01
        let literalCodes = self.literalCodes
        let count = input.count
        input.withUnsafeBufferPointer { data in
            var head = [Int32](repeating: -1, count: 1 << hashBits)
            var previous = [Int32](repeating: -1, count: windowSize)
            func hash(_ i: Int) -> Int {
                let v = UInt32(data[i]) << 16 | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2])
                return Int((v &* 2_654_435_761) >> UInt32(32 - hashBits))
            }
            func insert(_ i: Int) {
                guard i + minMatch <= count else { return }
                let h = hash(i)
                previous[i & (windowSize - 1)] = head[h]
                head[h] = Int32(i)
            }
            var i = 0
            while i < count {
                var bestLength = 0, bestDistance = 0
                if i + minMatch <= count {
                    var candidate = Int(head[hash(i)])
                    var chain = 0
                    let limit = min(maxMatch, count - i)
                    while candidate >= 0, i - candidate <= windowSize, chain < maxChain {
                        if data[candidate + bestLength] == data[i + bestLength] || bestLength == 0 {
                            var length = 0
                            while length < limit, data[candidate + length] == data[i + length] { length += 1 }
                            if length > bestLength {
                                bestLength = length
                                bestDistance = i - candidate
                                if length == limit { break }
                            }
                        }
                        let next = Int(previous[candidate & (windowSize - 1)])
                        if next >= candidate { break }
                        candidate = next
                        chain += 1
                    }
                }
                if bestLength >= minMatch {
                    let lengthIndex = Int(lengthCodeIndex[bestLength])
                    let symbol = literalCodes[257 + lengthIndex]
                    writer.write(symbol.code, bits: symbol.bits)
                    if lengthExtra[lengthIndex] > 0 {
                        writer.write(UInt32(bestLength - lengthBase[lengthIndex]), bits: lengthExtra[lengthIndex])
                    }
                    let d = distanceCode(bestDistance)
                    writer.write(reversed(UInt32(d), bits: 5), bits: 5)
                    if distanceExtra[d] > 0 {
                        writer.write(UInt32(bestDistance - distanceBase[d]), bits: distanceExtra[d])
                    }
                    for k in i..<(i + bestLength) { insert(k) }
                    i += bestLength
                } else {
                    let symbol = literalCodes[Int(data[i])]
                    writer.write(symbol.code, bits: symbol.bits)
                    insert(i)
                    i += 1
                }
            }
        }
        let end = literalCodes[256]
        writer.write(end.code, bits: end.bits)
        return writer.finish()
    }
}
