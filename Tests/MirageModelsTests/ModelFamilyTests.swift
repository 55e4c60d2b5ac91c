import Foundation
import MirageEngine
import MirageModels
import Testing

@Suite struct ModelFamilyTests {
    static let llavaFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("MirageEngineTests/Fixtures/llava")

    @Test func llavaFoldersLoadThroughTheRegistry() throws {
        for name in ["llava-llama-clip", "llava-qwen2-siglip"] {
            let url = Self.llavaFixtures.appendingPathComponent(name)
            let (family, _) = try ModelFamilies.family(of: url)
            #expect(family.name == "llava")
            let model = try ModelFamilies.load(url, options: LoadOptions(threads: 1))
            let shape = try ModelFamilies.shape(of: url)
            #expect(model.imageTokenCount == shape.imageTokenCount)
            #expect(model.architectureName == (name.contains("qwen2") ? "llava-qwen2" : "llava-llama"))
            #expect(model.defaultTemplate.name == (name.contains("qwen2") ? "chatml" : "llava15"))
            #expect(try model.template(named: "llava15").render("Hi?") == "USER: <image>\nHi? ASSISTANT:")
        }
    }

    @Test func unknownFoldersNameWhatLoads() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("mirage-family-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data(#"{"model_type": "bert"}"#.utf8).write(to: folder.appendingPathComponent("config.json"))
        #expect(!ModelFamilies.recognizes(folder))
        do {
            _ = try ModelFamilies.family(of: folder)
            Issue.record("a BERT folder was taken for a vision-language model")
        } catch {
            let message = "\(error)"
            #expect(message.contains("model_type \"bert\""))
            #expect(message.contains("llava ("))
        }
    }

    @Test func templatesRenderThePromptOnce() {
        let t = PromptTemplate(name: "t", format: "A {prompt} B {prompt}", summary: "")
        #expect(t.render("x{prompt}") == "A x{prompt} B {prompt}")
    }
}
