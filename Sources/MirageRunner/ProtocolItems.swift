import Foundation
import MirageData
import MirageEngine
import MirageMetrics
import MirageModels
import MirageStore

/// One item a protocol asks for: a caption of an image, or an answer to a POPE question.
public struct PlannedItem: Sendable, Equatable {
    /// The store key: the image id for CHAIR, the question id for POPE (unique within a run).
    public var key: String
    /// Position in the protocol's item order (sorted image ids; question-file order for POPE).
    public var ordinal: Int
    public var imageID: Int
    public var questionID: Int?
    /// The user text (instruction, or question inside the protocol's prompt).
    public var text: String
}

/// A protocol bound to its data: the image ids, the items, the scorer and the store's protocol fields.
public struct PreparedProtocol {
    public var spec: RunProtocol
    /// Sorted image ids after selection and `limit` (every shard sees the same list).
    public var imageIDs: [Int]
    public var items: [PlannedItem]
    public var scorer: any ItemScoring
    /// The store fields that do not depend on the model (the template does; see `evalProtocol(for:)`).
    var base: EvalProtocol

    /// The store's protocol for a model family: `promptTemplate` is the rendered template around the prompt.
    public func evalProtocol(for architecture: Architecture) throws -> EvalProtocol {
        var p = base
        p.promptTemplate = try RunProtocol.render(spec.template(for: architecture), text: spec.prompt)
        return p
    }

    /// The store's protocol for a model: `promptTemplate` is its template (see `RunProtocol.template(for:)`)
    /// around the prompt, rendered as the model renders it.
    public func evalProtocol(for model: any VisionLanguageModel) throws -> EvalProtocol {
        var p = base
        p.promptTemplate = try RunProtocol.render(spec.template(for: model), text: spec.prompt, model: model)
        return p
    }

    /// Resolves images, questions and the scorer.
    /// - Parameters:
    ///   - chairScorer: builds CHAIR's scorer for the given options (called once for CHAIR protocols).
    ///   - questionFile: finds a POPE question source's file.
    public static func prepare(_ spec: RunProtocol, imageSet: ImageSet, limit: Int?,
                               chairScorer: (ChairOptions) throws -> ChairScorer,
                               questionFile: (RunProtocol.QuestionSource) throws -> URL) throws -> PreparedProtocol {
        switch spec.task {
        case .chair:
            let scorer = try chairScorer(ChairOptions(truncateIncomplete: spec.truncateIncomplete))
            var ids: [Int]
            switch spec.images {
            case .ids(let list): ids = Array(Set(list)).sorted()
            case let .sample(count, seed):
                let pool = imageSet.annotatedIDs.isEmpty ? scorer.groundTruth.objectsByImage.keys.sorted() : imageSet.annotatedIDs
                ids = ImageSampler.sample(pool, count: count, seed: seed)
            case .questionFile:
                throw RunnerError.configuration("protocol \(spec.name): a CHAIR protocol needs images: {ids: [...]} or {sample: N}")
            }
            if let limit { ids = Array(ids.prefix(limit)) }
            if let unknown = ids.first(where: { scorer.groundTruth.objects(for: $0) == nil }) {
                throw RunnerError.configuration("protocol \(spec.name): image \(unknown) has no CHAIR ground truth; give the ground truth of its split (annotations: chair_ground_truth: in the experiment, or --ground-truth FILE)")
            }
            let items = ids.enumerated().map { i, id in
                PlannedItem(key: String(id), ordinal: i, imageID: id, questionID: nil, text: spec.userText())
            }
            var base = EvalProtocol(task: .chair, imageIDs: ids, maxNewTokens: spec.maxNewTokens,
                                    vocabularyChecksum: ChairItemScorer.vocabularyChecksum(scorer.vocabulary),
                                    groundTruthChecksum: ChairItemScorer.groundTruthChecksum(scorer.groundTruth))
            if spec.truncateIncomplete { base.answerParser = "truncate-incomplete" }
            if spec.padToSquare { base.imagePreprocessing = "pad-to-square" }
            return PreparedProtocol(spec: spec, imageIDs: ids, items: items, scorer: ChairItemScorer(scorer: scorer), base: base)
        case .pope:
            guard let source = spec.questions else {
                throw RunnerError.configuration("protocol \(spec.name): a POPE protocol needs questions:")
            }
            let url = try questionFile(source)
            let file = try POPEQuestionReader.load(url)
            var imageOf: [Int: Int] = [:]
            for q in file.questions {
                guard let id = q.cocoImageID else {
                    throw RunnerError.configuration("\(url.path): question \(q.questionID) names image '\(q.image)', which has no COCO id in its name")
                }
                imageOf[q.questionID] = id
            }
            let allImages = Array(Set(imageOf.values)).sorted()
            var ids: [Int]
            switch spec.images {
            case .questionFile: ids = allImages
            case .ids(let list): ids = Array(Set(list).intersection(allImages)).sorted()
            case let .sample(count, seed): ids = ImageSampler.sample(allImages, count: count, seed: seed)
            }
            if let limit { ids = Array(ids.prefix(limit)) }
            let chosen = Set(ids)
            var items: [PlannedItem] = []
            var labels: [Int: POPELabel] = [:]
            for q in file.questions where chosen.contains(imageOf[q.questionID]!) {
                items.append(PlannedItem(key: String(q.questionID), ordinal: items.count, imageID: imageOf[q.questionID]!,
                                         questionID: q.questionID, text: spec.userText(question: q.text)))
                labels[q.questionID] = q.label
            }
            if Set(items.map(\.key)).count != items.count {
                throw RunnerError.configuration("\(url.path): question ids repeat; every question needs its own question_id")
            }
            let parser = spec.answerParser ?? .opera
            let split: String?
            if case .dataSource(_, let s) = source { split = s.rawValue } else { split = file.variant.known.first?.split.rawValue }
            let base = EvalProtocol(task: .pope, imageIDs: ids, maxNewTokens: spec.maxNewTokens,
                                    questionFile: url.lastPathComponent, questionChecksum: file.sha256, split: split,
                                    answerParser: parser.rawValue,
                                    imagePreprocessing: spec.padToSquare ? "pad-to-square" : nil)
            return PreparedProtocol(spec: spec, imageIDs: ids, items: items,
                                    scorer: PopeItemScorer(parser: parser, labels: labels), base: base)
        }
    }
}
