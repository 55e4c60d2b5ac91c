import Foundation
import PostgresNIO

/// A value bound to a `$n` parameter of a query.
enum SQLValue: Sendable, Equatable {
    case null
    case int(Int64)
    case double(Double)
    case text(String)
    case bytes(Data)
    case ints([Int64])
    case texts([String])

    init(_ value: Int64?) { self = value.map { .int($0) } ?? .null }
    init(_ value: Int?) { self = value.map { .int(Int64($0)) } ?? .null }
    init(_ value: String?) { self = value.map { .text($0) } ?? .null }
    init(_ value: Double?) { self = value.map { $0.isNaN ? .null : .double($0) } ?? .null }
    /// Free text kept byte for byte: PostgreSQL's text cannot hold U+0000, so such columns are bytea of UTF-8.
    init(exact value: String?) { self = value.map { .bytes(Data($0.utf8)) } ?? .null }
}

/// One result row, with its columns by name.
struct SQLRow {
    let row: PostgresRandomAccessRow

    private func decode<T: PostgresDecodable>(_ name: String, as type: T.Type) throws -> T? where T._DecodableType == T {
        do { return try row[name].decode(T?.self) } catch {
            throw StoreError.invalid("the column '\(name)' of the PostgreSQL store does not hold a \(T.self) (\(String(reflecting: error))); "
                + "was the database written by something other than Mirage?")
        }
    }
    func int64(_ name: String) throws -> Int64? { try decode(name, as: Int64.self) }
    func int(_ name: String) throws -> Int? { try int64(name).map { Int($0) } }
    func double(_ name: String) throws -> Double? { try decode(name, as: Double.self) }
    func string(_ name: String) throws -> String? { try decode(name, as: String.self) }
    func bytes(_ name: String) throws -> Data? {
        try decode(name, as: ByteBuffer.self).map { Data($0.readableBytesView) }
    }
    /// A free-text column stored as bytea (see `SQLValue(exact:)`).
    func exact(_ name: String) throws -> String? { try bytes(name).map { String(decoding: $0, as: UTF8.self) } }
    func bool(_ name: String) throws -> Bool? { try decode(name, as: Bool.self) }
    func has(_ name: String) -> Bool { row.contains(name) }
}

/// What a transaction body runs queries through.
struct SQLTransaction {
    fileprivate let connection: PostgresConnection
    fileprivate let logger: Logger
    /// How long one statement may take before the connection is taken for dead.
    fileprivate var timeout: TimeAmount = PostgresSession.statementTimeout
    /// Counts the statements sent (the session's `statements`), when set.
    fileprivate var counter: ManagedAtomicCounter?

    /// Runs `sql`, whose parameters are `?` (numbered `$1`, `$2`, ... in order before it is sent), and returns its
    /// rows. `sql` never contains a literal `?`.
    @discardableResult
    func query(_ sql: String, _ values: [SQLValue] = []) throws -> [SQLRow] {
        try run(sql, values).rows.map { SQLRow(row: $0.makeRandomAccess()) }
    }

    /// Runs a statement and returns how many rows it changed.
    @discardableResult
    func execute(_ sql: String, _ values: [SQLValue] = []) throws -> Int {
        try run(sql, values).metadata.rows ?? 0
    }

    func scalar(_ sql: String, _ values: [SQLValue] = []) throws -> SQLRow? { try query(sql, values).first }

    private func run(_ sql: String, _ values: [SQLValue]) throws -> PostgresQueryResult {
        var numbered = "", n = 0
        numbered.reserveCapacity(sql.utf8.count + 8)
        for c in sql {
            if c == "?" { n += 1; numbered += "$\(n)" } else { numbered.append(c) }
        }
        precondition(n == values.count, "\(n) placeholders for \(values.count) values in: \(sql)")
        var binds = PostgresBindings(capacity: values.count)
        for value in values {
            switch value {
            case .null: binds.appendNull()
            case .int(let v): binds.append(v)
            case .double(let v): binds.append(v)
            case .text(let v): binds.append(v)
            case .bytes(let v): binds.append(ByteBuffer(bytes: v))
            case .ints(let v): binds.append(v)
            case .texts(let v): binds.append(v)
            }
        }
        _ = counter?.next()
        // Blocking on the future is fine here: store methods are synchronous and never run on an event loop thread
        // (`wait` traps there rather than deadlocking).
        return try PostgresSession.wait(connection.query(PostgresQuery(unsafeSQL: numbered, binds: binds), logger: logger),
                                        timeout: timeout, orClose: connection.closeFuture)
    }
}

