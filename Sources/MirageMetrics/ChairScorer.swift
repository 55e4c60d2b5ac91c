import Foundation
import MirageText

/// One caption to score.
public struct ChairCaption: Sendable, Hashable, Codable {
    public var imageId: Int
    public var caption: String
    public init(imageId: Int, caption: String) {
        self.imageId = imageId
        self.caption = caption
    }
}

/// How a run is scored.
public struct ChairOptions: Sendable, Hashable, Codable {
    /// OPERA's 64-token protocol (issue shikiw/OPERA#30): cut every caption after its last "." so an
    /// unfinished trailing sentence is not scored; a caption without any "." becomes empty. This is the
    /// commented-out `cap[:cap.rfind('.')+1]` of the reference's `compute_chair`.
    public var truncateIncomplete: Bool
    /// The reference scores a caption whose image has no ground truth against an empty set (every mention
    /// hallucinated). By default that is an error (`ChairError.unknownImage`); set this to score like the
    /// reference.
    public var allowUnknownImages: Bool

    public init(truncateIncomplete: Bool = false, allowUnknownImages: Bool = false) {
        self.truncateIncomplete = truncateIncomplete
        self.allowUnknownImages = allowUnknownImages
    }

    /// The text that is actually scored.
    public func scoredText(_ caption: String) -> String {
        guard truncateIncomplete else { return caption }
        let utf8 = caption.utf8
        guard let lastPeriod = utf8.lastIndex(of: UInt8(ascii: ".")) else { return "" }
        return String(caption[...lastPeriod])
    }
}

/// An object mention in a scored caption.
public struct ChairMention: Sendable, Hashable, Codable {
    /// The vocabulary entry as it appears after lemmatisation and merging (e.g. "puppy", "wine glass").
    public var word: String
    /// Its COCO category (node word), e.g. "dog".
    public var nodeWord: String
    /// Index of its (first) token in `analysis.tokens`.
    public var tokenIndex: Int
    /// True when `nodeWord` is not in the image's ground truth.
    public var hallucinated: Bool
}

/// Per-caption metrics, as the reference writes them (`CHAIRs`, `CHAIRi`, `Recall`) plus PAI's
/// per-caption `Precision` and `F1`.
public struct ChairCaptionMetrics: Sendable, Hashable, Codable {
    /// 1 when at least one mention is hallucinated, else 0.
    public var chairS: Int
    /// Hallucinated mentions / mentions (0 with no mention).
    public var chairI: Double
    /// Distinct mentioned ground-truth objects / ground-truth objects (0 with an empty ground truth).
    public var recall: Double
    /// Distinct mentioned ground-truth objects / distinct mentioned objects (0 with no mention).
    public var precision: Double
    /// Harmonic mean of `precision` and `recall` (0 when both are 0).
    public var f1: Double
}

/// The full result for one caption.
public struct ChairCaptionResult: Sendable, Hashable, Codable {
    public var imageId: Int
    /// The caption as given.
    public var caption: String
    /// The text that was analysed (differs from `caption` only with `truncateIncomplete`).
    public var scoredText: String
    /// Tokens, tags and lemmas of `scoredText`.
    public var analysis: TextAnalysis
    /// Lemmas after two-word merging, punctuation included (the reference's `words` / `raw_words`).
    public var words: [String]
    /// Object mentions in caption order, duplicates kept.
    public var mentions: [ChairMention]
    /// The image's ground-truth node words, sorted.
    public var groundTruth: [String]
    public var metrics: ChairCaptionMetrics

    /// Node words mentioned, duplicates kept (the reference's `mscoco_generated_words`).
    public var generated: [String] { mentions.map(\.nodeWord) }
    /// Hallucinated mentions, duplicates kept (the reference's `mscoco_hallucinated_words`).
    public var hallucinated: [ChairMention] { mentions.filter(\.hallucinated) }
}

/// Run-level counts behind the metrics.
public struct ChairCounts: Sendable, Hashable, Codable {
    public var captions = 0
    public var hallucinatedCaptions = 0
    /// Σ|M_k|: object mentions, duplicates kept.
    public var mentions = 0
    /// Σ|H_k|: hallucinated mentions, duplicates kept.
    public var hallucinatedMentions = 0
    /// Σ|set(M_k)|: distinct node words mentioned per caption.
    public var distinctMentions = 0
    /// Σ|R_k|: distinct ground-truth node words mentioned per caption.
    public var recalledObjects = 0
    /// Σ|GT_k|.
    public var groundTruthObjects = 0
    /// Σ len(words_k): tokens after merging, punctuation included.
    public var words = 0
    public init() {}
}

