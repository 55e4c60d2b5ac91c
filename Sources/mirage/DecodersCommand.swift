import ArgumentParser
import Foundation
import MirageDecoding

/// `mirage decoders`: what `--decoder`, `--preset` and `--param` accept.
struct Decoders: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decoders",
        abstract: "List the decoding methods with their parameters, defaults, presets and sources.",
        discussion: """
        Every default names the paper, code or library it is taken from. Use a decoder with \
        `mirage generate --decoder NAME [--preset P] [--param k=v ...]`; the run store records the full \
        parameter dictionary (defaults included).

        Examples:
          mirage decoders
          mirage decoders beam
          mirage decoders --json
        """)

    @Argument(help: "Show only this decoder.")
    var name: String?

    @Flag(name: .long, help: "Print JSON: decoders with parameters (name, default, accepts, help, source) and presets.")
    var json = false

    /// What the decoder declares at its defaults (`DecoderInputs`): branches, engine hooks, sequences per step.
    static func inputLines(_ d: DecoderDescriptor) -> [String] {
        guard let inputs = try? d.makeDecoder().inputs else { return [] }
        var lines = inputs.branches.map { "branch " + $0.summary }
        lines += inputs.hooks.map { "hook: \($0)" }
        lines.append("sequences per step: \(inputs.sequencesPerStep), prompt prefills per item: \(inputs.promptPrefills)"
                     + (inputs.stepFactor == 1 ? "" : ", measured step factor \(inputs.stepFactor)"))
        return lines
    }

    func run() throws {
        let registry = DecoderRegistry.standard
        let list: [DecoderDescriptor]
        do {
            list = try name.map { [try registry.descriptor(named: $0)] } ?? registry.descriptors
        } catch let e as DecodingError {
            throw ValidationError(e.description)
        }
        if json {
            let objects: [[String: Any]] = list.map { d in
                ["name": d.name, "summary": d.summary,
                 "parameters": d.parameters.map { ["name": $0.name, "default": $0.defaultValue.description,
                                                   "accepts": $0.kind.summary, "help": $0.help, "source": $0.source] },
                 "inputs": Self.inputLines(d),
                 "presets": d.presets.map { p in
                     ["name": p.name, "source": p.source,
                      "values": Dictionary(uniqueKeysWithValues: p.values.map { ($0.key, $0.value.description) })] as [String: Any]
                 }]
            }
            let data = try JSONSerialization.data(withJSONObject: objects, options: [.sortedKeys, .prettyPrinted])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        for (i, d) in list.enumerated() {
            if i > 0 { print("") }
            print("\(d.name): \(d.summary)")
            print("  parameters:")
            let width = d.parameters.map(\.name.count).max() ?? 0
            for p in d.parameters {
                let pad = String(repeating: " ", count: width - p.name.count)
                print("    \(p.name)\(pad)  default \(p.defaultValue)  (\(p.kind.summary))")
                print("    \(String(repeating: " ", count: width))  \(p.help)")
                print("    \(String(repeating: " ", count: width))  source: \(p.source)")
            }
            print("  inputs (at the defaults):")
            for line in Self.inputLines(d) { print("    \(line)") }
            if !d.presets.isEmpty {
                print("  presets:")
                for p in d.presets {
                    let values = p.values.keys.sorted().map { "\($0)=\(p.values[$0]!)" }.joined(separator: " ")
                    print("    \(p.name): \(values)")
                    print("      source: \(p.source)")
                }
            }
        }
    }
}
