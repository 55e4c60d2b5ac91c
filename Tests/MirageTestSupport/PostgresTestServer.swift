import Foundation
import Testing

/// The PostgreSQL server the store tests run against, named by `MIRAGE_TEST_POSTGRES` (a `postgres://` URL of a
/// database the tests may create other databases from, e.g. `postgres`). Unset: the PostgreSQL cases are left out
/// and one test reports them skipped with `howToStart`.
public enum PostgresTestServer {
    public static let variable = "MIRAGE_TEST_POSTGRES"

    public static var url: String? {
        ProcessInfo.processInfo.environment[variable].flatMap { $0.isEmpty ? nil : $0 }
    }

    public static let howToStart = """
        \(variable) is unset, so the store tests ran on SQLite only. To run them on PostgreSQL too, start a \
        throwaway server (Debian's postgresql-15 binaries; no root needed) with \
        `eval "$(Scripts/postgres-throwaway.sh start)"`, which exports \(variable), run the tests again, and stop it \
        with `Scripts/postgres-throwaway.sh stop "$PGTHROWAWAY"`. .ci/run does this.
        """
}

/// The databases a test case created on the PostgreSQL test server, dropped when the case ends, whether it passed,
/// failed or threw. A test that creates one carries the `.dropsScratchDatabases` trait (on it or its suite) and
/// registers each database with `ScratchDatabases.register`; registering outside such a test is refused, so no
/// test leaves databases behind.
public struct ScratchDatabases: TestTrait, SuiteTrait, TestScoping {
    public var isRecursive: Bool { true }

    public init() {}

    final class Registry: @unchecked Sendable {
        private let lock = NSLock()
        private var entries: [(url: String, drop: @Sendable (String) throws -> Void)] = []
        func add(_ url: String, _ drop: @escaping @Sendable (String) throws -> Void) { lock.lock(); entries.append((url, drop)); lock.unlock() }
        func take() -> [(url: String, drop: @Sendable (String) throws -> Void)] {
            lock.lock(); defer { lock.unlock() }
            defer { entries = [] }
            return entries
        }
    }

    @TaskLocal static var current: Registry?

    public struct Unscoped: Error, CustomStringConvertible {
        public var description: String {
            "this test creates PostgreSQL databases but does not carry the .dropsScratchDatabases trait; add it to the "
                + "@Test (or its @Suite) so the databases are dropped when the test ends"
        }
    }

    /// Remembers a database the current test case created; `drop` removes it when the case ends.
    public static func register(_ url: String, drop: @escaping @Sendable (String) throws -> Void) throws {
        guard let current else {
            try? drop(url)
            throw Unscoped()
        }
        current.add(url, drop)
    }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        guard testCase != nil else { try await function(); return }
        let registry = Registry()
        do {
            try await Self.$current.withValue(registry) { try await function() }
        } catch {
            Self.dropAll(registry)
            throw error
        }
        Self.dropAll(registry)
    }

    private static func dropAll(_ registry: Registry) {
        for entry in registry.take() {
            do { try entry.drop(entry.url) } catch {
                Issue.record(Comment(rawValue: "could not drop the test database \(entry.url): \(error)"))
            }
        }
    }
}

extension Trait where Self == ScratchDatabases {
    /// Drops the PostgreSQL databases the test case registered (`ScratchDatabases.register`) when it ends.
    public static var dropsScratchDatabases: Self { ScratchDatabases() }
}
