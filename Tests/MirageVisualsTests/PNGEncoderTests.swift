import Foundation
import MirageEngine
import MirageImaging
import Testing
@testable import MirageVisuals

@Suite struct ChecksumTests {
    @Test func crc32KnownVectors() {
        // The CRC-32 check value of "123456789" (ISO-HDLC, as used by PNG and zlib) and of "" / "a".
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([UInt8]()) == 0)
        #expect(CRC32.checksum(Array("a".utf8)) == 0xE8B7_BE43)
        // The CRC of the IEND chunk type every PNG ends with: AE 42 60 82.
        #expect(CRC32.checksum(Array("IEND".utf8)) == 0xAE42_6082)
    }

    @Test func adler32KnownVectors() {
        // RFC 1950's Adler-32 of "Wikipedia" (the widely quoted example) and of "".
        #expect(Adler32.checksum(Array("Wikipedia".utf8)) == 0x11E6_0398)
        #expect(Adler32.checksum([]) == 1)
        // Long inputs exercise the modulo reduction: a million 0xFF bytes, computed with plain arithmetic.
        let bytes = [UInt8](repeating: 0xFF, count: 1_000_000)
        var a: UInt64 = 1, b: UInt64 = 0
        for v in bytes { a = (a + UInt64(v)) % 65521; b = (b + a) % 65521 }
        #expect(Adler32.checksum(bytes) == UInt32(b << 16 | a))
    }
}

@Suite struct PNGEncoderTests {
    func roundTrip(width: Int, height: Int, _ samples: [UInt8]) throws -> RGBImage {
        let png = try PNGEncoder.encode(width: width, height: height, samples: samples)
        let image = try decodePNG(png)
        #expect(image.width == width && image.height == height)
        #expect(image.pixels == samples, "pixels differ after decoding with libpng")
        return image
    }

    @Test func noiseRoundTripsThroughLibpng() throws {
        var random = TestRandom(seed: 7)
        let samples = (0..<(97 * 61 * 3)).map { _ in random.byte() }
        _ = try roundTrip(width: 97, height: 61, samples)
    }

    @Test func smoothAndRepetitiveImagesRoundTripAndCompress() throws {
        // Gradients (Sub/Up filters), long runs (LZ77 matches of length 258), a 1x1 image.
        let w = 300, h = 200
        var samples = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                let i = (y * w + x) * 3
                samples[i] = UInt8(x & 0xFF); samples[i + 1] = UInt8(y & 0xFF); samples[i + 2] = (x / 20 + y / 20) % 2 == 0 ? 30 : 220
            }
        }
        _ = try roundTrip(width: w, height: h, samples)
        let compressed = try PNGEncoder.encode(width: w, height: h, samples: samples)
        #expect(compressed.count < samples.count / 10, "a smooth image should compress at least 10x, got \(compressed.count) bytes")

        let uniform = [UInt8](repeating: 200, count: 1000 * 800 * 3)
        let png = try PNGEncoder.encode(width: 1000, height: 800, samples: uniform)
        #expect(png.count < 20_000)
        #expect(try decodePNG(png).pixels == uniform)

        _ = try roundTrip(width: 1, height: 1, [1, 2, 3])
    }

    @Test func incompressibleDataFallsBackToStoredBlocks() throws {
        // Random bytes cost more than 8 bits each under fixed Huffman codes, so the stored form is used;
        // 200x200x3 = 120000 bytes of scanlines need two stored blocks.
        var random = TestRandom(seed: 99)
        let samples = (0..<(200 * 200 * 3)).map { _ in random.byte() }
        let filtered = 200 * (200 * 3 + 1)
        let png = try PNGEncoder.encode(width: 200, height: 200, samples: samples)
        #expect(png.count <= 8 + 25 + 12 + 2 + ZlibCompressor.storedSize(filtered) + 4 + 12)
        _ = try roundTrip(width: 200, height: 200, samples)
    }

    @Test func rgbaKeepsColourChannels() throws {
        var random = TestRandom(seed: 3)
        let rgba = (0..<(16 * 9 * 4)).map { k in k % 4 == 3 ? 255 : random.byte() }
        let png = try PNGEncoder.encode(width: 16, height: 9, samples: rgba, format: .rgba)
        #expect(png[25] == 6, "colour type 6 in IHDR")
        let image = try decodePNG(png)
        let rgb = rgba.enumerated().filter { $0.offset % 4 != 3 }.map(\.element)
        #expect(image.pixels == rgb)
    }

    @Test func rejectsBadSizes() {
        #expect(throws: VisualsError.invalidImageSize(width: 0, height: 5)) {
            try PNGEncoder.encode(width: 0, height: 5, samples: [])
        }
        #expect(throws: VisualsError.sampleCountMismatch(expected: 12, actual: 11)) {
            try PNGEncoder.encode(width: 2, height: 2, samples: [UInt8](repeating: 0, count: 11))
        }
    }
}