/// Run-level metrics. Every value is a fraction (the reference prints them ×100).
public struct ChairMetrics: Sendable, Hashable, Codable {
    /// CHAIR_S = captions with a hallucination / captions.
    public var chairS: Double
    /// CHAIR_I = Σ hallucinated mentions / Σ mentions (micro, duplicates count). NaN with no mention at all
    /// (the reference divides by zero).
    public var chairI: Double
    /// Recall = Σ|R_k| / Σ|GT_k| (OPERA/Maxlinn). NaN with no ground-truth object at all.
    public var recall: Double
    /// Len = 0.01 · mean tokens per caption after merging (OPERA), so ×100 reads as the mean token count.
    public var len: Double
    /// Object precision as PAI (LALBJ/PAI, `chair.py`, `compute_chair`) reports it:
    /// Σ|R_k| / Σ|set(M_k)|, i.e. distinct correct objects over distinct mentioned objects, micro-averaged
    /// over captions. NaN with no mention at all.
    public var objectPrecision: Double
    /// Object F1 as PAI reports it: 2·P·R / (P + R) of the run-level `objectPrecision` and `recall`.
    public var objectF1: Double
    public var counts: ChairCounts

    /// The reference's output lines (`print_metrics`: `str(k).ljust(10)`, `": "`, `f'{v*100:.01f}'`).
    public var referenceReport: String {
        [("CHAIRs", chairS), ("CHAIRi", chairI), ("Recall", recall), ("Len", len)]
            .map { name, value in
                name.padding(toLength: max(10, name.count), withPad: " ", startingAt: 0) + ": "
                    + Self.percent(value)
            }
            .joined(separator: "\n")
    }

    /// `f'{v * 100:.01f}'`: C's `%.1f` rounds the exact binary value like Python does.
    public static func percent(_ value: Double) -> String {
        let scaled = value * 100
        if scaled.isNaN { return "nan" }
        if scaled.isInfinite { return scaled > 0 ? "inf" : "-inf" }
        return String(format: "%.1f", scaled)
    }
}

/// A scored run: metrics and every caption's detail, in input order.
public struct ChairRunResult: Sendable, Hashable, Codable {
    public var metrics: ChairMetrics
    public var captions: [ChairCaptionResult]
}

/// CHAIR (Rohrbach et al. 2018) exactly as OPERA's `chair.py` computes it, plus PAI's object precision/F1.
/// Thread-safe; `score(_:)` splits a run over `threads` workers.
public struct ChairScorer: Sendable {
    public let vocabulary: ChairVocabulary
    public let groundTruth: ChairGroundTruth
    public let analyzer: any CaptionAnalyzing
    public var options: ChairOptions
    /// Worker threads for a run (default 2, this project's machine).
    public var threads: Int

    public init(vocabulary: ChairVocabulary, groundTruth: ChairGroundTruth, analyzer: any CaptionAnalyzing,
                options: ChairOptions = ChairOptions(), threads: Int = 2) {
        self.vocabulary = vocabulary
        self.groundTruth = groundTruth
        self.analyzer = analyzer
        self.options = options
        self.threads = max(1, threads)
    }

    /// The ground truth a caption is scored against, or the typed error for an unknown image.
    func groundTruthObjects(for imageId: Int, captionIndex: Int?) throws -> Set<String> {
        if let objects = groundTruth.objects(for: imageId) { return objects }
        if options.allowUnknownImages { return [] }
        throw ChairError.unknownImage(imageId: imageId, captionIndex: captionIndex)
    }

    /// Scores one caption.
    public func score(_ caption: ChairCaption) throws -> ChairCaptionResult {
        let truth = try groundTruthObjects(for: caption.imageId, captionIndex: nil)
        return score(caption, against: truth)
    }

    func score(_ caption: ChairCaption, against truth: Set<String>) -> ChairCaptionResult {
        let text = options.scoredText(caption.caption)
        let analysis = analyzer.analyze(text)
        let found = vocabulary.words(fromLemmas: analysis.lemmas)
        var mentions: [ChairMention] = []
        mentions.reserveCapacity(found.mentions.count)
        var hallucinatedCount = 0
        var recalled = Set<String>()
        var distinct = Set<String>()
        for m in found.mentions {
            let isHallucinated = !truth.contains(m.nodeWord)
            if isHallucinated { hallucinatedCount += 1 } else { recalled.insert(m.nodeWord) }
            distinct.insert(m.nodeWord)
            mentions.append(ChairMention(word: m.word, nodeWord: m.nodeWord, tokenIndex: m.tokenIndex,
                                         hallucinated: isHallucinated))
        }
        let chairI = mentions.isEmpty ? 0 : Double(hallucinatedCount) / Double(mentions.count)
        let recall = truth.isEmpty ? 0 : Double(recalled.count) / Double(truth.count)
        let precision = distinct.isEmpty ? 0 : Double(recalled.count) / Double(distinct.count)
        let f1 = precision + recall == 0 ? 0 : 2 * (recall * precision) / (precision + recall)
        return ChairCaptionResult(
            imageId: caption.imageId, caption: caption.caption, scoredText: text, analysis: analysis,
            words: found.words, mentions: mentions, groundTruth: truth.sorted(),
            metrics: ChairCaptionMetrics(chairS: hallucinatedCount > 0 ? 1 : 0, chairI: chairI, recall: recall,
                                         precision: precision, f1: f1))
    }

