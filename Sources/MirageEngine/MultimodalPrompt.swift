import Foundation

/// The image features of one image, projected into the language model's embedding space: one row of
/// `width` (= text hidden size) floats per image token. Compute once, reuse across prompts and decoders.
public struct ImageEmbedding: Sendable, Equatable {
    public let tokenCount: Int
    public let width: Int
    /// tokenCount × width, row-major.
    public let values: [Float]

    public init(tokenCount: Int, width: Int, values: [Float]) {
        precondition(values.count == tokenCount * width, "ImageEmbedding: \(tokenCount) × \(width) values expected")
        self.tokenCount = tokenCount
        self.width = width
        self.values = values
    }

    /// Row `i` (image token i).
    public func row(_ i: Int) -> [Float] { Array(values[i * width..<(i + 1) * width]) }

    /// The rows as `.embedding` prompt items.
    public var promptItems: [PromptItem] { (0..<tokenCount).map { .embedding(row($0)) } }
}

/// A prompt with one image: the items to feed a session, where the image rows are, and where the model's
/// response begins (the first generated token's position), so decoders never count positions by hand.
public struct MultimodalPrompt: Sendable, Equatable {
    /// Token ids with the image token repeated once per image row (what transformers' processor produces).
    public let tokenIDs: [Int]
    /// `tokenIDs` with the image-token run replaced by the image embedding rows.
    public let items: [PromptItem]
    /// Positions of the image rows.
    public let imageSpan: Range<Int>
    /// The `input_ids` the family's reference `generate` is given, which set beam-length normalisation and
    /// OPERA's offsets (`PromptLayout.inputIDs`): `tokenIDs` for transformers' LLaVA (one image token per row);
    /// the original LLaVA code passes one `-200` placeholder for the whole image.
    public let inputIDs: [Int]
    /// Position of the first response token (= the prompt length).
    public var responseStart: Int { items.count }
    /// The image span the family's reference OPERA code computes when it differs from `imageSpan` (OPERA's
    /// InstructBLIP wrapper says 1…rows while the rows sit at 0..<rows; docs/paper-models.md): OPERA's decoder in
    /// reference mode uses it (`PromptLayout.operaImageSpan`). nil: `imageSpan`.
    public var operaImageSpan: Range<Int>?

    /// Substitutes `image` for the run of `imageTokenID` in `tokenIDs` (which must hold exactly
    /// `image.tokenCount` of them, consecutive), as LLaVA's forward scatters image features into the
    /// image-token positions.
    /// `imageSpan` replaces the image rows' positions as the span decoders see (Shikra's reference counts its
    /// `<im_start>` and `<im_end>` rows in); it must contain them.
    public init(tokenIDs: [Int], imageTokenID: Int, image: ImageEmbedding, inputIDs: [Int]? = nil,
                imageSpan span: Range<Int>? = nil) throws {
        let positions = tokenIDs.indices.filter { tokenIDs[$0] == imageTokenID }
        guard positions.count == image.tokenCount, let first = positions.first,
              positions.last! - first + 1 == positions.count else {
            throw ModelError.invalidInput(
                "the prompt has \(positions.count) image tokens (id \(imageTokenID))\(positions.isEmpty ? "" : " ") but the image has "
                + "\(image.tokenCount) rows: expand the image placeholder to exactly \(image.tokenCount) consecutive image tokens "
                + "(the model family's prompt builder does it: VisionLanguageModel.prompt)")
        }
        self.tokenIDs = tokenIDs
        self.inputIDs = inputIDs ?? tokenIDs
        let rows = first..<(first + image.tokenCount)
        if let span {
            guard span.lowerBound <= rows.lowerBound, span.upperBound >= rows.upperBound, span.upperBound <= tokenIDs.count else {
                throw ModelError.invalidInput("the image span \(span) does not contain the image rows \(rows) of a \(tokenIDs.count)-row prompt")
            }
        }
        imageSpan = span ?? rows
        var items = tokenIDs.map { PromptItem.token($0) }
        for i in 0..<image.tokenCount { items[first + i] = .embedding(image.row(i)) }
        self.items = items
    }
}
