import Foundation

/// One token of a word produced by BPE: its id and the range of the word's scalars it covers.
struct BPEPiece: Sendable, Equatable {
    var id: Int32
    var start: Int32
    var end: Int32
}

/// The BPE model of tokenizer.json (`"model": {"type": "BPE", ...}`): vocabulary, merges by rank,
/// `unk_token` with `fuse_unk`, `byte_fallback` to `<0xNN>` tokens, `ignore_merges`, and the
/// `continuing_subword_prefix` / `end_of_word_suffix` affixes. Merging uses a heap ordered by
/// (merge rank, position) over a linked list of symbols, so words of any length merge in O(n log n)
/// with the same order as tokenizers; results are cached per word.
final class BPEModel: @unchecked Sendable {
    let vocab: [String: Int]
    /// id → token string (nil for ids the vocabulary skips).
    let tokens: [String?]
    /// (left id << 32 | right id) → (rank << 32 | merged id).
    private let merges: BPEMergeTable
    /// Single-scalar tokens, for the common case without affixes.
    private let scalarIDs: BPEScalarTable
    /// `<0xNN>` token ids, or -1 where absent.
    private let byteIDs: [Int32]
    let unkID: Int?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    let continuingSubwordPrefix: String?
    let endOfWordSuffix: String?
    private let cache = BPECache(capacity: 10_000)

    /// Largest vocabulary id + 1 a tokenizer file may use (2^24; the largest published vocabularies have ~2^18).
    static let maxTokenID = 1 << 24

    init(vocab: [String: Int], merges: [(String, String)], unkToken: String?, fuseUnk: Bool, byteFallback: Bool,
         ignoreMerges: Bool, continuingSubwordPrefix: String?, endOfWordSuffix: String?) throws {
        self.vocab = vocab
        var tokens = [String?](repeating: nil, count: (vocab.values.max() ?? -1) + 1)
        for (token, id) in vocab where id >= 0 { tokens[id] = token }
        self.tokens = tokens
        let prefix = continuingSubwordPrefix ?? ""
        var table = BPEMergeTable(capacity: merges.count)
        for (rank, (left, right)) in merges.enumerated() {
            guard let a = vocab[left], let b = vocab[right] else {
                throw TokenizerError.malformed(file: "tokenizer.json",
                                               detail: "merge \"\(left) \(right)\" uses a token missing from the vocabulary")
            }
            let rightPart = !prefix.isEmpty && right.hasPrefix(prefix) ? String(right.dropFirst(prefix.count)) : right
            guard let merged = vocab[left + rightPart] else {
                throw TokenizerError.malformed(file: "tokenizer.json",
                                               detail: "merge \"\(left) \(right)\" produces \"\(left + rightPart)\", which is not in the vocabulary")
            }
            let key = UInt64(UInt32(a)) << 32 | UInt64(UInt32(b))
            if table[key] == nil { table.insert(key, UInt64(rank) << 32 | UInt64(UInt32(merged))) }
        }
        self.merges = table
        var scalarIDs: [UInt32: Int32] = [:]
        for (token, id) in vocab {
            let scalars = token.unicodeScalars
            if scalars.count == 1, let first = scalars.first { scalarIDs[first.value] = Int32(id) }
        }
        self.scalarIDs = BPEScalarTable(scalarIDs)
        self.byteIDs = (0..<256).map { byte in
            vocab[String(format: "<0x%02X>", byte)].map { Int32($0) } ?? -1
        }
        self.unkID = try Self.unknownID(unkToken, in: vocab)
        self.fuseUnk = fuseUnk
        self.byteFallback = byteFallback
        self.ignoreMerges = ignoreMerges
        self.continuingSubwordPrefix = (continuingSubwordPrefix?.isEmpty ?? true) ? nil : continuingSubwordPrefix
        self.endOfWordSuffix = (endOfWordSuffix?.isEmpty ?? true) ? nil : endOfWordSuffix
    }

