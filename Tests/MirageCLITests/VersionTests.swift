import Foundation
import Testing
import MirageTestSupport

@Test func mirageBinaryPrintsItsVersion() throws {
    let binary = try #require(BuiltProducts.mirage, "the mirage executable was not built next to the tests")
    let result = try runProcess(binary, ["--version"])
    #expect(result.status == 0)
    #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0.1.0")
}
