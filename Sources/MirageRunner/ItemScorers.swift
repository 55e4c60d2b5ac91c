import Foundation
import MirageData
import MirageMetrics
import MirageStore

/// CHAIR on one caption item (its `imageID` and `outputText`).
public struct ChairItemScorer: ItemScoring {
    public let scorer: ChairScorer
    public init(scorer: ChairScorer) { self.scorer = scorer }

    public func score(_ item: NewItem) throws -> ItemScore {
        guard let image = item.imageID else {
            throw StoreError.invalid("item '\(item.key)' has no image id; CHAIR needs the COCO image id of every caption")
        }
        return .chair(ChairItemScore(try scorer.score(ChairCaption(imageId: image, caption: item.outputText))))
    }

    /// Scores on the scorer's worker threads.
    public func scoreAll(_ items: [NewItem]) throws -> [ItemScore] {
        if items.isEmpty { return [] }
        let captions = try items.map { item -> ChairCaption in
            guard let image = item.imageID else {
                throw StoreError.invalid("item '\(item.key)' has no image id; CHAIR needs the COCO image id of every caption")
            }
            return ChairCaption(imageId: image, caption: item.outputText)
        }
        return try scorer.score(captions).captions.map { .chair(ChairItemScore($0)) }
    }

    /// SHA-256 of the vocabulary's canonical JSON (entry → node word, sorted keys): identifies it in protocols.
    public static func vocabularyChecksum(_ vocabulary: ChairVocabulary) -> String {
        ContentHash.sha256Hex(Data(CanonicalJSON.string(vocabulary.nodeWordByEntry).utf8))
    }

    /// SHA-256 of the ground truth in its prebuilt JSON layout (the same whether it was loaded or built).
    public static func groundTruthChecksum(_ truth: ChairGroundTruth) -> String {
        ContentHash.sha256Hex(truth.prebuiltJSONData())
    }
}

/// POPE on one answer item: the label comes with the item (from the question file).
public struct PopeItemScorer: ItemScoring {
    public let parser: POPEAnswerParser
    /// Question id → label.
    public let labels: [Int: POPELabel]
    public init(parser: POPEAnswerParser, labels: [Int: POPELabel]) { self.parser = parser; self.labels = labels }

    public func score(_ item: NewItem) throws -> ItemScore {
        guard let id = item.questionID, let label = labels[id] else {
            throw StoreError.invalid("item '\(item.key)' has no question with a label")
        }
        return .pope(PopeItemScore(label: label, parsed: parser.parse(item.outputText)))
    }
}

/// Scores one recorded item (CHAIR on a caption, POPE on an answer).
public protocol ItemScoring: Sendable {
    func score(_ item: NewItem) throws -> ItemScore
    /// Scores many items at once (in order); scorers that can work in parallel override this.
    func scoreAll(_ items: [NewItem]) throws -> [ItemScore]
}

extension ItemScoring {
    public func scoreAll(_ items: [NewItem]) throws -> [ItemScore] { try items.map(score) }
}

/// A run's metrics from its stored items: the function the store is given when it finishes or merges runs.
public enum RunEvaluation {
    public static func metrics(run: RunRecord, items: [StoredItem]) -> [String: Double] {
        let failed = items.filter { $0.item.failureReason != nil }.count
        switch run.task {
        case .chair:
            return RunMetrics.chair(items.compactMap { if case .chair(let s)? = $0.score { return s } else { return nil } },
                                    failedItems: failed)
        case .pope:
            let parser = run.protocolRecord.evalProtocol.answerParser.flatMap(POPEAnswerParser.init(rawValue:)) ?? .opera
            return RunMetrics.pope(items.compactMap { if case .pope(let s)? = $0.score { return s } else { return nil } },
                                   parser: parser, failedItems: failed)
        }
    }
}
