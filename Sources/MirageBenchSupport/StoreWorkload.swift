import Foundation
import MirageMetrics
import MirageStore

extension BenchmarkSupport {
    /// Item `i` of the store benchmarks: a POPE answer (labels and answers alternate) with its score.
    public static func storeItem(_ i: Int) -> (NewItem, ItemScore) {
        (NewItem(key: String(i), ordinal: i, imageID: i / 6 + 1, questionID: i + 1,
                 prompt: "Is there a dog in the image?", outputText: i % 3 == 0 ? "No." : "Yes."),
         .pope(PopeItemScore(label: i % 2 == 0 ? .yes : .no, parsed: i % 3 == 0 ? .no : .yes)))
    }

    /// Records items 0..<`items`, one transaction each.
    public static func record(_ store: any RunRepository, run: Int64, items: Int) throws {
        for i in 0..<items {
            let (item, score) = storeItem(i)
            try store.recordItem(run: run, item, score: score)
        }
    }

    /// Records items 0..<`items` as a `mirage run` worker does: each batch claimed first (one transaction),
    /// the experiment's progress read after the claim, then the claimed items recorded one transaction each.
    public static func claimAndRecord(_ store: any RunRepository, run: Int64, items: Int, batch: Int, worker: String,
                                      lease: TimeInterval) throws {
        for start in stride(from: 0, to: items, by: batch) {
            let refs = (start..<min(items, start + batch)).map { ItemRef(run: run, key: String($0)) }
            let claimed = try store.claimItems(refs, worker: worker, lease: lease)
            _ = try store.workProgress(runs: [run])
            for ref in claimed {
                let (item, score) = storeItem(Int(ref.key)!)
                try store.recordItem(run: run, item, score: score)
            }
        }
    }
}
