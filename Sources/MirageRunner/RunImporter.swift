import Foundation
import MirageMetrics
import MirageStore

/// Stores a finished set of outputs (an imported file) as a run, scoring each item and committing it on its
/// own, then computes the run metrics. Running it again on the same input resumes where it stopped: items
/// already stored are skipped, so a killed import loses at most the item in flight.
public struct RunImporter {
    public struct Outcome: Sendable {
        public var run: RunRecord
        /// False when the source was already imported (the run was resumed or was complete).
        public var created: Bool
        /// Items recorded by this call (0 when the run was already complete).
        public var recorded: Int
        public var metrics: [String: Double]
        public var wasComplete: Bool
    }

    public let store: any RunRepository
    public init(store: any RunRepository) { self.store = store }

    /// - Parameter progress: called after each recorded item with (done, total).
    public func importRun(_ new: NewRun, items: [NewItem], scorer: any ItemScoring,
                          progress: ((Int, Int) -> Void)? = nil) throws -> Outcome {
        var new = new
        if new.expectedItems == nil { new.expectedItems = items.count }
        let (run, created) = try store.createRun(new)
        if run.status == .complete {
            return Outcome(run: run, created: false, recorded: 0, metrics: try store.metrics(run: run.id), wasComplete: true)
        }
        let scored = try store.scoredItemKeys(run: run.id)
        let pending = items.filter { !scored.contains($0.key) }
        // Scoring is done up front (in parallel where the scorer can); storing stays one item per
        // transaction, so an interruption loses at most one stored item's worth of work.
        let toScore = pending.filter { $0.failureReason == nil }
        var scores: [String: ItemScore] = [:]
        for (item, score) in zip(toScore, try scorer.scoreAll(toScore)) { scores[item.key] = score }
        var recorded = 0
        var done = scored.count
        for item in pending {
            try store.recordItem(run: run.id, item, score: scores[item.key])
            recorded += 1
            done += 1
            progress?(done, items.count)
        }
        let metrics = try store.finishRun(run.id, metrics: RunEvaluation.metrics)
        return Outcome(run: try store.run(id: run.id), created: created, recorded: recorded, metrics: metrics, wasComplete: false)
    }
}
