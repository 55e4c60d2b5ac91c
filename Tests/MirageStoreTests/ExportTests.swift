import Foundation
@testable import MirageAnalysis
import Testing
import MirageData
import MirageMetrics
@testable import MirageStore

@Test(.dropsScratchDatabases, arguments: Backend.available) func exportQuotesCSVAndKeepsScoresInJSONLines(backend: Backend) throws {
    let store = try backend.fresh()
    let run = try store.createRun(sampleRun()).run
    try store.recordItem(run: run.id, NewItem(key: "0", ordinal: 0, imageID: 1, outputText: "A dog, \"happy\"\nand a cat."),
                         score: chairScore(mentions: [("dog", false), ("cat", true)], gt: ["dog"], words: 9))
    try store.recordItem(run: run.id, NewItem(key: "1", ordinal: 1, imageID: 2, outputText: "", failureReason: "out of memory"))
    let items = try store.items(run: run.id)

    let csv = ItemExport.csv(items).split(separator: "\n", omittingEmptySubsequences: false)
    #expect(csv[0] == "item,ordinal,image_id,question_id,status,failure_reason,prompt,output,output_tokens,prefill_seconds,"
            + "decode_seconds,forward_passes,seed,mentioned,hallucinated,positions,ground_truth,words,label,parsed_answer")
    #expect(csv[1] == "0,0,1,,ok,,,\"A dog, \"\"happy\"\"")
    #expect(csv[2] == "and a cat.\",,,,,,dog|cat,cat,0|1,dog,9,,")
    #expect(csv[3] == "1,1,2,,failed,out of memory,,,,,,,,,,,,,,")

    let lines = ItemExport.jsonl(items).split(separator: "\n")
    #expect(lines.count == 2)
    let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
    #expect(first["hallucinated"] as? [String] == ["cat"])
    #expect(first["positions"] as? [Int] == [0, 1])
    #expect(first["output"] as? String == "A dog, \"happy\"\nand a cat.")
}

@Test func decoderParametersAreCanonicalAndDisplayed() {
    let a = DecoderSpec(name: "opera", parameters: ["threshold": "15", "num_beams": "5"])
    let b = DecoderSpec(name: "opera", parameters: ["num_beams": "5", "threshold": "15"])
    #expect(a == b)
    #expect(a.parametersJSON == #"{"num_beams":"5","threshold":"15"}"#)
    #expect(a.display == "opera(num_beams=5, threshold=15)")
    #expect(DecoderSpec(name: "greedy").display == "greedy")
}
