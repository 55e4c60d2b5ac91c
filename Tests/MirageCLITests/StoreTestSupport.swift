import Foundation
import Testing
import MirageTestSupport

/// A scratch folder for one CLI test, removed by `cleanup()`.
struct Scratch {
    let url: URL
    init() throws {
        url = TestTemporary.root.appendingPathComponent("mirage-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func write(_ name: String, _ text: String) throws -> String {
        try Data(text.utf8).write(to: url.appendingPathComponent(name))
        return path(name)
    }
    func cleanup() { try? FileManager.default.removeItem(at: url) }
}

/// Runs the built `mirage` binary and returns its result.
func mirage(_ arguments: [String], stdin: String? = nil, in directory: URL? = nil) throws -> ProcessResult {
    let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
    return try runProcess(binary, arguments, stdin: stdin.map { Data($0.utf8) }, currentDirectory: directory)
}

/// Runs `mirage` and requires success.
@discardableResult
func mirageOK(_ arguments: [String], stdin: String? = nil, in directory: URL? = nil,
              sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
    let result = try mirage(arguments, stdin: stdin, in: directory)
    #expect(result.status == 0, "mirage \(arguments.joined(separator: " ")) failed: \(result.stderr)",
            sourceLocation: sourceLocation)
    return result.stdout
}

/// Synthetic POPE data: `count` questions over images 1..., alternating yes/no labels, and answers whose
/// correctness follows a fixed pseudo-random pattern (so two answer files disagree on some questions).
enum SyntheticPope {
    static func questions(_ count: Int, object: String = "dog") -> String {
        (1...count).map { i in
            "{\"question_id\": \(i), \"image\": \"COCO_val2014_\(String(format: "%012d", (i + 1) / 2)).jpg\", "
                + "\"text\": \"Is there a \(object) in the image?\", \"label\": \"\(i % 2 == 1 ? "yes" : "no")\"}"
        }.joined(separator: "\n") + "\n"
    }

    static func answers(_ count: Int, salt: Int, withIDs: Bool = true) -> String {
        (1...count).map { i in
            let right = (i &* 2_654_435_761 &+ salt) % 5 != 0
            let sayYes = (i % 2 == 1) == right
            let text = sayYes ? "Yes, there is a dog in the image." : "No, there is not."
            return withIDs ? "{\"question_id\": \(i), \"answer\": \"\(text)\"}" : "{\"answer\": \"\(text)\"}"
        }.joined(separator: "\n") + "\n"
    }
}