/// One connection to the server, used by one thread at a time: every call runs a whole transaction under a lock.
///
/// postgres-nio is asynchronous; the store's protocol is synchronous. The connection lives on the process-wide
/// event loop group (`MultiThreadedEventLoopGroup.singleton`) and the calling thread blocks on each query's
/// future. A connection that breaks (the server restarted, the backend was terminated, the network dropped) is
/// opened again with back-off for up to `reconnectSeconds`, and the transaction that failed runs again from its
/// beginning: a transaction that did not commit left nothing, and every write of the store is idempotent
/// (recording the same item again is a no-op), so a commit whose acknowledgement was lost is harmless too.
final class PostgresSession: @unchecked Sendable {
    let location: PostgresLocation
    let readOnly: Bool
    /// First come, first served: the lease heartbeat of `mirage run` must not wait behind a main thread that
    /// takes the connection again and again.
    private let lock = FairLock()
    private var connection: PostgresConnection?
    private var logger: Logger
    private static let nextID = ManagedAtomicCounter()
    /// Statements sent in transactions, BEGIN and COMMIT included (round trips: tests check that bulk work batches).
    let statements = ManagedAtomicCounter()
    /// How long to keep trying to reach a server that went away (`MIRAGE_DB_RECONNECT_SECONDS`, default 60).
    let reconnectSeconds: Double
    /// Where notes go (a lost connection being opened again), so a worker's log says why it paused: the opener's
    /// callback (`mirage run` passes its progress's notes), else nowhere.
    let note: @Sendable (String) -> Void

    init(location: PostgresLocation, readOnly: Bool, environment: [String: String] = ProcessInfo.processInfo.environment,
         note: @escaping @Sendable (String) -> Void = { _ in }) throws {
        self.location = location
        self.readOnly = readOnly
        self.note = note
        var logger = Logger(label: "mirage.store.postgres")
        logger.logLevel = .critical
        self.logger = logger
        reconnectSeconds = environment["MIRAGE_DB_RECONNECT_SECONDS"].flatMap(Double.init) ?? 60
        lock.lock()
        defer { lock.unlock() }
        connection = try connect()
    }

    deinit {
        if let connection { Self.discard(connection) }
    }

    /// Closes a connection without waiting (one the server dropped may never report its close), keeping it alive
    /// until it is closed: postgres-nio requires a connection to be closed before it goes away.
    static func discard(_ connection: PostgresConnection) {
        connection.close().whenComplete { _ in withExtendedLifetime(connection) {} }
    }

    /// A statement's limit (`MIRAGE_DB_STATEMENT_SECONDS`, default 300): beyond it the connection counts as lost.
    static let statementTimeout = TimeAmount.seconds(Int64(ProcessInfo.processInfo.environment["MIRAGE_DB_STATEMENT_SECONDS"].flatMap(Int.init) ?? 300))
    /// The limit of a transaction's BEGIN, which is where a connection that died while idle is noticed.
    static let beginTimeout = TimeAmount.seconds(10)

    /// The connection did not answer in time.
    struct Timeout: Error, CustomStringConvertible {
        var description: String { "the server did not answer in time" }
    }

    /// The connection closed while a statement waited for its answer.
    struct Closed: Error, CustomStringConvertible {
        var description: String { "the connection closed" }
    }

    /// Blocks the calling thread (never an event-loop thread: `wait` traps there) until `future` completes or
    /// `timeout` passes. A connection that the server dropped does not always fail the query sent on it, so
    /// every wait is bounded.
    /// With `orClose` (the connection's close future), a connection that closes first fails the wait at once:
    /// a query sent on a connection the server is terminating is not always failed by it.
    static func wait<T>(_ future: EventLoopFuture<T>, timeout: TimeAmount, orClose closed: EventLoopFuture<Void>? = nil) throws -> T {
        let loop = future.eventLoop
        let promise = loop.makePromise(of: T.self)
        let once = Once()
        func finish(_ result: Result<T, any Error>) {
            // Every callback runs on the connection's event loop, but hop anyway so `once` is only touched there.
            loop.execute { if once.first() { promise.completeWith(result) } }
        }
        let timer = loop.scheduleTask(in: timeout) { finish(.failure(Timeout())) }
        future.whenComplete { result in timer.cancel(); finish(result) }
        closed?.whenComplete { _ in finish(.failure(Closed())) }
        return try promise.futureResult.wait()
    }

    /// True the first time only (used on one event loop).
    final class Once: @unchecked Sendable {
        private var done = false
        func first() -> Bool { defer { done = true }; return !done }
    }

    private func connect() throws -> PostgresConnection {
        let configuration = try location.configuration()
        do {
            let connection = try Self.wait(PostgresConnection.connect(on: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration,
                                                                      id: Self.nextID.next(), logger: logger), timeout: .seconds(30))
            if readOnly {
                try SQLTransaction(connection: connection, logger: logger).execute("SET default_transaction_read_only = on")
            }
            return connection
        } catch {
            throw Self.storeError(error, location: location, connecting: true)
        }
    }

