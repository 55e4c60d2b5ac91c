import Foundation
import MirageDecoding
import MirageEngine
import Testing

// Decoders declare their inputs; parameters are declared once and every effective value is what the run
// store records.

@Test func everyRegisteredDecoderRecordsEveryEffectiveParameter() throws {
    for d in DecoderRegistry.standard.descriptors {
        #expect(Set(d.parameters.map(\.name)).count == d.parameters.count, "\(d.name): a parameter is listed twice")
        let resolved = try d.resolve()
        let decoder = try d.make(resolved)
        #expect(decoder.name == d.name)
        #expect(decoder.parameters == resolved, "\(d.name): the recorded parameters differ from the effective ones")
        for preset in d.presets {
            let p = try d.resolve(preset: preset.name)
            #expect(try d.make(p).parameters == p, "\(d.name) preset \(preset.name)")
        }
    }
}

/// Runs are keyed by `parameters.canonicalJSON`: moving VCD, the cut-off control and DoLa to declared
/// parameters must leave their keys as they were (these strings are what the earlier code produced).
@Test func contrastiveDecodersKeepTheirRunKeys() throws {
    let registry = DecoderRegistry.standard
    #expect(try registry.makeDecoder("vcd").parameters.canonicalJSON
        == #"{"alpha":1.0,"beta":0.1,"noise_step":500,"repetition_penalty":1.0,"sample":true,"temperature":1.0,"top_k":0,"top_p":1.0}"#)
    #expect(try registry.makeDecoder("apc").parameters.canonicalJSON
        == #"{"beta":0.1,"repetition_penalty":1.0,"sample":true,"temperature":1.0,"top_k":0,"top_p":1.0}"#)
    #expect(try registry.makeDecoder("dola").parameters.canonicalJSON
        == #"{"candidate_layers":[],"final_norm":false,"layers":"even","mature_layer":-1,"relative_top":0.1,"repetition_penalty":1.2}"#)
    #expect(try registry.makeDecoder("vcd", overrides: [("alpha", "2")]).parameters.canonicalJSON.hasPrefix(#"{"alpha":2.0,"#))
}

@Test func typedParametersReadBackAndValidate() throws {
    let p = try VCDDecoder.descriptor.resolve(values: ["noise_step": .int(999), "alpha": .double(0.5)])
    #expect(p[VCDDecoder.noiseStep] == 999 && p[VCDDecoder.alpha] == 0.5 && p[VCDDecoder.beta] == 0.1)
    #expect(throws: DecodingError.invalidParameter(decoder: "vcd", parameter: "noise_step", value: "1000",
                                                   expected: "an integer in 0...999")) {
        try VCDDecoder.descriptor.resolve(values: ["noise_step": .int(1000)])
    }
    #expect(throws: DecodingError.self) { try VCDDecoder.descriptor.resolve(values: ["noise_step": .double(3)]) }
    #expect(throws: DecodingError.self) { try VCDDecoder.descriptor.resolve(values: ["steps": .int(3)]) }
    // A missing value reads as the declared default.
    #expect(DecoderParameters([:])[DoLaDecoder.repetitionPenalty] == 1.2)
}

@Test func decodersDeclareBranchesHooksAndSequences() throws {
    let registry = DecoderRegistry.standard
    let vcd = try registry.makeDecoder("vcd", overrides: [("noise_step", "999")]).inputs
    #expect(vcd.branches == [BranchSpec(role: "contrast", image: .transformed(.vcdNoise(step: 999)))])
    #expect(vcd.sequencesPerStep == 2 && vcd.promptPrefills == 2)
    #expect(try registry.makeDecoder("greedy").inputs == DecoderInputs())
    #expect(try registry.makeDecoder("apc").inputs.branches.isEmpty)
    let beam = try registry.makeDecoder("beam", overrides: [("num_beams", "3")]).inputs
    #expect(beam.sequencesPerStep == 3 && beam.promptPrefills == 1 && beam.stepFactor == 1)
    let opera = try registry.makeDecoder("opera").inputs
    #expect(opera.sequencesPerStep == 5 && opera.stepFactor == 1.9)
    let dola = try registry.makeDecoder("dola", overrides: [("candidate_layers", "0,2")]).inputs
    #expect(dola.hooks == [.hiddenStates(layers: .layers([0, 2]))] && dola.sequencesPerStep == 1)
}

@Test func vcdNoiseTransformIsTheScheduleKeyedByItsStream() throws {
    let pixels = (0..<48).map { Float($0) / 48 - 0.5 }
    let key = RandomKey(seed: 7, item: "image-3")
    let t = ImageTransform.vcdNoise(step: 500)
    #expect(t.id == "vcd-noise:500")
    #expect(try t.apply(pixels, 3, 4, 4, key) == VCDNoiseSchedule.vcd.noised(pixels, step: 500, key: key))
    #expect(try t.apply(pixels, 3, 4, 4, key) != pixels)
}

@Test func branchesDerivedFromALaidOutPrompt() {
    let items: [PromptItem] = [.token(1), .token(2), .token(3), .token(4), .token(5), .token(6)]
    var prompt = PromptLayout(items: items, imageSpan: 2..<4, inputIDs: [1, 2, -200, 5, 6], prefixLength: 4)
    prompt.operaImageSpan = 2..<4
    let textOnly = BranchSpec(role: "unconditional", image: .none).derived(from: prompt)
    #expect(textOnly?.items == [.token(1), .token(2), .token(5), .token(6)])
    #expect(textOnly?.imageSpan == nil && textOnly?.inputIDs == nil && textOnly?.operaImageSpan == nil)
    #expect(textOnly?.prefixLength == 2)
    let again = BranchSpec(role: "same").derived(from: prompt)
    #expect(again?.items == items && again?.imageSpan == 2..<4 && again?.prefixLength == nil)
    // A changed instruction or image needs the prompt builder.
    #expect(BranchSpec(role: "c", instruction: .prefixed("x ")).derived(from: prompt) == nil)
    #expect(BranchSpec(role: "c", image: .transformed(.vcdNoise(step: 1))).derived(from: prompt) == nil)
    // No image: the text-only branch is the prompt.
    #expect(PromptLayout(tokens: [1, 2]).removingImage() == PromptLayout(tokens: [1, 2]))
    #expect(BranchInstruction.prefixed("You are a confused object detector. ").apply(to: "Is there a dog?")
        == "You are a confused object detector. Is there a dog?")
    #expect(BranchInstruction.suffixed("!").apply(to: "a") == "a!" && BranchInstruction.replaced("b").apply(to: "a") == "b")
}
