import Foundation
import Testing
import MirageData
import MirageTestSupport

@Test(.enabled(if: SharedData.has("chair/opera-logs", "SHA256SUMS"), SharedData.missingMessage))
func operaLogChecksumsAreThoseOfTheSharedCopies() throws {
    let sums = try String(contentsOf: SharedData.url("SHA256SUMS"), encoding: .utf8)
    var shared: [String: String] = [:]
    for line in sums.split(separator: "\n") where line.contains("chair/opera-logs/") {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        shared[String(parts.last!.split(separator: "/").last!)] = String(parts[0])
    }
    #expect(shared.count == 12)
    #expect(shared == OperaLogs.sha256)
    #expect(Set(DataSource.operaLogs.files.map(\.name)) == Set(shared.keys))
    #expect(DataCatalog.standard["opera-logs"] != nil)
}

@Test(.enabled(if: SharedData.has("chair/opera-logs"), SharedData.missingMessage))
func fetchFilesVerifiesEachFileAndInstallsTheSource() async throws {
    let root = TestTemporary.root.appendingPathComponent("mirage-data-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: root) }
    let store = DataStore(root: root)
    var urls: [String: URL] = [:]
    for name in OperaLogs.sha256.keys { urls[name] = SharedData.url("chair/opera-logs/\(name)") }

    // One file swapped for another: refused, nothing installed.
    var wrong = urls
    wrong["shikra-ours.jsonl"] = urls["shikra-greedy.jsonl"]
    await #expect(throws: DataSourceError.self) { try await store.fetchFiles("opera-logs", urls: wrong) }
    #expect((try? store.locate("opera-logs")) == nil)

    try await store.fetchFiles("opera-logs", urls: urls)
    let installed = try store.locate("opera-logs", file: "llava-1.5-ours.jsonl")
    #expect(try SHA256.hex(ofFile: installed) == OperaLogs.sha256["llava-1.5-ours.jsonl"])
    #expect(OperaLogs.url(model: "llava-1.5", decoder: "ours").absoluteString
            == "https://raw.githubusercontent.com/shikiw/OPERA/aefb223d49315687b4d4e9dff54352673346f50c/log/chair_eval_results/llava-1.5/ours.jsonl")
}
