import Foundation

/// A parameter value as the run store records it.
public enum ParameterValue: Sendable, Equatable, CustomStringConvertible {
    case int(Int)
    case double(Double)
    case bool(Bool)
    case string(String)
    case ints([Int])

    public var description: String {
        switch self {
        case let .int(v): return String(v)
        case let .double(v): return v.description
        case let .bool(v): return v ? "true" : "false"
        case let .string(v): return v
        case let .ints(v): return v.map(String.init).joined(separator: ",")
        }
    }

    /// JSON text of the value.
    public var json: String {
        switch self {
        case let .int(v): return String(v)
        case let .double(v): return v.isFinite ? v.description : "null"
        case let .bool(v): return v ? "true" : "false"
        case let .string(v): return DecoderParameters.jsonString(v)
        case let .ints(v): return "[" + v.map(String.init).joined(separator: ",") + "]"
        }
    }
}

/// The kind of a parameter: how a `--param k=v` text is read.
public enum ParameterKind: Sendable, Equatable {
    case int(ClosedRange<Int>)
    case double(ClosedRange<Double>)
    case bool
    case choice([String])
    /// Comma-separated integers, e.g. layers "0,2,4".
    case ints

    /// What `--param` accepts, for listings.
    public var summary: String { expected }

    var expected: String {
        switch self {
        case let .int(r): return "an integer in \(r.lowerBound)...\(r.upperBound)"
        case let .double(r): return "a number in \(r.lowerBound)...\(r.upperBound)"
        case .bool: return "true or false"
        case let .choice(c): return "one of \(c.joined(separator: ", "))"
        case .ints: return "comma-separated integers, e.g. 0,2,4"
        }
    }

    func parse(_ text: String) -> ParameterValue? {
        switch self {
        case let .int(r):
            guard let v = Int(text), r.contains(v) else { return nil }
            return .int(v)
        case let .double(r):
            guard let v = Double(text), r.contains(v) else { return nil }
            return .double(v)
        case .bool:
            switch text.lowercased() {
            case "true", "1", "yes": return .bool(true)
            case "false", "0", "no": return .bool(false)
            default: return nil
            }
        case let .choice(c): return c.contains(text) ? .string(text) : nil
        case .ints:
            let parts = text.split(separator: ",", omittingEmptySubsequences: false)
            let v = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            return v.count == parts.count && !text.isEmpty ? .ints(v) : nil
        }
    }

    func accepts(_ value: ParameterValue) -> Bool {
        switch (self, value) {
        case let (.int(r), .int(v)): return r.contains(v)
        case let (.double(r), .double(v)): return r.contains(v)
        case (.bool, .bool), (.ints, .ints): return true
        case let (.choice(c), .string(v)): return c.contains(v)
        default: return false
        }
    }
}

/// One parameter of a decoder: its default and where that default comes from.
public struct ParameterSpec: Sendable {
    public var name: String
    public var kind: ParameterKind
    public var defaultValue: ParameterValue
    public var help: String
    /// The paper, code or library the default is taken from.
    public var source: String

    public init(_ name: String, _ kind: ParameterKind, default defaultValue: ParameterValue, help: String, source: String) {
        precondition(kind.accepts(defaultValue), "default of \(name) does not fit its kind")
        self.name = name
        self.kind = kind
        self.defaultValue = defaultValue
        self.help = help
        self.source = source
    }
}

/// A Swift type a parameter value reads as: Int, Double, Bool, String (choices) and [Int] (lists).
public protocol ParameterValueConvertible: Sendable {
    init?(parameterValue: ParameterValue)
    var parameterValue: ParameterValue { get }
}

extension Int: ParameterValueConvertible {
    public init?(parameterValue v: ParameterValue) {
        guard case let .int(x) = v else { return nil }
        self = x
    }
    public var parameterValue: ParameterValue { .int(self) }
}

extension Double: ParameterValueConvertible {
    public init?(parameterValue v: ParameterValue) {
        switch v {
        case let .double(x): self = x
        case let .int(x): self = Double(x)
        default: return nil
        }
    }
    public var parameterValue: ParameterValue { .double(self) }
}

extension Bool: ParameterValueConvertible {
    public init?(parameterValue v: ParameterValue) {
        guard case let .bool(x) = v else { return nil }
        self = x
    }
    public var parameterValue: ParameterValue { .bool(self) }
}

extension String: ParameterValueConvertible {
    public init?(parameterValue v: ParameterValue) {
        guard case let .string(x) = v else { return nil }
        self = x
    }
    public var parameterValue: ParameterValue { .string(self) }
}

extension Array: ParameterValueConvertible where Element == Int {
    public init?(parameterValue v: ParameterValue) {
        guard case let .ints(x) = v else { return nil }
        self = x
    }
    public var parameterValue: ParameterValue { .ints(self) }
}

/// A decoder parameter declared once, typed: name, kind (type and accepted range), default, help and the
/// source of the default. The descriptor lists `spec`; the decoder reads `parameters[Self.alpha]`.
public struct Parameter<Value: ParameterValueConvertible>: Sendable {
    public let spec: ParameterSpec

    public init(_ name: String, _ kind: ParameterKind, default value: Value, help: String, source: String) {
        spec = ParameterSpec(name, kind, default: value.parameterValue, help: help, source: source)
    }

    public var name: String { spec.name }
    public var defaultValue: Value { Value(parameterValue: spec.defaultValue)! }
}

/// A named set of parameter values (e.g. `opera-paper`), applied over the defaults.
public struct DecoderPreset: Sendable {
    public var name: String
    public var values: [String: ParameterValue]
    public var source: String

    public init(_ name: String, _ values: [String: ParameterValue], source: String) {
        self.name = name
        self.values = values
        self.source = source
    }
}

