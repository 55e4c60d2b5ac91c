import Foundation

/// A SentencePiece model file (`tokenizer.model`, a serialized `ModelProto` of google/sentencepiece's
/// src/sentencepiece_model.proto), as checkpoints published before tokenizer.json ship it (LLaMA, Vicuna,
/// the original LLaVA and Shikra releases).
///
/// Only what a BPE tokenizer needs is read: the pieces (text, score, type), the trainer's model type, byte
/// fallback and special ids, and the normalizer's dummy-prefix flag. Every length and offset is checked, so a
/// damaged or hostile file throws `TokenizerError.malformed` instead of trapping.
public struct SentencePieceModel: Sendable, Equatable {
    /// A piece's type (`ModelProto.SentencePiece.Type`).
    public enum PieceType: Int, Sendable {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    public struct Piece: Sendable, Equatable {
        public var text: String
        public var score: Float
        public var type: PieceType
    }

    /// `TrainerSpec.ModelType`: 1 unigram, 2 BPE, 3 word, 4 char.
    public enum ModelType: Int, Sendable {
        case unigram = 1, bpe = 2, word = 3, char = 4
    }

    public var pieces: [Piece]
    public var modelType: ModelType
    public var byteFallback: Bool
    public var unkID: Int
    public var bosID: Int
    public var eosID: Int
    public var padID: Int
    public var addDummyPrefix: Bool

    // Field numbers of sentencepiece_model.proto (google/sentencepiece, src/sentencepiece_model.proto).
    private enum Field {
        static let pieces = 1, trainerSpec = 2, normalizerSpec = 3
        static let pieceText = 1, pieceScore = 2, pieceType = 3
        static let modelType = 3, byteFallback = 35, unkID = 40, bosID = 41, eosID = 42, padID = 43
        static let addDummyPrefix = 3
    }

    /// Parses the bytes of a `tokenizer.model`; `file` names it in errors.
    public init(data: Data, file: String = "tokenizer.model") throws {
        func fail(_ detail: String) -> TokenizerError {
            .malformed(file: file, detail: detail + "; the file is not a SentencePiece model (re-download tokenizer.model, "
                       + "or use a folder with tokenizer.json)")
        }
        var pieces: [Piece] = []
        // Proto defaults (sentencepiece_model.proto).
        var modelType = ModelType.unigram, byteFallback = false
        var unkID = 0, bosID = 1, eosID = 2, padID = -1
        var addDummyPrefix = true
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var top = ProtoReader(raw, range: 0..<raw.count)
            while let (field, value) = try top.next(fail) {
                switch (field, value) {
                case (Field.pieces, .bytes(let range)):
                    var reader = ProtoReader(raw, range: range)
                    var text: String?, score: Float = 0, type = PieceType.normal
                    while let (f, v) = try reader.next(fail) {
                        switch (f, v) {
                        case (Field.pieceText, .bytes(let r)):
                            guard let s = String(validating: raw[r], as: UTF8.self) else {
                                throw fail("piece \(pieces.count) is not valid UTF-8")
                            }
                            text = s
                        case (Field.pieceScore, .fixed32(let bits)): score = Float(bitPattern: bits)
                        case (Field.pieceType, .varint(let t)):
                            guard let known = PieceType(rawValue: Int(truncatingIfNeeded: t)) else {
                                throw fail("piece \(pieces.count) has unknown type \(t)")
                            }
                            type = known
                        default: break
                        }
                    }
                    guard let text else { throw fail("piece \(pieces.count) has no text") }
                    pieces.append(Piece(text: text, score: score, type: type))
                case (Field.trainerSpec, .bytes(let range)):
                    var reader = ProtoReader(raw, range: range)
                    while let (f, v) = try reader.next(fail) {
                        guard case .varint(let n) = v else { continue }
                        let signed = Int(Int32(truncatingIfNeeded: n))
                        switch f {
                        case Field.modelType:
                            guard let known = ModelType(rawValue: signed) else { throw fail("unknown model_type \(n)") }
                            modelType = known
                        case Field.byteFallback: byteFallback = n != 0
                        case Field.unkID: unkID = signed
                        case Field.bosID: bosID = signed
                        case Field.eosID: eosID = signed
                        case Field.padID: padID = signed
                        default: break
                        }
                    }
                case (Field.normalizerSpec, .bytes(let range)):
                    var reader = ProtoReader(raw, range: range)
                    while let (f, v) = try reader.next(fail) {
                        if f == Field.addDummyPrefix, case .varint(let n) = v { addDummyPrefix = n != 0 }
                    }
                default:
                    break
                }
            }
        }
        guard !pieces.isEmpty else { throw fail("it holds no pieces") }
        self.pieces = pieces
        self.modelType = modelType
        self.byteFallback = byteFallback
        self.unkID = unkID
        self.bosID = bosID
        self.eosID = eosID
        self.padID = padID
        self.addDummyPrefix = addDummyPrefix
    }

