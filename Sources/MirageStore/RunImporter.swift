import Foundation

/// Scores one recorded item (CHAIR on a caption, POPE on an answer).
public protocol ItemScoring: Sendable {
    func score(_ item: NewItem) throws -> ItemScore
}

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

    public let store: RunStore
    public init(store: RunStore) { self.store = store }

    /// - Parameter progress: called after each recorded item with (done, total).
    public func importRun(_ new: NewRun, items: [NewItem], scorer: any ItemScoring,
                          progress: ((Int, Int) -> Void)? = nil) throws -> Outcome {
        var new = new
        new.expectedItems = items.count
        let (run, created) = try store.createRun(new)
        if run.status == .complete {
            return Outcome(run: run, created: false, recorded: 0, metrics: try store.metrics(run: run.id), wasComplete: true)
        }
        let scored = try store.scoredItemKeys(run: run.id)
        var recorded = 0
        var done = scored.count
        for item in items where !scored.contains(item.key) {
            let score = item.failureReason == nil ? try scorer.score(item) : nil
            try store.recordItem(run: run.id, item, score: score)
            recorded += 1
            done += 1
            progress?(done, items.count)
        }
        let metrics = try store.finishRun(run.id)
        return Outcome(run: try store.run(id: run.id), created: created, recorded: recorded, metrics: metrics, wasComplete: false)
    }
}