    /// Runs `body` in one transaction (READ COMMITTED), committing when it returns and rolling back when it throws.
    func transaction<T>(_ body: (SQLTransaction) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        let deadline = Date().addingTimeInterval(reconnectSeconds)
        var delay = 0.1
        while true {
            do {
                if let old = self.connection, old.isClosed {
                    Self.discard(old)
                    self.connection = nil
                    note("note: lost the connection to \(location.serverDescription) (it closed while idle: the server restarted "
                        + "or ended it); reconnecting")
                }
                let connection = try self.connection ?? connect()
                self.connection = connection
                var t = SQLTransaction(connection: connection, logger: logger)
                t.counter = statements
                var begin = t
                begin.timeout = Self.beginTimeout
                try begin.execute("BEGIN")
                do {
                    let result = try body(t)
                    try t.execute("COMMIT")
                    return result
                } catch {
                    if !Self.isConnectionLoss(error) { _ = try? t.execute("ROLLBACK") }
                    throw error
                }
            } catch where Self.isConnectionLoss(error) && Date() < deadline {
                if let connection { Self.discard(connection) }
                connection = nil
                note("note: lost the connection to \(location.serverDescription) (\(Self.message(error))); reconnecting "
                    + "(for up to \(Int(deadline.timeIntervalSinceNow.rounded())) s more, MIRAGE_DB_RECONNECT_SECONDS)")
                // Never past the deadline: the last try falls on it, so giving up takes the window, not up to 5 s more.
                Thread.sleep(forTimeInterval: max(0, min(delay, deadline.timeIntervalSinceNow)))
                delay = min(delay * 2, 5)
            } catch let error as StoreError {
                throw error
            } catch {
                throw Self.storeError(error, location: location, connecting: false)
            }
        }
    }

    /// True for errors after which the connection is gone (rather than a statement that failed).
    static func isConnectionLoss(_ error: any Error) -> Bool {
        if let store = error as? StoreError, case .postgresUnreachable = store { return true }
        if error is Timeout || error is Closed { return true }
        guard let error = error as? PSQLError else { return error is ChannelError || error is IOError }
        switch error.code {
        case .serverClosedConnection, .clientClosedConnection, .connectionError, .uncleanShutdown: return true
        case .server:
            // 57P01 admin_shutdown (pg_terminate_backend, a fast shutdown), 57P02 crash_shutdown, 57P03 cannot_connect_now.
            let state = error.serverInfo?[.sqlState] ?? ""
            return state.hasPrefix("57P") || state.hasPrefix("08")
        default: return false
        }
    }

    /// The server's message (or the client's reason) of an error, without the query's parameters.
    static func message(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let info = error.serverInfo {
                var text = info[.message] ?? "server error"
                if let state = info[.sqlState] { text += " [SQLSTATE \(state)]" }
                if let detail = info[.detail] { text += "; \(detail)" }
                if let hint = info[.hint] { text += "; hint: \(hint)" }
                return text
            }
            // A PSQLError describes itself with a generic sentence (so as not to leak a query's parameters): name what
            // it wraps by its code instead.
            if let underlying = error.underlying { return "\(error.code): \(message(underlying))" }
            return "\(error.code)"
        }
        return "\(error)"
    }

    static func storeError(_ error: any Error, location: PostgresLocation, connecting: Bool) -> StoreError {
        if isConnectionLoss(error) || (connecting && (error as? PSQLError)?.serverInfo == nil) {
            return .postgresUnreachable(location: location.shown, server: location.serverDescription, message: message(error))
        }
        return .sqlite(path: location.shown, message: message(error))
    }

    /// Runs one statement outside any transaction (CREATE DATABASE and DROP DATABASE refuse to run inside one).
    func outsideTransaction(_ sql: String) throws {
        lock.lock()
        defer { lock.unlock() }
        do {
            let connection = try self.connection ?? connect()
            self.connection = connection
            try SQLTransaction(connection: connection, logger: logger).execute(sql)
        } catch let error as StoreError { throw error } catch {
            throw Self.storeError(error, location: location, connecting: false)
        }
    }

    func close() {
        lock.lock()
        defer { lock.unlock() }
        if let connection { _ = try? Self.wait(connection.close(), timeout: .seconds(5)); Self.discard(connection) }
        connection = nil
    }
}

/// A lock granted in the order it was asked for (a ticket lock): NSLock lets the thread that just unlocked take it
/// again before a waiting thread wakes up.
final class FairLock: @unchecked Sendable {
    private let condition = NSCondition()
    private var nextTicket = 0, serving = 0

    func lock() {
        condition.lock()
        let ticket = nextTicket
        nextTicket += 1
        while ticket != serving { condition.wait() }
        condition.unlock()
    }

    func unlock() {
        condition.lock()
        serving += 1
        condition.broadcast()
        condition.unlock()
    }
}

/// Connection ids for postgres-nio's log metadata.
final class ManagedAtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value }
    var current: Int { lock.lock(); defer { lock.unlock() }; return value }
}