    /// The vocabulary (piece → id; a repeated piece keeps its last id, as a Python dict built in id order does).
    public var vocabulary: [String: Int] {
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(pieces.count)
        for (id, piece) in pieces.enumerated() { vocab[piece.text] = id }
        return vocab
    }

    /// BPE merges as transformers 5 derives them from the vocabulary (transformers/tokenization_utils_base.py
    /// `generate_merges` without scores): every split of a piece into two pieces of the vocabulary, ranked by the
    /// merged piece's id, then by the left and right parts' lengths (in code points), ties kept in the order of
    /// the parts' ids.
    public func merges() -> [(String, String)] {
        let vocab = vocabulary
        var merges: [(left: String, right: String, rank: Int, leftLength: Int, rightLength: Int)] = []
        for (id, piece) in pieces.enumerated() where vocab[piece.text] == id {
            let scalars = Array(piece.text.unicodeScalars)
            guard scalars.count > 1 else { continue }
            var local: [(String, String, Int, Int, Int, Int, Int)] = []
            for split in 1..<scalars.count {
                let left = String(String.UnicodeScalarView(scalars[..<split]))
                let right = String(String.UnicodeScalarView(scalars[split...]))
                guard let l = vocab[left], let r = vocab[right] else { continue }
                local.append((left, right, id, split, scalars.count - split, l, r))
            }
            local.sort { ($0.5, $0.6) < ($1.5, $1.6) }
            merges += local.map { (left: $0.0, right: $0.1, rank: $0.2, leftLength: $0.3, rightLength: $0.4) }
        }
        // A stable sort: merges are already in rank order, so only the lengths reorder ties.
        let ordered = merges.enumerated().sorted {
            ($0.element.rank, $0.element.leftLength, $0.element.rightLength, $0.offset)
                < ($1.element.rank, $1.element.leftLength, $1.element.rightLength, $1.offset)
        }
        return ordered.map { ($0.element.left, $0.element.right) }
    }

