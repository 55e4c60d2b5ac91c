import Foundation
import Yams

/// Everything the runner refuses, each saying what to change.
public enum RunnerError: Error, CustomStringConvertible, Equatable {
    /// A protocol or experiment file field is missing, of the wrong type or out of range.
    case invalidField(file: String, key: String, problem: String)
    /// A file could not be read or parsed as YAML.
    case unreadableFile(file: String, reason: String)
    /// `--protocol NAME` named no shipped or local protocol.
    case unknownProtocol(name: String, searched: [String], available: [String])
    /// The experiment cannot run as configured (no model, no protocol, a missing data file, ...).
    case configuration(String)
    /// The model would not fit in memory.
    case insufficientMemory(needed: Int64, available: Int64, advice: String)
    /// `--shard i/n` is malformed.
    case invalidShard(String)

    public var description: String {
        switch self {
        case let .invalidField(file, key, problem):
            return "\(file): \(key): \(problem)"
        case let .unreadableFile(file, reason):
            return "cannot read \(file): \(reason)"
        case let .unknownProtocol(name, searched, available):
            return "no protocol named '\(name)' (looked in \(searched.joined(separator: ", "))); "
                + (available.isEmpty ? "give a protocol file path instead"
                                     : "known protocols: \(available.joined(separator: ", ")); or give a protocol file path")
        case let .configuration(message):
            return message
        case let .insufficientMemory(needed, available, advice):
            return String(format: "this run needs ~%.1f GiB of memory, %.1f GiB available; %@",
                          Double(needed) / 1_073_741_824, Double(available) / 1_073_741_824, advice)
        case let .invalidShard(text):
            return "--shard takes i/n with 0 ≤ i < n (e.g. 0/2), got '\(text)'"
        }
    }
}

/// A YAML mapping read with the file name and key path at hand, so every error names both.
/// Unknown keys are refused (a typo must not silently fall back to a default).
struct YAMLFields {
    let file: String
    let path: String
    let values: [String: Any]
    private(set) var used: Set<String> = []

    init(file: String, path: String = "", values: [String: Any]) {
        self.file = file; self.path = path; self.values = values
    }

    /// Parses YAML text into the top-level mapping.
    static func load(text: String, file: String) throws -> YAMLFields {
        let object: Any?
        do {
            object = try YAMLLoader.load(text)
        } catch {
            throw RunnerError.unreadableFile(file: file, reason: "not valid YAML (\(error))")
        }
        guard let mapping = object as? [String: Any] else {
            throw RunnerError.unreadableFile(file: file, reason: "the top level must be a mapping of key: value lines")
        }
        return YAMLFields(file: file, values: mapping)
    }

    func key(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

    func fail(_ name: String, _ problem: String) -> RunnerError {
        .invalidField(file: file, key: key(name), problem: problem)
    }

    func has(_ name: String) -> Bool { values[name] != nil && !(values[name] is NSNull) }

    /// The one of several spellings of a key that is given (nil when none is), refusing more than one. Every
    /// spelling counts as asked for, so the accepted-keys list of `rejectUnknownKeys` names them all.
    mutating func oneOf(_ names: String...) throws -> String? {
        used.formUnion(names)
        let given = names.filter(has)
        if given.count > 1 { throw fail(given[0], "give \(given.joined(separator: " or ")), not both") }
        return given.first
    }

    mutating func raw(_ name: String) -> Any? {
        used.insert(name)
        guard let v = values[name], !(v is NSNull) else { return nil }
        return v
    }

    mutating func string(_ name: String) throws -> String? {
        guard let v = raw(name) else { return nil }
        if let s = v as? String { return s }
        if let n = v as? Int { return String(n) }
        if let d = v as? Double { return String(d) }
        if let b = v as? Bool { return String(b) }
        throw fail(name, "expected text, got \(Self.describe(v))")
    }

    mutating func requiredString(_ name: String, _ hint: String) throws -> String {
        guard let s = try string(name), !s.isEmpty else { throw fail(name, "missing; \(hint)") }
        return s
    }

    mutating func int(_ name: String, range: ClosedRange<Int>? = nil) throws -> Int? {
        guard let v = raw(name) else { return nil }
        let n: Int
        if let i = v as? Int { n = i } else if let s = v as? String, let i = Int(s) { n = i } else {
            throw fail(name, "expected a whole number, got \(Self.describe(v))")
        }
        if let range, !range.contains(n) {
            throw fail(name, "\(n) is out of range; use a number in \(range.lowerBound)...\(range.upperBound == Int.max ? "" : String(range.upperBound))")
        }
        return n
    }

    mutating func bool(_ name: String) throws -> Bool? {
        guard let v = raw(name) else { return nil }
        if let b = v as? Bool { return b }
        if let s = v as? String, let b = ["true": true, "false": false, "yes": true, "no": false][s.lowercased()] { return b }
        throw fail(name, "expected true or false, got \(Self.describe(v))")
    }

    /// A list; a single scalar is read as a list of one.
    mutating func list(_ name: String) throws -> [Any]? {
        guard let v = raw(name) else { return nil }
        if let a = v as? [Any] { return a }
        if v is [String: Any] { throw fail(name, "expected a list (or one value), got a mapping") }
        return [v]
    }

    mutating func strings(_ name: String) throws -> [String]? {
        guard let items = try list(name) else { return nil }
        return try items.enumerated().map { i, v in
            if let s = v as? String { return s }
            if let n = v as? Int { return String(n) }
            throw RunnerError.invalidField(file: file, key: "\(key(name))[\(i)]", problem: "expected text, got \(Self.describe(v))")
        }
    }

    mutating func ints(_ name: String) throws -> [Int]? {
        guard let items = try list(name) else { return nil }
        return try items.enumerated().map { i, v in
            if let n = v as? Int { return n }
            if let s = v as? String, let n = Int(s) { return n }
            throw RunnerError.invalidField(file: file, key: "\(key(name))[\(i)]", problem: "expected a whole number, got \(Self.describe(v))")
        }
    }

    mutating func mapping(_ name: String) throws -> YAMLFields? {
        guard let v = raw(name) else { return nil }
        guard let m = v as? [String: Any] else { throw fail(name, "expected a mapping of key: value lines, got \(Self.describe(v))") }
        return YAMLFields(file: file, path: key(name), values: m)
    }

    /// Refuses keys nobody read, naming the accepted ones: every key the parser asked for (`raw` and `oneOf`
    /// record a key whether or not it is given), so the list cannot drift from what the parser reads.
    func rejectUnknownKeys() throws {
        let unknown = Set(values.keys).subtracting(used).sorted()
        guard let first = unknown.first else { return }
        throw RunnerError.invalidField(file: file, key: key(first),
                                       problem: "unknown key; accepted keys here: \(used.sorted().joined(separator: ", "))")
    }

    static func describe(_ v: Any) -> String {
        switch v {
        case is [Any]: return "a list"
        case is [String: Any]: return "a mapping"
        case let s as String: return "'\(s)'"
        default: return "\(v)"
        }
    }
}

/// Yams' untyped loader, with mappings normalised to `[String: Any]` (keys as text).
enum YAMLLoader {
    static func load(_ text: String) throws -> Any? {
        guard let node = try Yams.compose(yaml: text) else { return nil }
        var budget = maxValues
        try check(node, budget: &budget)
        return normalise(node.any)
    }

