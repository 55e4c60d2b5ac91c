import Foundation
import Testing
import MirageData
import MirageTestSupport

@Suite struct HashingTests {
    // FIPS 180-4 example vectors (NIST "SHA256.pdf" examples) and the classic one-million-'a' vector.
    @Test func sha256KnownVectors() {
        #expect(SHA256.hex(of: Data()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(of: Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(of: Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex(of: Data(repeating: UInt8(ascii: "a"), count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    // RFC 1321 appendix A.5 test suite.
    @Test func md5KnownVectors() {
        let cases: [(String, String)] = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
            ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"),
            ("12345678901234567890123456789012345678901234567890123456789012345678901234567890",
             "57edf4a22be3c955ac49da2e2107b67a"),
        ]
        for (input, expected) in cases {
            #expect(MD5.hex(of: Data(input.utf8)) == expected, "MD5(\"\(input)\")")
        }
    }

    /// Feeding the input in uneven pieces must give the one-shot digest (exercises the block buffer).
    @Test func streamingMatchesOneShot() {
        var rng = SystemRandomNumberGenerator()
        let data = Data((0..<10_007).map { _ in UInt8.random(in: 0...255, using: &rng) })
        for pieces in [[1, 63, 64, 65, 1000], [55, 56, 57, 0, 7], [128, 3]] {
            var sha = SHA256(), md5 = MD5()
            var offset = 0
            var i = 0
            while offset < data.count {
                let n = min(pieces[i % pieces.count], data.count - offset)
                sha.update(data[offset..<offset + n])
                md5.update(data[offset..<offset + n])
                offset += n; i += 1
            }
            #expect(sha.hexDigest() == SHA256.hex(of: data))
            #expect(md5.hexDigest() == MD5.hex(of: data))
        }
    }

    /// Real reference: the shared folder's SHA256SUMS was produced by coreutils `sha256sum`.
    @Test(.enabled(if: SharedData.isAvailable, SharedData.missingMessage))
    func sharedFilesMatchSHA256SUMS() throws {
        let sums = try String(contentsOf: SharedData.url("SHA256SUMS"), encoding: .utf8)
        var expected: [String: String] = [:]
        for line in sums.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2 else { continue }
            var path = parts[1].trimmingCharacters(in: .whitespaces)
            if path.hasPrefix("./") { path.removeFirst(2) }
            expected[path] = String(parts[0])
        }
        let checked = ["chair/synonyms.txt", "coco/annotations/mmpose-test_coco.json", "pope/opera/coco_pope_random.json",
                       "nltk/wordnet-lexnames", "coco/images/COCO_val2014_000000000192.jpg",
                       "nltk/averaged_perceptron_tagger_eng/averaged_perceptron_tagger_eng.weights.json"]
        for path in checked {
            let want = try #require(expected[path], "\(path) listed in SHA256SUMS")
            #expect(try SHA256.hex(ofFile: SharedData.url(path)) == want, "\(path)")
        }
    }
}
