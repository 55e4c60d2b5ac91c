import Foundation
import MirageKernels

/// The rows one sequence adds in a forward pass.
public struct SequenceInput: Sendable, Equatable {
    public var sequence: Int
    public var items: [PromptItem]
    public init(sequence: Int, items: [PromptItem]) {
        self.sequence = sequence
        self.items = items
    }
}

/// Where an attention-score edit is being applied.
public struct AttentionScoreContext: Sendable {
    public let layer: Int
    public let head: Int
    /// Index of the sequence in the session (at the time of the call).
    public let sequence: Int
    /// Position of the query row (its key count is `queryPosition + 1`).
    public let queryPosition: Int
    /// The key positions the buffer covers (the edit's range clipped to `0...queryPosition`).
    public let keys: Range<Int>
}

/// A hook that edits pre-softmax attention scores (already scaled by 1/√headDim, after the causal mask)
/// over a key range in chosen layers, for every head and query row: PAI / VCD-style interventions.
/// `edit` runs on the worker threads, concurrently for different (row, head) pairs.
public struct AttentionScoreEdit: Sendable {
    public var layers: Set<Int>
    public var keyRange: Range<Int>
    public var edit: @Sendable (AttentionScoreContext, UnsafeMutableBufferPointer<Float>) -> Void

    public init(layers: Set<Int>, keyRange: Range<Int>,
                edit: @escaping @Sendable (AttentionScoreContext, UnsafeMutableBufferPointer<Float>) -> Void) {
        self.layers = layers
        self.keyRange = keyRange
        self.edit = edit
    }
}

/// A hook that rewrites the MLP block's output (after the down projection, before it joins the residual
/// stream) in chosen layers, one query row at a time, in row order on the calling thread: VISTA's steering.
public struct MLPOutputEdit: Sendable {
    public var layers: Set<Int>
    public var edit: @Sendable (_ layer: Int, _ row: QueryRow, _ output: UnsafeMutableBufferPointer<Float>) -> Void

    public init(layers: Set<Int>, edit: @escaping @Sendable (Int, QueryRow, UnsafeMutableBufferPointer<Float>) -> Void) {
        self.layers = layers
        self.edit = edit
    }
}

/// What a forward pass returns besides updating the cache.
public struct ForwardOptions: Sendable {
    public enum LogitRows: Sendable { case none, lastOfEachSequence, all }
    /// Which query rows get logits (the LM head costs vocab × hidden per row).
    public var logits: LogitRows = .lastOfEachSequence
    /// The last layer's attention probabilities for every query row (per head and max over heads).
    public var lastLayerAttention: Bool = false
    /// Residual-stream hidden states to return, transformers' numbering: 0 = the input embeddings,
    /// i = the output of decoder layer i (1...numLayers), always before the final norm.
    public var hiddenStateLayers: [Int] = []
    public var scoreEdit: AttentionScoreEdit?
    public var mlpOutputEdit: MLPOutputEdit?

    public init(logits: LogitRows = .lastOfEachSequence, lastLayerAttention: Bool = false,
                hiddenStateLayers: [Int] = [], scoreEdit: AttentionScoreEdit? = nil, mlpOutputEdit: MLPOutputEdit? = nil) {
        self.logits = logits
        self.lastLayerAttention = lastLayerAttention
        self.hiddenStateLayers = hiddenStateLayers
        self.scoreEdit = scoreEdit
        self.mlpOutputEdit = mlpOutputEdit
    }
}

/// One query row of a forward pass.
public struct QueryRow: Sendable, Equatable {
    public let sequence: Int
    public let position: Int
}

/// Last-layer attention of one query row over keys `0...position`.
public struct AttentionRow: Sendable {
    public let heads: Int
    public let keyCount: Int
    /// `heads × keyCount`, row-major: `probabilities[h * keyCount + j]`.
    public let probabilities: [Float]
    /// `keyCount`: the maximum over heads of each key's probability.
    public let maxOverHeads: [Float]
}

