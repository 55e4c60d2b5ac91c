import Foundation
import Testing
import MirageMetrics

@Suite struct ChairCaptionFileTests {
    func parse(_ text: String, idKey: String = "image_id", captionKey: String = "caption") throws -> ChairCaptionFile {
        try ChairCaptionFile.parse(Data(text.utf8), source: "caps.jsonl", imageIdKey: idKey, captionKey: captionKey)
    }

    func failure(_ text: String, idKey: String = "image_id") -> String {
        do {
            _ = try parse(text, idKey: idKey)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test func jsonLinesWithBlankLines() throws {
        let file = try parse("{\"image_id\": 1, \"caption\": \"a dog\"}\n\n{\"caption\": \"x\\ny\", \"image_id\": \"2\"}\n")
        #expect(file.captions == [ChairCaption(imageId: 1, caption: "a dog"), ChairCaption(imageId: 2, caption: "x\ny")])
        #expect(file.lines == [1, 3])
    }

    @Test func jsonListWithCustomKeys() throws {
        let text = """
        [
          {"question_id": 5, "text": "a cat, [really]"},
          {"question_id": 6,
           "text": "a \\"dog\\" }"}
        ]
        """
        let file = try parse(text, idKey: "question_id", captionKey: "text")
        #expect(file.captions.map(\.imageId) == [5, 6])
        #expect(file.captions[1].caption == "a \"dog\" }")
        #expect(file.lines == [2, 3])
    }

    @Test func concatenatedPrettyPrintedObjects() throws {
        let text = """
        {
            "image_id": 42,
            "text": "a {curly} dog"
        }
        {
            "image_id": 43,
            "text": "a cat"
        }
        """
        let file = try parse(text, captionKey: "text")
        #expect(file.captions == [ChairCaption(imageId: 42, caption: "a {curly} dog"), ChairCaption(imageId: 43, caption: "a cat")])
        #expect(file.lines == [1, 5])
    }

    @Test func errorsNameFileAndLine() {
        #expect(failure("") .contains("caps.jsonl: the file is empty"))
        #expect(failure("{\"image_id\": 1, \"caption\": \"a\"}\n{\"image_id\": 2, \"caption\": \"b\"\n")
            .hasPrefix("caps.jsonl:2: malformed JSON"))
        #expect(failure("{\"image_id\": 1, \"text\": \"a\"}").hasPrefix("caps.jsonl:1: missing key \"caption\""))
        #expect(failure("{\"id\": 1, \"caption\": \"a\"}").contains("--image-id-key"))
        #expect(failure("{\"image_id\": 1.5, \"caption\": \"a\"}").contains("integer COCO image id"))
        #expect(failure("{\"image_id\": 1, \"caption\": 7}").contains("\"caption\" must be a string"))
        #expect(failure("[1, 2]").hasPrefix("caps.jsonl:1: expected a JSON object"))
        #expect(failure("[{\"image_id\": 1, \"caption\": \"a\"},\n {\"image_id\": 2, \"caption\": \"b\"}")
            .contains("not closed"))
        #expect(failure("[{\"image_id\": 1, \"caption\": \"a\"},\n {\"image_id\": 2 \"caption\": \"b\"}]")
            .hasPrefix("caps.jsonl:2: malformed JSON"))
        #expect(failure("[]").contains("no caption records"))
    }

    @Test func unknownImageIsLocatedAtItsLine() {
        let file = ChairCaptionFile(captions: [], lines: [1, 4], source: "caps.jsonl")
        let located = file.locate(ChairError.unknownImage(imageId: 77, captionIndex: 1))
        #expect("\(located)".hasPrefix("caps.jsonl:4: image id 77 has no CHAIR ground truth"))
    }
}