    static func parse(_ json: TokenizerJSON) throws -> BPEModel {
        let type = json.string("type") ?? (json["merges"] != nil ? "BPE" : "unknown")
        guard type == "BPE" else {
            throw TokenizerError.unsupported(component: "model", detail: "type \(type) (only BPE is implemented)")
        }
        if let dropout = TokenizerJSON.number(json["dropout"]), dropout != 0 {
            throw TokenizerError.unsupported(component: "BPE model", detail: "dropout \(dropout) (sampling tokenization)")
        }
        guard let rawVocab = json["vocab"] as? [String: Any] else {
            throw TokenizerError.malformed(file: json.file, detail: "model.vocab is not an object of token → id")
        }
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(rawVocab.count)
        for (token, value) in rawVocab {
            guard let id = TokenizerJSON.integer(value) else {
                throw TokenizerError.malformed(file: json.file, detail: "vocab entry \(token.debugDescription) has no integer id")
            }
            // Ids index a table and are packed into 32 bits; real vocabularies stay far below the cap.
            guard id >= 0 && id < maxTokenID else {
                throw TokenizerError.malformed(file: json.file, detail: "vocab entry \(token.debugDescription) has id \(id); "
                                               + "ids run from 0 to \(maxTokenID - 1) (the file is damaged; re-download it)")
            }
            vocab[token] = id
        }
        var merges: [(String, String)] = []
        let rawMerges = (json["merges"] as? [Any]) ?? []
        merges.reserveCapacity(rawMerges.count)
        for entry in rawMerges {
            if let line = entry as? String {
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    throw TokenizerError.malformed(file: json.file, detail: "merge \(line.debugDescription) is not two tokens")
                }
                merges.append((String(parts[0]), String(parts[1])))
            } else if let pair = entry as? [String], pair.count == 2 {
                merges.append((pair[0], pair[1]))
            } else {
                throw TokenizerError.malformed(file: json.file, detail: "merge \(entry) is neither \"a b\" nor [a, b]")
            }
        }
        return try BPEModel(vocab: vocab, merges: merges, unkToken: json.string("unk_token"),
                            fuseUnk: json.bool("fuse_unk", default: false),
                            byteFallback: json.bool("byte_fallback", default: false),
                            ignoreMerges: json.bool("ignore_merges", default: false),
                            continuingSubwordPrefix: json.string("continuing_subword_prefix"),
                            endOfWordSuffix: json.string("end_of_word_suffix"))
    }

    /// A copy with other unknown-token and fallback options (transformers' LlamaTokenizer rebuilds its
    /// BPE this way).
    func with(unkToken: String?, fuseUnk: Bool, byteFallback: Bool, ignoreMerges: Bool) throws -> BPEModel {
        try BPEModel(sharing: self, unkToken: unkToken, fuseUnk: fuseUnk, byteFallback: byteFallback,
                     ignoreMerges: ignoreMerges)
    }

    private init(sharing other: BPEModel, unkToken: String?, fuseUnk: Bool, byteFallback: Bool,
                 ignoreMerges: Bool) throws {
        self.vocab = other.vocab
        self.tokens = other.tokens
        self.merges = other.merges
        self.scalarIDs = other.scalarIDs
        self.byteIDs = other.byteIDs
        self.unkID = try Self.unknownID(unkToken, in: other.vocab)
        self.fuseUnk = fuseUnk
        self.byteFallback = byteFallback
        self.ignoreMerges = ignoreMerges
        self.continuingSubwordPrefix = other.continuingSubwordPrefix
        self.endOfWordSuffix = other.endOfWordSuffix
    }

    private static func unknownID(_ token: String?, in vocab: [String: Int]) throws -> Int? {
        guard let token else { return nil }
        guard let id = vocab[token] else { throw TokenizerError.unknownToken(token) }
        return id
    }

    /// Tokenizes one pre-tokenized word.
    func tokenize(_ word: [Unicode.Scalar]) -> [BPEPiece] {
        if word.isEmpty { return [] }
        let cacheable = word.count < 64
        if cacheable, let cached = cache[word] { return cached }
        let pieces = computePieces(word)
        if cacheable { cache[word] = pieces }
        return pieces
    }

    private func computePieces(_ word: [Unicode.Scalar]) -> [BPEPiece] {
        if ignoreMerges, let id = vocab[String(String.UnicodeScalarView(word))] {
            return [BPEPiece(id: Int32(id), start: 0, end: Int32(word.count))]
        }
        // Initial symbols.
        var ids: [Int32] = []
        var starts: [Int32] = []
        var ends: [Int32] = []
        ids.reserveCapacity(word.count)
        starts.reserveCapacity(word.count)
        ends.reserveCapacity(word.count)
        var pendingUnk: (start: Int32, end: Int32)? = nil
        let affixes = continuingSubwordPrefix != nil || endOfWordSuffix != nil
        for (index, scalar) in word.enumerated() {
            let i = Int32(index)
            var text: String? = nil
            let found: Int32?
            if affixes {
                var s = String(scalar)
                if index > 0, let prefix = continuingSubwordPrefix { s = prefix + s }
                if index == word.count - 1, let suffix = endOfWordSuffix { s += suffix }
                text = s
                found = vocab[s].map { Int32($0) }
            } else {
                found = scalarIDs[scalar.value]
            }
            if let id = found {
                if let unk = pendingUnk, let unkID {
                    ids.append(Int32(unkID)); starts.append(unk.start); ends.append(unk.end)
                    pendingUnk = nil
                }
                ids.append(id); starts.append(i); ends.append(i + 1)
                continue
            }
            if byteFallback {
                let bytes = Array((text ?? String(scalar)).utf8)
                if bytes.allSatisfy({ byteIDs[Int($0)] >= 0 }) {
                    for byte in bytes { ids.append(byteIDs[Int(byte)]); starts.append(i); ends.append(i + 1) }
                    continue
                }
            }
            guard let unkID else { continue }  // no unknown token: the character is dropped, as in tokenizers
            if let unk = pendingUnk {
                if fuseUnk {
                    pendingUnk = (unk.start, i + 1)
                } else {
                    ids.append(Int32(unkID)); starts.append(unk.start); ends.append(unk.end)
                    pendingUnk = (i, i + 1)
                }
            } else {
                pendingUnk = (i, i + 1)
            }
        }
        if let unk = pendingUnk, let unkID {
            ids.append(Int32(unkID)); starts.append(unk.start); ends.append(unk.end)
        }
        let n = ids.count
        if n > 1 { merge(&ids, &ends) }
        var pieces: [BPEPiece] = []
        pieces.reserveCapacity(n)
        for k in 0..<n where ids[k] >= 0 {
            pieces.append(BPEPiece(id: ids[k], start: starts[k], end: ends[k]))
        }
        return pieces
    }

    @inline(__always) private func mergeFor(_ a: Int32, _ b: Int32) -> UInt64? {
        merges[UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))]
    }

    /// Applies merges lowest rank first, leftmost first among equal ranks. Merged-away symbols get id -1.
    private func merge(_ ids: inout [Int32], _ ends: inout [Int32]) {
        let n = ids.count
        var next = [Int32](unsafeUninitializedCapacity: n) { buffer, count in
            for k in 0..<n { buffer[k] = Int32(k + 1) }
            count = n
        }
        var previous = [Int32](unsafeUninitializedCapacity: n) { buffer, count in
            for k in 0..<n { buffer[k] = Int32(k - 1) }
            count = n
        }
        var heap = BPEHeap()
        for k in 0..<(n - 1) {
            if let value = mergeFor(ids[k], ids[k + 1]) { heap.push(rank: UInt32(value >> 32), position: UInt32(k)) }
        }
        while let (rank, position) = heap.pop() {
            let left = Int(position)
            guard ids[left] >= 0 else { continue }
            let right = Int(next[left])
            guard right < n, let value = mergeFor(ids[left], ids[right]), UInt32(value >> 32) == rank else { continue }
            ids[left] = Int32(truncatingIfNeeded: value & 0xFFFF_FFFF)
            ends[left] = ends[right]
            ids[right] = -1
            let after = Int(next[right])
            next[left] = Int32(after)
            if after < n { previous[after] = Int32(left) }
            let before = Int(previous[left])
            if before >= 0, let value = mergeFor(ids[before], ids[left]) {
                heap.push(rank: UInt32(value >> 32), position: UInt32(before))
            }
            if after < n, let value = mergeFor(ids[left], ids[after]) {
                heap.push(rank: UInt32(value >> 32), position: UInt32(left))
            }
        }
    }
}

