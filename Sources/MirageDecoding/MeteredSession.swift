import Foundation
import MirageEngine

/// Counts forward passes and rows and splits wall time into prefill and decode.
public struct ForwardMeter: Sendable, Equatable {
    public var passes = 0
    public var prefillRows = 0
    public var decodeRows = 0
    public var prefillNanoseconds: UInt64 = 0
    public var decodeNanoseconds: UInt64 = 0

    public init() {}

    /// The sum of two meters (a decoder with branch sessions adds their meters to its own).
    public static func + (a: ForwardMeter, b: ForwardMeter) -> ForwardMeter {
        var m = a
        m.passes += b.passes
        m.prefillRows += b.prefillRows
        m.decodeRows += b.decodeRows
        m.prefillNanoseconds += b.prefillNanoseconds
        m.decodeNanoseconds += b.decodeNanoseconds
        return m
    }
}

/// A `Session` whose passes are counted and timed. Use `prefill` for prompt rows (and re-prefills after a
/// rollback count as decode work: use `forward`), `step`/`forward` for everything else.
public final class MeteredSession {
    public let session: Session
    public private(set) var meter = ForwardMeter()

    public init(_ session: Session) { self.session = session }

    /// A session whose earlier work (e.g. a cached prefix's prefill) is already on the meter.
    public init(_ session: Session, meter: ForwardMeter) {
        self.session = session
        self.meter = meter
    }

    /// Appends prompt rows to `sequence`; time and rows count as prefill.
    @discardableResult
    public func prefill(_ items: [PromptItem], to sequence: Int = 0,
                        options: ForwardOptions = ForwardOptions()) throws -> ForwardOutput {
        guard !items.isEmpty else { throw DecodingError.emptyPrompt }
        let start = DispatchTime.now().uptimeNanoseconds
        let out = try session.append(items, to: sequence, options: options)
        meter.prefillNanoseconds += DispatchTime.now().uptimeNanoseconds - start
        meter.passes += 1
        meter.prefillRows += items.count
        return out
    }

    /// One token per sequence, one pass (decode).
    @discardableResult
    public func step(_ tokens: [Int], options: ForwardOptions = ForwardOptions()) throws -> ForwardOutput {
        try timedDecode(rows: tokens.count) { try session.step(tokens, options: options) }
    }

    /// The general pass (decode): candidate rows, re-prefills after a rollback, several sequences at once.
    @discardableResult
    public func forward(_ batch: [SequenceInput], options: ForwardOptions = ForwardOptions()) throws -> ForwardOutput {
        try timedDecode(rows: batch.reduce(0) { $0 + $1.items.count }) { try session.forward(batch, options: options) }
    }

    private func timedDecode(rows: Int, _ body: () throws -> ForwardOutput) rethrows -> ForwardOutput {
        let start = DispatchTime.now().uptimeNanoseconds
        let out = try body()
        meter.decodeNanoseconds += DispatchTime.now().uptimeNanoseconds - start
        meter.passes += 1
        meter.decodeRows += rows
        return out
    }
}

/// Code a decoder runs around each decode pass: adds outputs to the pass (attention rows, hidden states,
/// a score edit) and reads them afterwards. Decoders that accept hooks call `options` before and `observe`
/// after every step.
public protocol StepHook {
    /// The options for the pass of `step`, starting from the decoder's own.
    func options(step: Int, base: ForwardOptions) -> ForwardOptions
    /// Sees the pass's output; may record trace events.
    mutating func observe(step: Int, output: ForwardOutput, trace: inout DecodeTrace)
}

extension StepHook {
    public func options(step: Int, base: ForwardOptions) -> ForwardOptions { base }
    public mutating func observe(step: Int, output: ForwardOutput, trace: inout DecodeTrace) {}
}