    /// The equivalent tokenizer.json, as transformers 5 builds it when it loads a folder with only
    /// tokenizer.model (transformers/tokenization_utils_tokenizers.py `_convert_from_sentencepiece` and
    /// convert_slow_tokenizer.py `SentencePieceExtractor.extract`): a byte-fallback BPE over the pieces with the
    /// derived merges, control pieces as special added tokens and user-defined pieces as non-special ones, both
    /// matched on the raw text. The normalizer, pre-tokenizer and decoder are Llama's (`LlamaTokenizer` rebuilds
    /// them from tokenizer_config.json anyway).
    public func tokenizerJSON(file: String = "tokenizer.model") throws -> Data {
        guard modelType == .bpe else {
            throw TokenizerError.unsupported(
                component: "\(file): SentencePiece model type \(modelType)",
                detail: "Mirage reads SentencePiece BPE models (LLaMA, Vicuna, Mistral); convert this tokenizer to tokenizer.json "
                        + "with transformers (AutoTokenizer.from_pretrained(folder).save_pretrained(folder)) and try again")
        }
        let vocab = vocabulary
        let unk = pieces.indices.contains(unkID) ? pieces[unkID].text : nil
        var added: [[String: Any]] = []
        for (id, piece) in pieces.enumerated() where piece.type == .control || piece.type == .userDefined {
            added.append(["id": id, "content": piece.text, "single_word": false, "lstrip": false, "rstrip": false,
                          "normalized": false, "special": piece.type == .control])
        }
        let model: [String: Any] = [
            "type": "BPE", "dropout": NSNull(), "unk_token": unk.map { $0 as Any } ?? NSNull(),
            "continuing_subword_prefix": NSNull(), "end_of_word_suffix": NSNull(),
            "fuse_unk": true, "byte_fallback": byteFallback, "ignore_merges": false,
            "vocab": vocab, "merges": merges().map { [$0.0, $0.1] },
        ]
        let spec: [String: Any] = [
            "version": "1.0", "added_tokens": added, "normalizer": NSNull(),
            "pre_tokenizer": ["type": "Metaspace", "replacement": "▁",
                              "prepend_scheme": addDummyPrefix ? "first" : "never", "split": false],
            "post_processor": NSNull(),
            "decoder": ["type": "Sequence", "decoders": [
                ["type": "Replace", "pattern": ["String": "▁"], "content": " "],
                ["type": "ByteFallback"], ["type": "Fuse"],
                ["type": "Strip", "content": " ", "start": addDummyPrefix ? 1 : 0, "stop": 0],
            ]],
            "model": model,
        ]
        return try JSONSerialization.data(withJSONObject: spec)
    }
}

/// A bounds-checked reader of protocol-buffer wire format over one message's bytes.
struct ProtoReader {
    enum Value {
        case varint(UInt64)
        case fixed32(UInt32)
        case fixed64(UInt64)
        case bytes(Range<Int>)
    }

    let raw: UnsafeRawBufferPointer
    var position: Int
    let end: Int

    init(_ raw: UnsafeRawBufferPointer, range: Range<Int>) {
        self.raw = raw
        position = range.lowerBound
        end = range.upperBound
    }

    mutating func varint(_ fail: (String) -> Error) throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else { throw fail("a number runs past the end of its message at byte \(position)") }
            let byte = raw[position]
            position += 1
            if shift < 64 { value |= UInt64(byte & 0x7f) << shift }
            if byte & 0x80 == 0 { return value }
            shift += 7
            guard shift < 70 else { throw fail("a number at byte \(position) is longer than 10 bytes") }
        }
    }

    /// The next field, or nil at the end of the message.
    mutating func next(_ fail: (String) -> Error) throws -> (Int, Value)? {
        guard position < end else { return nil }
        let key = try varint(fail)
        let field = Int(truncatingIfNeeded: key >> 3)
        switch key & 7 {
        case 0:
            return (field, .varint(try varint(fail)))
        case 1:
            guard end - position >= 8 else { throw fail("a 64-bit field runs past the end at byte \(position)") }
            let value = raw.loadUnaligned(fromByteOffset: position, as: UInt64.self).littleEndian
            position += 8
            return (field, .fixed64(value))
        case 2:
            let length = try varint(fail)
            guard length <= UInt64(end - position) else {
                throw fail("a field of \(length) bytes at byte \(position) runs past the end of its message")
            }
            let start = position
            position += Int(length)
            return (field, .bytes(start..<position))
        case 5:
            guard end - position >= 4 else { throw fail("a 32-bit field runs past the end at byte \(position)") }
            let value = raw.loadUnaligned(fromByteOffset: position, as: UInt32.self).littleEndian
            position += 4
            return (field, .fixed32(value))
        default:
            throw fail("wire type \(key & 7) at byte \(position) is not used by SentencePiece models")
        }
    }
}