/// Open-addressing hash table for merges: Swift's Dictionary hashes with a seeded SipHash, several
/// times slower than this multiplicative hash for the integer keys BPE looks up millions of times.
struct BPEMergeTable: Sendable {
    private static let empty = UInt64.max  // never a key: ids are below 2^31
    private var keys: [UInt64]
    private var values: [UInt64]
    private let shift: UInt64

    init(capacity: Int) {
        var bits = 4
        while (1 << bits) < max(16, capacity * 2) { bits += 1 }
        keys = [UInt64](repeating: Self.empty, count: 1 << bits)
        values = [UInt64](repeating: 0, count: 1 << bits)
        shift = UInt64(64 - bits)
    }

    @inline(__always) private func slot(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    subscript(key: UInt64) -> UInt64? {
        @inline(__always) get {
            let mask = keys.count - 1
            var i = slot(key)
            while true {
                let k = keys[i]
                if k == key { return values[i] }
                if k == Self.empty { return nil }
                i = (i + 1) & mask
            }
        }
    }

    /// Adds a key that is not present yet.
    mutating func insert(_ key: UInt64, _ value: UInt64) {
        let mask = keys.count - 1
        var i = slot(key)
        while keys[i] != Self.empty { i = (i + 1) & mask }
        keys[i] = key
        values[i] = value
    }
}

/// Single-scalar token ids: a direct table for the Basic Multilingual Plane, a dictionary beyond it.
struct BPEScalarTable: Sendable {
    private let bmp: [Int32]
    private let astral: [UInt32: Int32]

