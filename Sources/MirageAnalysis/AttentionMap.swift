import Foundation
import MirageStore

/// One response's last-layer attention, compressed to what the over-trust analysis and the heatmap need.
///
/// Row i is the attention *from* response token i (as query, under teacher forcing over prompt + response),
/// maximum over the heads of the last layer, **not** re-normalised. Per row it keeps the mass on the image
/// span, the mass on the rest of the prompt, the row's total over every key (OPERA's re-normalisation
/// divisor), and the entries of the response columns 0...i. `normalised(row:column:)` is OPERA's window
/// entry `W[i][j]`.
public struct AttentionMap: Codable, Sendable, Equatable {
    /// Version of the `data` layout written to the store (docs/overtrust.md).
    public static let formatVersion = 1

    /// The response tokens (rows and columns, in order).
    public var tokens: [Int]
    /// The text each token adds to the decoded response (special tokens add ""); `pieces.joined()` is the
    /// response text, so a character offset in it locates a token.
    public var pieces: [String]
    /// Per row: Σ over the image span's keys (0 without an image span).
    public var imageMass: [Float]
    /// Per row: Σ over the prompt's other keys.
    public var promptMass: [Float]
    /// Per row: Σ over all keys 0...R+i (max over heads does not sum to 1, so this is kept, not derived).
    public var rowTotal: [Float]
    /// Response columns, lower triangle packed by rows: row i's i+1 entries start at i(i+1)/2.
    public var response: [Float]

    public init(tokens: [Int], pieces: [String], imageMass: [Float], promptMass: [Float], rowTotal: [Float],
                response: [Float]) throws {
        let n = tokens.count
        guard pieces.count == n, imageMass.count == n, promptMass.count == n, rowTotal.count == n,
              response.count == n * (n + 1) / 2 else {
            throw AnalysisError.malformedAttention("\(n) tokens need \(n) pieces, masses and totals and \(n * (n + 1) / 2) "
                + "response entries; got \(pieces.count), \(imageMass.count), \(promptMass.count), \(rowTotal.count), \(response.count)")
        }
        self.tokens = tokens
        self.pieces = pieces
        self.imageMass = imageMass
        self.promptMass = promptMass
        self.rowTotal = rowTotal
        self.response = response
    }

    /// Response rows (= columns).
    public var count: Int { tokens.count }

    /// Row i's response entries, columns 0...i (un-normalised).
    public func row(_ i: Int) -> ArraySlice<Float> {
        let start = i * (i + 1) / 2
        return response[start..<(start + i + 1)]
    }

    /// Un-normalised max-over-heads attention of response token `row` on response token `column` (0 above
    /// the diagonal).
    public func value(row: Int, column: Int) -> Float {
        column <= row ? response[row * (row + 1) / 2 + column] : 0
    }

    /// OPERA's window entry: the value divided by the row's total over all keys.
    public func normalised(row: Int, column: Int) -> Float { value(row: row, column: column) / rowTotal[row] }

    /// The row's share of attention on the image span (OPERA's first-10-token bonus uses this quantity).
    public func normalisedImageMass(row: Int) -> Float { imageMass[row] / rowTotal[row] }

    /// The re-normalised n×n matrix, row-major, zeros above the diagonal (what the heatmap shows).
    public var normalisedMatrix: [Float] {
        let n = count
        var m = [Float](repeating: 0, count: n * n)
        for i in 0..<n { for (j, v) in row(i).enumerated() { m[i * n + j] = v / rowTotal[i] } }
        return m
    }

    /// The response text (`pieces.joined()`).
    public var text: String { pieces.joined() }

    /// Display labels: each piece without surrounding whitespace, or `<id>` for a token that adds no text.
    public var labels: [String] {
        zip(tokens, pieces).map { token, piece in
            let t = piece.trimmingCharacters(in: .whitespacesAndNewlines)
            return t.isEmpty ? "<\(token)>" : t
        }
    }

    /// Start offset of every token in `text`, in Unicode scalars, plus the end offset (n + 1 entries).
    public var scalarOffsets: [Int] {
        var offsets = [0]
        offsets.reserveCapacity(count + 1)
        for p in pieces { offsets.append(offsets.last! + p.unicodeScalars.count) }
        return offsets
    }

    // MARK: Store encoding

    /// The store's record: per row i, Float32 little-endian `imageMass, promptMass, rowTotal` then the i+1
    /// response entries (3n + n(n+1)/2 floats).
    public var stored: StoredAttention {
        var data = Data(capacity: 4 * (3 * count + response.count))
        func put(_ v: Float) { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        for i in 0..<count {
            put(imageMass[i]); put(promptMass[i]); put(rowTotal[i])
            for v in row(i) { put(v) }
        }
        return StoredAttention(formatVersion: Self.formatVersion, n: count, tokens: tokens, labels: pieces, data: data)
    }

    /// Decodes a store record (format version 1).
    public init(_ stored: StoredAttention) throws {
        guard stored.formatVersion == Self.formatVersion else {
            throw AnalysisError.malformedAttention("attention format version \(stored.formatVersion) is not known to "
                + "this build (it reads \(Self.formatVersion)); upgrade mirage or record the attention again")
        }
        let n = stored.n
        let floats = 3 * n + n * (n + 1) / 2
        guard stored.data.count == 4 * floats else {
            throw AnalysisError.malformedAttention("attention data of \(stored.data.count) bytes for \(n) rows; expected \(4 * floats)")
        }
        var values = [Float](repeating: 0, count: floats)
        stored.data.withUnsafeBytes { raw in
            for k in 0..<floats {
                values[k] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self)))
            }
        }
        var image = [Float](), prompt = [Float](), total = [Float](), response = [Float]()
        image.reserveCapacity(n); prompt.reserveCapacity(n); total.reserveCapacity(n); response.reserveCapacity(n * (n + 1) / 2)
        var k = 0
        for i in 0..<n {
            image.append(values[k]); prompt.append(values[k + 1]); total.append(values[k + 2])
            response += values[(k + 3)..<(k + 4 + i)]
            k += 4 + i
        }
        try self.init(tokens: stored.tokens, pieces: stored.labels, imageMass: image, promptMass: prompt,
                      rowTotal: total, response: response)
    }
}

/// What goes wrong in the over-trust analysis, with what to do about it.
public enum AnalysisError: Error, CustomStringConvertible, Equatable {
    case malformedAttention(String)
    case invalidLayout(String)
    case invalidParameter(String)
    case noAttention(run: Int64, item: String)

    public var description: String {
        switch self {
        case let .malformedAttention(message): return "malformed attention record: \(message)"
        case let .invalidLayout(message): return "cannot capture attention: \(message)"
        case let .invalidParameter(message): return message
        case let .noAttention(run, item):
            return "run \(run) has no recorded attention for item '\(item)'. Record it with `mirage run "
                + "--record-attention` (or `AttentionRecorder`); `mirage attention \(run) --list` shows the items that have it."
        }
    }
}