    /// Values a file may expand to. Aliases repeat a node wherever they appear, so a few hundred bytes of
    /// nested aliases ("billion laughs") expand to billions of values; real protocol and experiment files
    /// hold well under a thousand.
    static let maxValues = 100_000

    /// Checks the composed tree before Yams builds Swift values from it: every key must be text (Yams
    /// 6.2.2 traps on a list or mapping as a key, Constructor.swift `private_construct_mapping`), and the
    /// tree with aliases expanded must stay within `maxValues`.
    private static func check(_ node: Node, budget: inout Int) throws {
        budget -= 1
        guard budget >= 0 else {
            throw YAMLShapeError(description: "the file expands to more than \(maxValues) values (nested aliases `*name`); "
                                 + "write the values out instead of repeating aliases")
        }
        switch node {
        case .mapping(let mapping):
            for (key, value) in mapping {
                guard String.construct(from: key) != nil else {
                    let line = key.mark.map { " on line \($0.line)" } ?? ""
                    throw YAMLShapeError(description: "a key\(line) is a list or mapping; keys must be plain names like `task:`")
                }
                try check(value, budget: &budget)
            }
        case .sequence(let sequence):
            for element in sequence { try check(element, budget: &budget) }
        case .scalar(let scalar):
            // YAML 1.1 base-60 integers (`1:30`): Yams 6.2.2 multiplies without overflow checks and traps
            // on long ones (Constructor.swift `sexagesimal`), so those are refused first.
            if scalar.string.contains(":"), node.tag.rawValue == Tag.Name.int.rawValue,
               sexagesimalOverflows(scalar.string) {
                let line = node.mark.map { " on line \($0.line)" } ?? ""
                throw YAMLShapeError(description: "the number `\(scalar.string)`\(line) is too large")
            }
        default:
            break
        }
    }

    /// Whether Yams's base-60 conversion of `text` (digits, then base, times 60 per component) overflows.
    static func sexagesimalOverflows(_ text: String) -> Bool {
        let unsigned = text.hasPrefix("-") || text.hasPrefix("+") ? String(text.dropFirst()) : text
        let digits = unsigned.components(separatedBy: ":").map { Int($0) }
        guard digits.allSatisfy({ $0 != nil }) else { return false }   // Yams gives up without trapping
        var base = 1, value = 0
        for digit in digits.reversed().map({ $0! }) {
            let (term, o1) = digit.multipliedReportingOverflow(by: base)
            let (sum, o2) = value.addingReportingOverflow(term)
            let (next, o3) = base.multipliedReportingOverflow(by: 60)
            if o1 || o2 || o3 { return true }
            (value, base) = (sum, next)
        }
        return false
    }

    struct YAMLShapeError: Error, CustomStringConvertible {
        let description: String
    }

    private static func normalise(_ value: Any?) -> Any? {
        switch value {
        case let m as [AnyHashable: Any]:
            var out: [String: Any] = [:]
            for (k, v) in m { out["\(k.base)"] = normalise(v) ?? NSNull() }
            return out
        case let a as [Any]:
            return a.map { normalise($0) ?? NSNull() }
        default:
            return value
        }
    }
}