    init(_ ids: [UInt32: Int32]) {
        var bmp = [Int32](repeating: -1, count: 0x10000)
        var astral: [UInt32: Int32] = [:]
        for (scalar, id) in ids {
            if scalar < 0x10000 { bmp[Int(scalar)] = id } else { astral[scalar] = id }
        }
        self.bmp = bmp
        self.astral = astral
    }

    @inline(__always) subscript(scalar: UInt32) -> Int32? {
        if scalar < 0x10000 {
            let id = bmp[Int(scalar)]
            return id >= 0 ? id : nil
        }
        return astral[scalar]
    }
}

/// Min-heap of (rank, position) packed into one integer.
struct BPEHeap {
    private var items: [UInt64] = []

    mutating func push(rank: UInt32, position: UInt32) {
        items.append(UInt64(rank) << 32 | UInt64(position))
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if items[parent] <= items[child] { break }
            items.swapAt(parent, child)
            child = parent
        }
    }

    mutating func pop() -> (UInt32, UInt32)? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var smallest = parent
                if left < items.count && items[left] < items[smallest] { smallest = left }
                if right < items.count && items[right] < items[smallest] { smallest = right }
                if smallest == parent { break }
                items.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return (UInt32(top >> 32), UInt32(top & 0xFFFF_FFFF))
    }
}

/// Per-word results shared by all callers of one tokenizer (thread-safe; stops growing when full).
final class BPECache: @unchecked Sendable {
    private var entries: [[Unicode.Scalar]: [BPEPiece]] = [:]
    private let lock = NSLock()
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    subscript(key: [Unicode.Scalar]) -> [BPEPiece]? {
        get { lock.lock(); defer { lock.unlock() }; return entries[key] }
        set {
            lock.lock(); defer { lock.unlock() }
            if entries.count < capacity { entries[key] = newValue }
        }
    }
}
