import Foundation
import MirageDecoding
import MirageEngine
import MirageTokenizers
import Testing

@Suite struct RegistryTests {
    @Test func presetsAndOverridesResolveOverDefaults() throws {
        let beam = try DecoderRegistry.standard.descriptor(named: "beam")
        let defaults = try beam.resolve()
        #expect(defaults.int("num_beams") == 5)
        #expect(defaults.string("semantics") == "transformers-4")
        let halc = try beam.resolve(preset: "halc-baseline", overrides: [("length_penalty", "0.5")])
        #expect(halc.int("num_beams") == 3)
        #expect(halc.double("length_penalty") == 0.5)
        let decoder = try beam.make(halc)
        #expect(decoder.parameters == halc)
        #expect(decoder.name == "beam")
        #expect(halc.canonicalJSON == #"{"early_stopping":"false","length_penalty":0.5,"num_beams":3,"repetition_penalty":1.0,"semantics":"transformers-4"}"#)
    }

    @Test func everyDecoderRoundTripsItsParameters() throws {
        for d in DecoderRegistry.standard.descriptors {
            for preset in [nil] + d.presets.map(\.name) {
                let p = try d.resolve(preset: preset)
                #expect(Set(p.values.keys) == Set(d.parameters.map(\.name)), "\(d.name) \(preset ?? "")")
                #expect(try d.make(p).parameters == p, "\(d.name) \(preset ?? "")")
            }
        }
    }

    @Test func errorsSayWhatToDo() throws {
        let r = DecoderRegistry.standard
        #expect(throws: DecodingError.unknownDecoder("nope", available: r.names)) { try r.makeDecoder("nope") }
        let sample = try r.descriptor(named: "sample")
        #expect(throws: DecodingError.invalidParameter(decoder: "sample", parameter: "top_p", value: "1.5",
                                                       expected: "a number in 0.0...1.0")) {
            try sample.resolve(overrides: [("top_p", "1.5")])
        }
        do {
            _ = try sample.resolve(overrides: [("topp", "0.5")])
            Issue.record("expected an error")
        } catch let e as DecodingError {
            #expect(e.description.contains("top_p"))
        }
        #expect(throws: DecodingError.self) { try sample.resolve(preset: "opera-paper") }
    }

    /// SID has no beam search in its published code: num_beams > 1 is refused at construction with the reason
    /// and the fix; num_beams 1 builds the decoder.
    @Test func sidRefusesBeamSearchAndSaysWhy() throws {
        try expectRefusesBeamSearch("sid", beams: 5, reason: "evolve_vcd_sampling")
    }

    /// ICD runs in the same SID function (vcd_sample.py `sample`), so it has the same limit.
    @Test func icdRefusesBeamSearchAndSaysWhy() throws {
        try expectRefusesBeamSearch("icd", beams: 3, reason: "vcd_sample.py's sample")
    }

    func expectRefusesBeamSearch(_ name: String, beams: Int, reason: String) throws {
        let descriptor = try DecoderRegistry.standard.descriptor(named: name)
        #expect(try descriptor.make(descriptor.resolve()).parameters.int("num_beams") == 1)
        do {
            _ = try descriptor.make(descriptor.resolve(overrides: [("num_beams", "\(beams)")]))
            Issue.record("\(name) accepted num_beams \(beams)")
        } catch let e as PostOperaError {
            #expect(e.description.contains("\(name) cannot run with num_beams \(beams)"), "\(e)")
            #expect(e.description.contains(reason), "\(e)")
            #expect(e.description.contains("set --param num_beams=1"), "\(e)")
        }
    }

    /// PAI with beam search and sampling at once has no published counterpart and is refused with the fix.
    @Test func paiRefusesBeamSearchWithSampling() throws {
        let pai = try DecoderRegistry.standard.descriptor(named: "pai")
        #expect(try pai.make(pai.resolve(preset: "pai-beam")).inputs.beams == 5)
        #expect(throws: PostOperaError.beamWithSampling(decoder: "pai", beams: 3)) {
            try pai.make(pai.resolve(overrides: [("num_beams", "3"), ("sample", "true")]))
        }
    }
}
