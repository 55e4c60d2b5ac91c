import Foundation
import MirageMetrics
import MirageStore

/// Running totals of one run: counts and the metrics so far (items stored before a resume included).
public struct RunTally: Sendable, Equatable {
    public var done = 0
    public var total = 0
    /// Items other workers stored since this one planned the run (counted in `stored`, not in the metrics so far).
    public var elsewhere = 0
    /// Workers holding claims on the run's experiment (1 when alone).
    public var workers = 1
    /// Items stored by every worker.
    public var stored: Int { done + elsewhere }
    public var failed = 0
    /// Failure reasons, grouped by their kind (the text before the first ":"), with one example each.
    public var failures: [String: (count: Int, example: String)] = [:]
    // CHAIR
    var captions = 0, hallucinatedCaptions = 0, mentions = 0, hallucinatedMentions = 0
    // POPE
    var answers = 0, correct = 0

    public static func == (a: RunTally, b: RunTally) -> Bool {
        a.done == b.done && a.total == b.total && a.failed == b.failed && a.captions == b.captions
            && a.hallucinatedCaptions == b.hallucinatedCaptions && a.mentions == b.mentions
            && a.hallucinatedMentions == b.hallucinatedMentions && a.answers == b.answers && a.correct == b.correct
    }

    public init(total: Int) { self.total = total }

    public mutating func add(score: ItemScore?, failure: String?) {
        done += 1
        if let failure {
            failed += 1
            let kind = failure.split(separator: ":", maxSplits: 1).first.map(String.init) ?? failure
            failures[kind, default: (0, failure)].count += 1
        }
        switch score {
        case .chair(let c)?:
            captions += 1
            mentions += c.mentions.count
            hallucinatedMentions += c.hallucinatedCount
            if c.hallucinatedCount > 0 { hallucinatedCaptions += 1 }
        case .pope(let p)?:
            answers += 1
            if p.isCorrect { correct += 1 }
        case nil:
            break
        }
    }

    public var chairS: Double? { captions > 0 ? Double(hallucinatedCaptions) / Double(captions) : nil }
    public var chairI: Double? { mentions > 0 ? Double(hallucinatedMentions) / Double(mentions) : nil }
    public var accuracy: Double? { answers > 0 ? Double(correct) / Double(answers) : nil }

    /// "CHAIR_S 12.0 CHAIR_I 3.4" or "accuracy 85.1" so far.
    public var metricsText: String {
        func pct(_ v: Double?) -> String { v.map { String(format: "%.1f", $0 * 100) } ?? "n/a" }
        if answers > 0 { return "accuracy \(pct(accuracy))" }
        if captions > 0 { return "CHAIR_S \(pct(chairS)) CHAIR_I \(pct(chairI))" }
        return ""
    }

    /// True when the run has items and every one of them failed.
    public var allFailed: Bool { done > 0 && failed == done }

    /// "2 failed: 1 missing image (image file not found ...), 1 unreadable image (...)".
    public var failureSummary: String? {
        guard failed > 0 else { return nil }
        let groups = failures.keys.sorted().map { k in "\(failures[k]!.count) \(k) (e.g. \(failures[k]!.example))" }
        return "\(failed) failed: " + groups.joined(separator: "; ")
    }
}

/// Progress on standard error. On a terminal: a live block with one line per unfinished run (runs advance
/// together, image by image), redrawn in place at most five times a second; a finished run's final line
/// and its grouped failures are printed above the block and stay. Off a terminal: quiet, except one line
/// (plus failures) when each run ends. `json` writes one JSON object per item instead of the live block.
public final class RunProgress: @unchecked Sendable {
    public let isTerminal: Bool
    public let json: Bool
    private let write: (String) -> Void
    private var lastDraw = Date.distantPast
    /// The live block: one line per unfinished run, in the order the runs first reported.
    private var live: [(name: String, line: String)] = []
    /// Lines of the live block currently on screen (the cursor sits just below them).
    private var drawnLines = 0
    /// Notes may come from another thread (the store's, reconnecting during a lease renewal).
    private let lock = NSRecursiveLock()

    public init(isTerminal: Bool = isatty(STDERR_FILENO) != 0, json: Bool = false,
                write: @escaping (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }) {
        self.isTerminal = isTerminal; self.json = json; self.write = write
    }

