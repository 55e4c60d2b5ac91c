import Foundation
import PostgresNIO

/// Where a PostgreSQL store is and how to reach it: `postgres://user:password@host:port/database?sslmode=...`,
/// with what the URL leaves out taken from libpq's environment variables (`PGHOST`, `PGPORT`, `PGUSER`,
/// `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`), then libpq's defaults (the Unix socket folder
/// /var/run/postgresql of Debian's server, port 5432, the login name as user and database).
///
/// A host that starts with `/` is the folder of the server's Unix socket (`.s.PGSQL.<port>` inside it), written
/// percent-encoded in the host part (`postgres://me@%2Fvar%2Frun%2Fpostgresql/mirage`) or as `?host=/path`.
struct PostgresLocation: Equatable {
    enum SSLMode: String, CaseIterable { case disable, prefer, require }

    var host: String
    var port: Int
    var user: String
    var password: String?
    var database: String
    var sslMode: SSLMode

    var isUnixSocket: Bool { host.hasPrefix("/") }
    var socketPath: String { (host.hasSuffix("/") ? host : host + "/") + ".s.PGSQL.\(port)" }

    /// The URL as shown to the user: the password replaced by `***`.
    let shown: String

    init(_ url: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        shown = RunStores.redacted(url)
        func fail(_ what: String) -> StoreError {
            StoreError.invalid("\(RunStores.redacted(url)): \(what). Write the location as "
                + "postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require], a Unix socket "
                + "folder as the percent-encoded host (postgres://USER@%2Fvar%2Frun%2Fpostgresql/DATABASE) or ?host=/FOLDER.")
        }
        guard let schemeEnd = url.range(of: "://") else { throw fail("not a postgres:// URL") }
        var rest = Substring(url[schemeEnd.upperBound...])
        var query: [String: String] = [:]
        if let mark = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: mark)...].split(separator: "&") where !pair.isEmpty {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, let key = parts[0].removingPercentEncoding,
                      let value = parts[1].removingPercentEncoding else { throw fail("the parameter '\(pair)' is not NAME=VALUE") }
                query[key] = value
            }
            rest = rest[..<mark]
        }
        var authority = rest, path = Substring("")
        if let slash = rest.firstIndex(of: "/") { authority = rest[..<slash]; path = rest[rest.index(after: slash)...] }
        var userInfo: Substring?
        if let at = authority.lastIndex(of: "@") { userInfo = authority[..<at]; authority = authority[authority.index(after: at)...] }
        var user: String?, password: String?
        if let userInfo {
            let parts = userInfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            user = parts[0].removingPercentEncoding.flatMap { $0.isEmpty ? nil : $0 }
            if parts.count == 2 { password = parts[1].removingPercentEncoding }
        }
        var host: String?, port: Int?
        if !authority.isEmpty {
            var hostPart = authority
            if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {   // [IPv6]:port
                hostPart = authority[authority.index(after: authority.startIndex)..<close]
                let after = authority[authority.index(after: close)...]
                if after.hasPrefix(":") {
                    guard let p = Int(after.dropFirst()) else { throw fail("the port '\(after.dropFirst())' is not a number") }
                    port = p
                }
            } else if let colon = authority.lastIndex(of: ":") {
                hostPart = authority[..<colon]
                guard let p = Int(authority[authority.index(after: colon)...]) else {
                    throw fail("the port '\(authority[authority.index(after: colon)...])' is not a number")
                }
                port = p
            }
            guard let decoded = hostPart.removingPercentEncoding else { throw fail("the host is not valid percent-encoding") }
            host = decoded.isEmpty ? nil : decoded
        }
        let database = path.removingPercentEncoding.flatMap { $0.isEmpty ? nil : $0 }
        if let h = query["host"] { host = h }
        if let p = query["port"] { port = Int(p) }
        if let u = query["user"] { user = u }
        if let p = query["password"] { password = p }

        func env(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        self.host = host ?? env("PGHOST") ?? "/var/run/postgresql"
        if let port { self.port = port } else if let p = env("PGPORT") {
            guard let n = Int(p) else { throw fail("PGPORT='\(p)' is not a port number") }
            self.port = n
        } else { self.port = 5432 }
        let login = env("USER") ?? env("LOGNAME") ?? NSUserName()
        self.user = user ?? env("PGUSER") ?? login
        self.password = password ?? env("PGPASSWORD")
        self.database = database ?? env("PGDATABASE") ?? self.user
        let mode = query["sslmode"] ?? env("PGSSLMODE") ?? "prefer"
        switch mode {
        case "disable", "allow": sslMode = .disable
        case "prefer": sslMode = .prefer
        case "require": sslMode = .require
        case "verify-ca", "verify-full":
            throw fail("sslmode=\(mode) (certificate verification) is not supported yet; use sslmode=require (encrypted, "
                + "server certificate not checked) or connect through a trusted network")
        default: throw fail("sslmode '\(mode)' is not one of disable, prefer, require")
        }
    }

    /// The same server with another database (test set-up creates and drops databases through `postgres`).
    func with(database: String) -> PostgresLocation {
        var copy = self
        copy.database = database
        return copy
    }

    /// postgres-nio's configuration. TLS never applies to a Unix socket (libpq does the same).
    func configuration() throws -> PostgresConnection.Configuration {
        if isUnixSocket {
            return PostgresConnection.Configuration(unixSocketPath: socketPath, username: user, password: password, database: database)
        }
        let tls: PostgresConnection.Configuration.TLS
        switch sslMode {
        case .disable: tls = .disable
        case .prefer, .require:
            // libpq's prefer and require encrypt without checking the server's certificate.
            var settings = TLSConfiguration.makeClientConfiguration()
            settings.certificateVerification = .none
            let context = try NIOSSLContext(configuration: settings)
            tls = sslMode == .prefer ? .prefer(context) : .require(context)
        }
        var configuration = PostgresConnection.Configuration(host: host, port: port, username: user, password: password,
                                                              database: database, tls: tls)
        configuration.options.connectTimeout = .seconds(10)
        return configuration
    }

    /// Where the server is, for messages (never the password).
    var serverDescription: String {
        isUnixSocket ? "the server on the Unix socket \(socketPath)" : "the server at \(host):\(port)"
    }
}