/// A decoder's complete parameter dictionary (every parameter, defaults filled in).
public struct DecoderParameters: Sendable, Equatable {
    public private(set) var values: [String: ParameterValue]

    public init(_ values: [String: ParameterValue]) { self.values = values }

    public subscript(name: String) -> ParameterValue? { values[name] }

    public func int(_ name: String) -> Int {
        guard case let .int(v)? = values[name] else { preconditionFailure("parameter \(name) is not an int") }
        return v
    }
    public func double(_ name: String) -> Double {
        switch values[name] {
        case let .double(v)?: return v
        case let .int(v)?: return Double(v)
        default: preconditionFailure("parameter \(name) is not a number")
        }
    }
    public func bool(_ name: String) -> Bool {
        guard case let .bool(v)? = values[name] else { preconditionFailure("parameter \(name) is not a bool") }
        return v
    }
    public func string(_ name: String) -> String {
        guard case let .string(v)? = values[name] else { preconditionFailure("parameter \(name) is not a string") }
        return v
    }
    /// The typed value of a declared parameter (its default when the dictionary lacks it).
    public subscript<V>(_ p: Parameter<V>) -> V {
        values[p.name].flatMap(V.init(parameterValue:)) ?? p.defaultValue
    }

    public func ints(_ name: String) -> [Int] {
        guard case let .ints(v)? = values[name] else { preconditionFailure("parameter \(name) is not a list") }
        return v
    }

    /// The canonical form the run store keys runs by: a JSON object with keys sorted, no spaces.
    public var canonicalJSON: String {
        "{" + values.keys.sorted().map { DecoderParameters.jsonString($0) + ":" + values[$0]!.json }
            .joined(separator: ",") + "}"
    }

    static func jsonString(_ s: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: s, options: [.fragmentsAllowed, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }
}

/// How `mirage decoders` describes a decoder and how `mirage generate` builds one.
public struct DecoderDescriptor: Sendable {
    public var name: String
    public var summary: String
    public var parameters: [ParameterSpec]
    public var presets: [DecoderPreset]
    public var make: @Sendable (DecoderParameters) throws -> any Decoder

    public init(name: String, summary: String, parameters: [ParameterSpec], presets: [DecoderPreset] = [],
                make: @escaping @Sendable (DecoderParameters) throws -> any Decoder) {
        self.name = name
        self.summary = summary
        self.parameters = parameters
        self.presets = presets
        self.make = make
    }

    /// Defaults, then the preset's values, then `overrides` ("name" → text as typed after `--param name=`).
    public func resolve(preset: String? = nil, overrides: [(String, String)] = []) throws -> DecoderParameters {
        var values = Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, $0.defaultValue) })
        if let preset {
            guard let p = presets.first(where: { $0.name == preset }) else {
                throw DecodingError.unknownPreset(decoder: name, preset: preset, available: presets.map(\.name))
            }
            for (k, v) in p.values { values[k] = v }
        }
        for (k, text) in overrides {
            guard let spec = parameters.first(where: { $0.name == k }) else {
                throw DecodingError.unknownParameter(decoder: name, parameter: k, available: parameters.map(\.name))
            }
            guard let v = spec.kind.parse(text) else {
                throw DecodingError.invalidParameter(decoder: name, parameter: k, value: text, expected: spec.kind.expected)
            }
            values[k] = v
        }
        return DecoderParameters(values)
    }

    /// Defaults, then `values` (typed, as a caller in Swift gives them), each checked against its kind.
    public func resolve(values given: [String: ParameterValue]) throws -> DecoderParameters {
        var values = Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, $0.defaultValue) })
        for (k, v) in given {
            guard let spec = parameters.first(where: { $0.name == k }) else {
                throw DecodingError.unknownParameter(decoder: name, parameter: k, available: parameters.map(\.name))
            }
            guard spec.kind.accepts(v) else {
                throw DecodingError.invalidParameter(decoder: name, parameter: k, value: v.description, expected: spec.kind.expected)
            }
            values[k] = v
        }
        return DecoderParameters(values)
    }

    /// Builds the decoder from defaults, a preset and overrides.
    public func makeDecoder(preset: String? = nil, overrides: [(String, String)] = []) throws -> any Decoder {
        try make(resolve(preset: preset, overrides: overrides))
    }
}

/// The decoders `mirage` knows, in listing order. A value: build one with the descriptors you want.
public struct DecoderRegistry: Sendable {
    public let descriptors: [DecoderDescriptor]

    public init(_ descriptors: [DecoderDescriptor]) { self.descriptors = descriptors }

    /// Every decoder of this module. Add a decoder with one line here.
    public static let standard = DecoderRegistry([
        GreedyDecoder.descriptor,
        SamplingDecoder.descriptor,
        BeamSearchDecoder.descriptor,
        OperaDecoder.descriptor,
        VCDDecoder.descriptor,
        PlausibilityCutoffDecoder.descriptor,
        DoLaDecoder.descriptor,
        DeCoDecoder.descriptor,
        ICDDecoder.descriptor,
        M3IDDecoder.descriptor,
        PAIDecoder.descriptor,
        VISTADecoder.descriptor,
        SIDDecoder.descriptor,
    ])

    public var names: [String] { descriptors.map(\.name) }

    public func descriptor(named name: String) throws -> DecoderDescriptor {
        guard let d = descriptors.first(where: { $0.name == name }) else {
            throw DecodingError.unknownDecoder(name, available: names)
        }
        return d
    }

    public func makeDecoder(_ name: String, preset: String? = nil, overrides: [(String, String)] = []) throws -> any Decoder {
        try descriptor(named: name).makeDecoder(preset: preset, overrides: overrides)
    }
}
