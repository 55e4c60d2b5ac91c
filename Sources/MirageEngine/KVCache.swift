import Foundation

/// Paged key/value storage shared by the sequences of one `Session`.
///
/// A block holds `blockSize` consecutive positions for every layer:
/// `[layer][key|value][kvHead][slot][headDim]` f32, so a head's keys within a block are contiguous.
/// Blocks are reference counted: forking a sequence shares all its blocks (no copy); the first write
/// into a shared block copies that one block (copy-on-write). Freed blocks are recycled.
final class KVBlockPool {
    let blockSize: Int
    let layers: Int
    let kvHeads: Int
    let headDim: Int
    let floatsPerBlock: Int
    private(set) var storage: [UnsafeMutablePointer<Float>] = []
    private(set) var referenceCounts: [Int] = []
    private var freeBlocks: [Int] = []
    /// Free blocks whose storage was given back (`releaseFreeStorage`); allocated again on reuse.
    private var released: [Bool] = []
    private var releasedCount = 0
    /// Stands in for the storage of a released block (never read or written: the block is free).
    private static let placeholder = UnsafeMutablePointer<Float>.allocate(capacity: 1)

    init(layers: Int, kvHeads: Int, headDim: Int, blockSize: Int) {
        precondition(blockSize > 0)
        self.blockSize = blockSize
        self.layers = layers
        self.kvHeads = kvHeads
        self.headDim = headDim
        floatsPerBlock = layers * 2 * kvHeads * blockSize * headDim
    }

    deinit {
        for (block, pointer) in storage.enumerated() where !released[block] { pointer.deallocate() }
    }

    /// A fresh block with reference count 1 (contents undefined).
    func allocate() -> Int {
        if let block = freeBlocks.popLast() {
            referenceCounts[block] = 1
            if released[block] {
                storage[block] = UnsafeMutablePointer<Float>.allocate(capacity: floatsPerBlock)
                released[block] = false
                releasedCount -= 1
            }
            return block
        }
        storage.append(UnsafeMutablePointer<Float>.allocate(capacity: floatsPerBlock))
        referenceCounts.append(1)
        released.append(false)
        return storage.count - 1
    }

    func retain(_ block: Int) {
        precondition(referenceCounts[block] > 0, "retaining a free KV block")
        referenceCounts[block] += 1
    }

    func release(_ block: Int) {
        precondition(referenceCounts[block] > 0, "releasing a free KV block")
        referenceCounts[block] -= 1
        if referenceCounts[block] == 0 { freeBlocks.append(block) }
    }

    /// Returns a block the caller owns exclusively with the first `validSlots` slots of `block`:
    /// the block itself when unshared, else a copy (and the caller's reference moves to the copy).
    func makeUnique(_ block: Int, validSlots: Int) -> Int {
        if referenceCounts[block] == 1 { return block }
        let copy = allocate()
        if validSlots > 0 {
            // Copy only the filled slots of each (layer, k|v, head) run.
            let run = blockSize * headDim
            for r in 0..<(layers * 2 * kvHeads) {
                (storage[copy] + r * run).update(from: storage[block] + r * run, count: validSlots * headDim)
            }
        }
        release(block)
        return copy
    }

    /// Keys of one (layer, kv head) in `block`: `blockSize × headDim`.
    @inline(__always)
    func keys(_ block: Int, layer: Int, head: Int) -> UnsafeMutablePointer<Float> {
        storage[block] + ((layer * 2) * kvHeads + head) * blockSize * headDim
    }

    /// Values of one (layer, kv head) in `block`: `blockSize × headDim`.
    @inline(__always)
    func values(_ block: Int, layer: Int, head: Int) -> UnsafeMutablePointer<Float> {
        storage[block] + ((layer * 2 + 1) * kvHeads + head) * blockSize * headDim
    }

    /// Gives the storage of every free block back to the system (a long-lived pool, e.g. a cached prompt
    /// prefix's, would otherwise keep the peak of every session that used it).
    func releaseFreeStorage() {
        for block in freeBlocks where !released[block] {
            storage[block].deallocate()
            storage[block] = Self.placeholder
            released[block] = true
            releasedCount += 1
        }
    }

    var liveBlockCount: Int { storage.count - freeBlocks.count }
    var bytesAllocated: Int { (storage.count - releasedCount) * floatsPerBlock * MemoryLayout<Float>.size }
}

/// One sequence's view of the cache: its block table and length (positions 0..<length are filled).
struct CachedSequence {
    var blocks: [Int] = []
    var length: Int = 0
}