    /// Scores a run. Unknown image ids are reported before any caption is analysed.
    public func score(_ captions: [ChairCaption]) throws -> ChairRunResult {
        guard !captions.isEmpty else { throw ChairError.noCaptions }
        let truths: [Set<String>] = try captions.enumerated().map { index, caption in
            try groundTruthObjects(for: caption.imageId, captionIndex: index)
        }
        let results = ParallelMap.run(count: captions.count, threads: threads) { i in
            score(captions[i], against: truths[i])
        }
        return ChairRunResult(metrics: Self.aggregate(results), captions: results)
    }

    /// Run metrics from per-caption results, accumulated in the reference's order and arithmetic
    /// (float counters, `0.01*len_caps/num_caps`) so the values agree with it bit for bit.
    public static func aggregate(_ results: [ChairCaptionResult]) -> ChairMetrics {
        var counts = ChairCounts()
        for r in results {
            counts.captions += 1
            counts.mentions += r.mentions.count
            let h = r.mentions.reduce(0) { $0 + ($1.hallucinated ? 1 : 0) }
            counts.hallucinatedMentions += h
            if h > 0 { counts.hallucinatedCaptions += 1 }
            counts.words += r.words.count
            counts.groundTruthObjects += r.groundTruth.count
            counts.recalledObjects += Set(r.mentions.lazy.filter { !$0.hallucinated }.map(\.nodeWord)).count
            counts.distinctMentions += Set(r.mentions.map(\.nodeWord)).count
        }
        // Integer counts below 2^53 are exact as doubles, so these equal the reference's float sums.
        let n = Double(counts.captions)
        let chairS = Double(counts.hallucinatedCaptions) / n
        let chairI = Double(counts.hallucinatedMentions) / Double(counts.mentions)
        let recall = Double(counts.recalledObjects) / Double(counts.groundTruthObjects)
        let len = 0.01 * Double(counts.words) / n
        let precision = Double(counts.recalledObjects) / Double(counts.distinctMentions)
        let f1 = 2 * (recall * precision) / (precision + recall)
        return ChairMetrics(chairS: chairS, chairI: chairI, recall: recall, len: len,
                            objectPrecision: precision, objectF1: f1, counts: counts)
    }
}

/// Splits `0..<count` into up to `threads` contiguous chunks and runs each on its own thread (the calling
/// thread takes the first). Plain threads, not `concurrentPerform`, whose worker count is erratic on this
/// machine.
enum ParallelMap {
    /// Runs `body` once per chunk and returns the chunk results in order. Chunks hold at least
    /// `minimumPerThread` indices, so tiny inputs stay on the calling thread.
    static func chunks<T>(count: Int, threads: Int, minimumPerThread: Int = 8,
                          _ body: @escaping @Sendable (Range<Int>) -> T) -> [T] {
        let workers = max(1, min(threads, count / max(1, minimumPerThread)))
        let size = (count + workers - 1) / max(1, workers)
        let ranges = (0..<workers).map { w in min(count, w * size)..<min(count, (w + 1) * size) }
        if workers == 1 { return [body(0..<count)] }
        let results = UnsafeMutablePointer<T>.allocate(capacity: workers)
        let base = UncheckedSendablePointer(pointer: results)
        let done = DispatchSemaphore(value: 0)
        for w in 1..<workers {
            let range = ranges[w]
            let thread = Thread {
                (base.pointer + w).initialize(to: body(range))
                done.signal()
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        results.initialize(to: body(ranges[0]))
        for _ in 1..<workers { done.wait() }
        let out = Array(UnsafeBufferPointer(start: results, count: workers))
        results.deinitialize(count: workers)
        results.deallocate()
        return out
    }

    /// Maps every index, in parallel chunks, keeping index order.
    static func run<T>(count: Int, threads: Int, minimumPerThread: Int = 8,
                       _ body: @escaping @Sendable (Int) -> T) -> [T] {
        chunks(count: count, threads: threads, minimumPerThread: minimumPerThread) { range in
            range.map(body)
        }.flatMap { $0 }
    }
}

struct UncheckedSendablePointer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
}