/// The result of a forward pass.
public struct ForwardOutput: Sendable {
    /// Every query row of the call, in input order.
    public let rows: [QueryRow]
    /// Indices into `rows` of the rows that have logits, in order.
    public let logitRows: [Int]
    public let vocabSize: Int
    /// `logitRows.count × vocabSize`.
    public let logits: [Float]
    /// One per row of `rows` when `lastLayerAttention` was requested, else empty.
    public let attention: [AttentionRow]
    /// Layer → `rows.count × hiddenSize`, for the layers requested.
    public let hiddenStates: [Int: [Float]]

    /// The logits of the i-th logit row.
    public func logits(_ i: Int) -> ArraySlice<Float> {
        logits[(i * vocabSize)..<((i + 1) * vocabSize)]
    }
}

/// A set of token sequences (beams) sharing one paged KV cache, run by one `LanguageModel`.
///
/// - `append` adds rows (token ids or embedding rows) to one sequence: the prefill, or a re-prefill after
///   `truncate`.
/// - `step` advances several sequences by one token each in one forward pass: each projection is a single
///   `Kernels.linear` over all rows, so the weights are read once per step.
/// - `fork` copies a sequence without copying its cache (blocks are shared and reference counted;
///   the first write into a shared block copies that block only).
/// - `reorder` rebuilds the sequence list from indices (beam search's reindexing; duplicates allowed).
/// - `truncate` rolls a sequence back to an earlier length without recomputing anything.
///
/// A session is not thread-safe; use it from one thread. Sessions of the same model share its worker
/// pool, so run them one at a time.
public final class Session {
    public let model: LanguageModel
    let cache: KVBlockPool
    private var sequences: [CachedSequence] = [CachedSequence()]
    /// Forward passes run so far (the prompt's prefill is pass 1); errors name the pass they happened in.
    public private(set) var passCount = 0

    init(model: LanguageModel, blockSize: Int) {
        self.model = model
        let c = model.config
        cache = KVBlockPool(layers: c.numLayers, kvHeads: c.numKVHeads, headDim: c.headDim, blockSize: blockSize)
    }

    /// A new session whose only sequence is a fork of sequence `i` of `other`: it shares `other`'s cache
    /// storage and that sequence's blocks without copying them; the first write into a shared block copies
    /// that block only (as `fork`). A cached prompt prefix is reused this way. The two sessions share one
    /// block pool: use them one at a time, from one thread. The storage goes when the last of them goes.
    public init(forking i: Int, of other: Session) {
        model = other.model
        cache = other.cache
        let s = other.sequences[i]
        for b in s.blocks { cache.retain(b) }
        sequences = [s]
    }

    deinit {
        for s in sequences { for b in s.blocks { cache.release(b) } }
    }

    // MARK: Sequences

    /// Number of sequences (beams).
    public var count: Int { sequences.count }

    /// Number of cached positions of sequence `i`.
    public func length(of i: Int) -> Int { sequences[i].length }

    /// Positions per KV block.
    public var blockSize: Int { cache.blockSize }

    /// Appends a copy of sequence `i` sharing its cache blocks; returns the new index.
    @discardableResult
    public func fork(_ i: Int) -> Int {
        let s = sequences[i]
        for b in s.blocks { cache.retain(b) }
        sequences.append(s)
        return sequences.count - 1
    }

    /// Makes sequence j of the result a copy of old sequence `order[j]` (indices may repeat or be dropped).
    public func reorder(_ order: [Int]) {
        precondition(order.allSatisfy { sequences.indices.contains($0) }, "reorder: index out of range")
        let next = order.map { sequences[$0] }
        for s in next { for b in s.blocks { cache.retain(b) } }
        for s in sequences { for b in s.blocks { cache.release(b) } }
        sequences = next
    }

    /// Rolls sequence `i` back to its first `length` positions.
    public func truncate(_ i: Int, to length: Int) {
        precondition(length >= 0 && length <= sequences[i].length, "truncate: length \(length) is beyond the sequence")
        let keep = (length + cache.blockSize - 1) / cache.blockSize
        for b in sequences[i].blocks[keep...] { cache.release(b) }
        sequences[i].blocks.removeLast(sequences[i].blocks.count - keep)
        sequences[i].length = length
    }

