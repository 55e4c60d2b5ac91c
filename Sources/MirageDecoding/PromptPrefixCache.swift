import Foundation
import MirageEngine

/// Prompt prefixes kept between items, so the image part of a prompt is prefilled once and every item that
/// starts with it (each POPE question of the image, each decoder and run of the same model, template and
/// preprocessing) forks its cache copy-on-write instead of computing it again. See docs/runner.md.
///
/// An entry is keyed by the prefix rows themselves (token ids and image embedding rows, compared exactly),
/// the model and the KV block size, so two prompts share an entry only when their prefixes are the same
/// numbers. Entries are evicted least recently used first once their cache storage exceeds `limitBytes`.
/// Not thread-safe: use it from the thread that runs the model.
public final class PromptPrefixCache {
    /// The most bytes of KV cache storage the kept prefixes may hold (0 keeps nothing).
    public let limitBytes: Int
    /// Prefixes asked for, and how many of them were forked from a kept entry instead of computed.
    public private(set) var prefills = 0
    public private(set) var reused = 0

    private struct Key: Hashable {
        let model: ObjectIdentifier
        let blockSize: Int
        let rows: [PromptItem]
    }

    private final class Entry {
        let session: Session
        var lastUse: UInt64
        init(session: Session, lastUse: UInt64) {
            self.session = session; self.lastUse = lastUse
        }
        /// The storage of the entry's block pool: the prefix's blocks, plus those of sessions forked from it
        /// that are still alive (freed blocks are given back first).
        var bytes: Int {
            session.releaseFreeBlocks()
            return session.cacheBytes
        }
    }

    private var entries: [Key: Entry] = [:]
    private var clock: UInt64 = 0

    public init(limitBytes: Int) {
        precondition(limitBytes >= 0)
        self.limitBytes = limitBytes
    }

    /// Bytes of cache storage held by the kept prefixes now.
    public var bytesHeld: Int { entries.values.reduce(0) { $0 + $1.bytes } }

    /// Number of prefixes kept.
    public var count: Int { entries.count }

    /// "prefix cache: 29 of 30 prefills reused".
    public var summary: String { "prefix cache: \(reused) of \(prefills) prefill\(prefills == 1 ? "" : "s") reused" }

    /// A session whose sequence 0 holds `prefix` prefilled (one pass, no logits). A kept prefix is forked and
    /// its meter starts empty; otherwise the prefix is computed (that pass is on the returned meter) and kept,
    /// if it fits.
    public func session(prefix: ArraySlice<PromptItem>, model: LanguageModel, blockSize: Int) throws -> MeteredSession {
        prefills += 1
        clock += 1
        evict()  // the items forked since the last call have ended: their blocks are given back here
        let key = Key(model: ObjectIdentifier(model), blockSize: blockSize, rows: Array(prefix))
        if let entry = entries[key] {
            entry.lastUse = clock
            reused += 1
            return MeteredSession(Session(forking: 0, of: entry.session))
        }
        let computed = MeteredSession(model.makeSession(blockSize: blockSize))
        try computed.prefill(key.rows, options: ForwardOptions(logits: .none))
        guard limitBytes > 0 else { return computed }
        let entry = Entry(session: computed.session, lastUse: clock)
        entries[key] = entry
        evict()
        return MeteredSession(Session(forking: 0, of: computed.session), meter: computed.meter)
    }

    /// Drops least recently used prefixes until the rest fit in `limitBytes`.
    private func evict() {
        var held = bytesHeld
        while held > limitBytes, let oldest = entries.min(by: { $0.value.lastUse < $1.value.lastUse }) {
            held -= oldest.value.bytes
            entries[oldest.key] = nil
        }
    }

    /// Drops every kept prefix (the counters stay).
    public func removeAll() { entries.removeAll() }
}