    /// The status line of a run.
    public static func line(name: String, tally: RunTally, sessionItems: Int, sessionSeconds: Double) -> String {
        var parts = ["\(tally.stored)/\(tally.total) items"]
        if tally.workers > 1 { parts.append("\(tally.workers) workers") }
        if sessionItems > 0, sessionSeconds > 0 {
            let perMinute = Double(sessionItems) / sessionSeconds * 60
            parts.append(String(format: "%.1f items/min", perMinute))
            let remaining = tally.total - tally.stored
            if remaining > 0 { parts.append("ETA " + duration(Double(remaining) / perMinute * 60)) }
        }
        if !tally.metricsText.isEmpty { parts.append(tally.metricsText) }
        if tally.failed > 0 { parts.append("\(tally.failed) failed") }
        return "[\(name)] " + parts.joined(separator: ", ")
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
        if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return "\(s)s"
    }

    /// After each item.
    public func item(run: Int64, name: String, key: String, tally: RunTally, status: String, reason: String?,
                     seconds: Double, sessionItems: Int, sessionSeconds: Double) {
        lock.lock()
        defer { lock.unlock() }
        if json {
            var object: [String: Any] = ["run": run, "run_name": name, "item": key, "done": tally.stored, "workers": tally.workers,
                                         "total": tally.total, "status": status, "seconds": seconds,
                                         "failed": tally.failed]
            if let reason { object["failure_reason"] = reason }
            if let v = tally.chairS { object["chair_s"] = v }
            if let v = tally.chairI { object["chair_i"] = v }
            if let v = tally.accuracy { object["accuracy"] = v }
            if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
                write(String(decoding: data, as: UTF8.self) + "\n")
            }
            return
        }
        guard isTerminal else { return }
        let line = Self.line(name: name, tally: tally, sessionItems: sessionItems, sessionSeconds: sessionSeconds)
        if let index = live.firstIndex(where: { $0.name == name }) { live[index].line = line } else { live.append((name, line)) }
        guard Date().timeIntervalSince(lastDraw) > 0.2 else { return }
        lastDraw = Date()
        write(eraseBlock() + liveBlock())
    }

    /// Moves the cursor to the first line of the live block (the block is redrawn or replaced from there).
    private func eraseBlock() -> String {
        drawnLines > 0 ? "\u{1B}[\(drawnLines)A\r" : "\r"
    }

    /// The live lines, each cleared first and cut to the terminal width (a wrapped line would break the
    /// cursor arithmetic), then "clear to the end of the screen" for lines of runs that finished.
    private func liveBlock() -> String {
        let width = Self.terminalWidth()
        var text = ""
        for entry in live {
            var line = entry.line
            if let width, line.count >= width { line = String(line.prefix(max(10, width - 2))) + "…" }
            text += "\u{1B}[2K" + line + "\n"
        }
        drawnLines = live.count
        return text + "\u{1B}[J"
    }

    /// Text that stays on screen: printed above the live block, which is redrawn below it.
    private func permanent(_ text: String) {
        guard isTerminal, drawnLines > 0 || !live.isEmpty else { write(text); return }
        write(eraseBlock() + "\u{1B}[J" + text + liveBlock())
    }

    /// Columns of the terminal on standard error (a live line must not wrap, or `\r` cannot redraw it).
    static func terminalWidth() -> Int? {
        var size = winsize()
        guard ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return nil }
        return Int(size.ws_col)
    }

    /// When a run has all its items: the final line (always) and the grouped failures.
    /// `detail` (e.g. the prefix cache's "29 of 30 prefills reused") follows the line.
    public func finished(name: String, tally: RunTally, sessionItems: Int, sessionSeconds: Double, detail: String? = nil) {
        lock.lock()
        defer { lock.unlock() }
        live.removeAll { $0.name == name }
        var text = Self.line(name: name, tally: tally, sessionItems: sessionItems, sessionSeconds: sessionSeconds) + " — done"
            + (detail.map { ", \($0)" } ?? "") + "\n"
        if let failures = tally.failureSummary { text += "  \(failures)\n" }
        permanent(text)
    }

    public func note(_ message: String) {
        lock.lock()
        defer { lock.unlock() }
        permanent(message + "\n")
    }
}