    /// Removes sequence `i` (later indices shift down by one).
    public func remove(_ i: Int) {
        for b in sequences[i].blocks { cache.release(b) }
        sequences.remove(at: i)
    }

    /// Reference count of each cache block of sequence `i` (a count above 1 means shared).
    public func blockReferenceCounts(of i: Int) -> [Int] {
        sequences[i].blocks.map { cache.referenceCounts[$0] }
    }

    /// The block ids of sequence `i` (diagnostics: equal ids are the same memory).
    public func blockIDs(of i: Int) -> [Int] { sequences[i].blocks }

    /// Cache blocks in use across all sequences, and bytes allocated for the cache.
    public var liveBlockCount: Int { cache.liveBlockCount }
    public var cacheBytes: Int { cache.bytesAllocated }

    /// Gives back the storage of cache blocks no sequence uses (freed blocks are otherwise kept for reuse);
    /// sessions sharing the pool (`init(forking:of:)`) are unaffected except that they allocate afresh.
    public func releaseFreeBlocks() { cache.releaseFreeStorage() }

    // MARK: Forward passes

    /// Adds `items` to sequence `sequence` (prefill, or re-prefill after `truncate`).
    @discardableResult
    public func append(_ items: [PromptItem], to sequence: Int = 0,
                       options: ForwardOptions = ForwardOptions()) throws -> ForwardOutput {
        try forward([SequenceInput(sequence: sequence, items: items)], options: options)
    }

    /// Advances sequence i by `tokens[i]` for every sequence, in one pass (logits row i = sequence i).
    @discardableResult
    public func step(_ tokens: [Int], options: ForwardOptions = ForwardOptions()) throws -> ForwardOutput {
        guard tokens.count == sequences.count else {
            throw ModelError.invalidInput("step: got \(tokens.count) tokens for \(sequences.count) sequences")
        }
        return try forward(tokens.enumerated().map { SequenceInput(sequence: $0.offset, items: [.token($0.element)]) },
                           options: options)
    }

    /// The general pass: each listed sequence (at most once) gets its items appended.
    public func forward(_ batch: [SequenceInput], options: ForwardOptions = ForwardOptions()) throws -> ForwardOutput {
        let c = model.config
        let H = c.hiddenSize
        // Validate before touching the cache.
        var seen = Set<Int>()
        for input in batch {
            guard sequences.indices.contains(input.sequence) else {
                throw ModelError.invalidInput("sequence \(input.sequence) does not exist (the session has \(sequences.count))")
            }
            guard seen.insert(input.sequence).inserted else {
                throw ModelError.invalidInput("sequence \(input.sequence) appears twice in one forward pass")
            }
            guard !input.items.isEmpty else {
                throw ModelError.invalidInput("sequence \(input.sequence): nothing to append")
            }
            for item in input.items {
                switch item {
                case let .token(t): try model.checkToken(t)
                case let .embedding(e):
                    guard e.count == H else {
                        throw ModelError.invalidInput("an embedding row has \(e.count) values; this model needs \(H)")
                    }
                }
            }
        }
        for layer in options.hiddenStateLayers where !(0...c.numLayers).contains(layer) {
            throw ModelError.invalidInput("hidden state layer \(layer) is outside 0...\(c.numLayers)")
        }
        var rows: [QueryRow] = []
        var items: [PromptItem] = []
        var logitRows: [Int] = []
        for input in batch {
            let start = sequences[input.sequence].length
            for (k, item) in input.items.enumerated() {
                if options.logits == .all || (options.logits == .lastOfEachSequence && k == input.items.count - 1) {
                    logitRows.append(rows.count)
                }
                rows.append(QueryRow(sequence: input.sequence, position: start + k))
                items.append(item)
            }
        }
        // Reserve cache slots: own (copy-on-write) the partially filled block, allocate the rest.
        for input in batch {
            var s = sequences[input.sequence]
            let bs = cache.blockSize
            let newLength = s.length + input.items.count
            let first = s.length / bs
            for b in first...((newLength - 1) / bs) {
                if b < s.blocks.count {
                    s.blocks[b] = cache.makeUnique(s.blocks[b], validSlots: s.length - b * bs)
                } else {
                    s.blocks.append(cache.allocate())
                }
            }
            sequences[input.sequence] = s
        }
        let output = run(rows: rows, items: items, logitRows: logitRows, options: options)
        for input in batch { sequences[input.sequence].length += input.items.count }
        passCount += 1
        // NaN or infinite logits (NaN weights, an overflow) would otherwise come out as an arbitrary or
        // empty output that scores as a valid one; every decoder runs through here, so each sees the error.
        if let (index, value) = Self.firstNonFinite(output.logits) {
            let row = rows[logitRows[index / c.vocabSize]]
            throw ModelError.nonFiniteLogits(pass: passCount, sequence: row.sequence, position: row.position,
                                             token: index % c.vocabSize, value: "\(value)")
        }
        return output
    }

    /// The first NaN or ±infinity in `values` with its index, or nil when all are finite. The sum is finite
    /// whenever every value is (logits are far below Float's range), so the element scan runs only on failure.
    static func firstNonFinite(_ values: [Float]) -> (Int, Float)? {
        let sum = values.withUnsafeBufferPointer { buffer -> Float in
            var acc = SIMD16<Float>()
            let base = buffer.baseAddress, n = buffer.count, whole = n / 16 * 16
            var i = 0
            while i < whole {
                acc += UnsafeRawPointer(base! + i).loadUnaligned(as: SIMD16<Float>.self)
                i += 16
            }
            var total = acc.sum()
            while i < n { total += buffer[i]; i += 1 }
            return total
        }
        guard !sum.isFinite else { return nil }
        guard let index = values.firstIndex(where: { !$0.isFinite }) else { return nil }
        return (index, values[index])
    }

    // MARK: The transformer

    private func run(rows: [QueryRow], items: [PromptItem], logitRows: [Int], options: ForwardOptions) -> ForwardOutput {
        let c = model.config
        let w = model.weights
        let n = rows.count
        let H = c.hiddenSize, I = c.intermediateSize, hd = c.headDim
        let nh = c.numHeads, nkv = c.numKVHeads, group = nh / nkv
        let qDim = nh * hd, kvDim = nkv * hd
        let bs = cache.blockSize
        let eps = c.rmsNormEps
        let scale = 1 / Float(hd).squareRoot()
        let maxPosition = rows.map(\.position).max() ?? 0
        let inverseFrequencies = model.rope.inverseFrequencies(maxPosition: maxPosition)
        let blockTables = sequences.map(\.blocks)

        let x = UnsafeMutablePointer<Float>.allocate(capacity: n * H)
        let h = UnsafeMutablePointer<Float>.allocate(capacity: n * H)
        let tmp = UnsafeMutablePointer<Float>.allocate(capacity: n * H)
        let q = UnsafeMutablePointer<Float>.allocate(capacity: n * qDim)
        let k = UnsafeMutablePointer<Float>.allocate(capacity: n * kvDim)
        let v = UnsafeMutablePointer<Float>.allocate(capacity: n * kvDim)
        let attn = UnsafeMutablePointer<Float>.allocate(capacity: n * qDim)
        let gate = UnsafeMutablePointer<Float>.allocate(capacity: n * I)
        let up = UnsafeMutablePointer<Float>.allocate(capacity: n * I)
        // RoPE cosines then sines (headDim/2 each) per row, shared by all heads and layers.
        let ropeTable = UnsafeMutablePointer<Float>.allocate(capacity: n * hd)
        defer { for p in [x, h, tmp, q, k, v, attn, gate, up, ropeTable] { p.deallocate() } }
        inverseFrequencies.withUnsafeBufferPointer { inv in
            for (r, row) in rows.enumerated() {
                Kernels.ropeAngles(position: row.position, inverseFrequencies: inv.baseAddress!, count: hd / 2,
                                   cosines: ropeTable + r * hd, sines: ropeTable + r * hd + hd / 2)
            }
        }

        // Attention capture: per row, heads × keyCount.
        var probabilityOffsets: [Int] = []
        var probabilityCount = 0
        if options.lastLayerAttention {
            for r in rows { probabilityOffsets.append(probabilityCount); probabilityCount += nh * (r.position + 1) }
        }
        let probabilities = UnsafeMutablePointer<Float>.allocate(capacity: max(1, probabilityCount))
        defer { probabilities.deallocate() }

        // Embeddings.
        for (r, item) in items.enumerated() {
            switch item {
            case let .token(t): w.embed.copyRow(t, into: x + r * H)
            case let .embedding(e): e.withUnsafeBufferPointer { (x + r * H).update(from: $0.baseAddress!, count: H) }
            }
        }
        var hidden: [Int: [Float]] = [:]
        let wanted = Set(options.hiddenStateLayers)
        func capture(_ layer: Int) {
            if wanted.contains(layer) { hidden[layer] = Array(UnsafeBufferPointer(start: x, count: n * H)) }
        }
        capture(0)

        for (l, L) in w.layers.enumerated() {
            // Self-attention block.
            for r in 0..<n {
                L.inputNorm.withUnsafeBufferPointer {
                    Kernels.rmsNorm(x + r * H, weight: $0.baseAddress!, count: H, eps: eps, into: h + r * H)
                }
            }
            model.linearRows(h, rows: n, projections: [(L.q, q), (L.k, k), (L.v, v)])
            for r in 0..<n {
                let cosines = ropeTable + r * hd, sines = cosines + hd / 2
                for head in 0..<nh {
                    Kernels.ropeRotateHalf(q + r * qDim + head * hd, headDim: hd, cosines: cosines, sines: sines)
                }
                for head in 0..<nkv {
                    Kernels.ropeRotateHalf(k + r * kvDim + head * hd, headDim: hd, cosines: cosines, sines: sines)
                }
            }
            for (r, row) in rows.enumerated() {
                let block = blockTables[row.sequence][row.position / bs]
                let slot = (row.position % bs) * hd
                for head in 0..<nkv {
                    (cache.keys(block, layer: l, head: head) + slot).update(from: k + r * kvDim + head * hd, count: hd)
                    (cache.values(block, layer: l, head: head) + slot).update(from: v + r * kvDim + head * hd, count: hd)
                }
            }
            let edit = options.scoreEdit.flatMap { $0.layers.contains(l) ? $0 : nil }
            let captureProbabilities = options.lastLayerAttention && l == c.numLayers - 1
            let cache = self.cache
            // One task per query row and KV head (all `group` query heads sharing it) when there are enough
            // rows to keep the pool busy: each key/value block is then read once from L2 and reused from L1
            // by every head of the group. Few rows (decode): one task per query head.
            let headsPerTask = n * nkv >= 2 * model.pool.threadCount ? group : 1
            let tasksPerRow = nh / headsPerTask
            model.pool.parallelFor(n * tasksPerRow) { task in
                let r = task / tasksPerRow, firstHead = (task % tasksPerRow) * headsPerTask
                let kvHead = firstHead / group
                let row = rows[r]
                let keyCount = row.position + 1
                let blocks = blockTables[row.sequence]
                let qFirst = q + r * qDim + firstHead * hd
                let outFirst = attn + r * qDim + firstHead * hd
                withUnsafeTemporaryAllocation(of: Float.self, capacity: headsPerTask * keyCount) { scoreBuffer in
                    let allScores = scoreBuffer.baseAddress!
                    var j = 0
                    for block in blocks where j < keyCount {
                        let keys = cache.keys(block, layer: l, head: kvHead), count = min(bs, keyCount - j)
                        var i = 0
                        while i + 2 <= headsPerTask {
                            Kernels.scaledDots(qFirst + i * hd, qFirst + (i + 1) * hd, rows: keys, count: count,
                                               dim: hd, scale: scale, into: allScores + i * keyCount + j,
                                               allScores + (i + 1) * keyCount + j)
                            i += 2
                        }
                        if i < headsPerTask {
                            Kernels.scaledDots(qFirst + i * hd, rows: keys, count: count, dim: hd, scale: scale,
                                               into: allScores + i * keyCount + j)
                        }
                        j += bs
                    }
                    for i in 0..<headsPerTask {
                        let head = firstHead + i, scores = allScores + i * keyCount
                        if let edit {
                            let lo = max(0, edit.keyRange.lowerBound), hi = min(keyCount, edit.keyRange.upperBound)
                            if lo < hi {
                                edit.edit(AttentionScoreContext(layer: l, head: head, sequence: row.sequence,
                                                                queryPosition: row.position, keys: lo..<hi),
                                          UnsafeMutableBufferPointer(start: scores + lo, count: hi - lo))
                            }
                        }
                        Kernels.softmax(scores, count: keyCount)
                        if captureProbabilities {
                            (probabilities + probabilityOffsets[r] + head * keyCount).update(from: scores, count: keyCount)
                        }
                    }
                    outFirst.initialize(repeating: 0, count: headsPerTask * hd)
                    j = 0
                    for block in blocks where j < keyCount {
                        let values = cache.values(block, layer: l, head: kvHead), count = min(bs, keyCount - j)
                        for i in 0..<headsPerTask {
                            Kernels.accumulateRows(weights: allScores + i * keyCount + j, rows: values, count: count,
                                                   dim: hd, into: outFirst + i * hd)
                        }
                        j += bs
                    }
                }
            }
            model.linearRows(attn, rows: n, weight: L.o.weight, bias: L.o.bias, into: tmp)
            Kernels.add(x, tmp, count: n * H, into: x)

            // MLP block.
            for r in 0..<n {
                L.postAttentionNorm.withUnsafeBufferPointer {
                    Kernels.rmsNorm(x + r * H, weight: $0.baseAddress!, count: H, eps: eps, into: h + r * H)
                }
            }
            model.linearRows(h, rows: n, projections: [(L.gate, gate), (L.up, up)])
            Kernels.siluMul(gate: gate, up: up, count: n * I, into: gate)
            model.linearRows(gate, rows: n, weight: L.down.weight, bias: L.down.bias, into: tmp)
            if let mlpEdit = options.mlpOutputEdit, mlpEdit.layers.contains(l) {
                for (r, row) in rows.enumerated() { mlpEdit.edit(l, row, UnsafeMutableBufferPointer(start: tmp + r * H, count: H)) }
            }
            Kernels.add(x, tmp, count: n * H, into: x)
            capture(l + 1)
        }

        // Final norm and LM head for the requested rows.
        var logits: [Float] = []
        if !logitRows.isEmpty {
            for (i, r) in logitRows.enumerated() {
                w.finalNorm.withUnsafeBufferPointer {
                    Kernels.rmsNorm(x + r * H, weight: $0.baseAddress!, count: H, eps: eps, into: h + i * H)
                }
            }
            logits = [Float](unsafeUninitializedCapacity: logitRows.count * c.vocabSize) { buffer, count in
                model.linearRows(h, rows: logitRows.count, weight: w.lmHead, bias: nil, into: buffer.baseAddress!)
                count = logitRows.count * c.vocabSize
            }
        }

        var attention: [AttentionRow] = []
        if options.lastLayerAttention {
            for (r, row) in rows.enumerated() {
                let keyCount = row.position + 1
                let base = probabilities + probabilityOffsets[r]
                let all = Array(UnsafeBufferPointer(start: base, count: nh * keyCount))
                var maxima = Array(all[0..<keyCount])
                for head in 1..<max(1, nh) {
                    for j in 0..<keyCount { maxima[j] = max(maxima[j], all[head * keyCount + j]) }
                }
                attention.append(AttentionRow(heads: nh, keyCount: keyCount, probabilities: all, maxOverHeads: maxima))
            }
        }
        return ForwardOutput(rows: rows, logitRows: logitRows, vocabSize: c.vocabSize, logits: logits,
                             attention: attention, hiddenStates: hidden)
    }
}
