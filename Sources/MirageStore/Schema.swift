import Foundation
import GRDB
import MirageData

/// The store's schema, built by GRDB migrations. Add migrations at the end, never edit a shipped one: a
/// database that has a migration this build does not know is refused (`StoreError.newerSchema`).
/// The tables are documented in docs/store.md.
enum Schema {
    /// Also written to `PRAGMA user_version` so that other tools can tell the schema generation.
    static let version = 3

    /// The migrations in order: identifier and SQL (SQLite's types; `PostgresSchema` translates them).
    /// Migration 3, `item_claims`: work in progress, not results: which worker decodes which unrecorded item,
    /// until when. A row goes when its item is recorded; an expired row is taken over by the next worker that
    /// claims the item.
    static let migrations: [(identifier: String, sql: String)] = [
        ("v1-runs-items-scores", """
            CREATE TABLE protocols (
                id INTEGER PRIMARY KEY,
                hash TEXT NOT NULL UNIQUE,            -- SHA-256 of canonical_json
                name TEXT,                            -- human label, not part of the identity
                task TEXT NOT NULL CHECK (task IN ('chair', 'pope')),
                image_ids TEXT NOT NULL,              -- JSON array, sorted
                image_count INTEGER NOT NULL,
                prompt_template TEXT,
                max_new_tokens INTEGER,
                question_file TEXT,
                question_checksum TEXT,
                split TEXT,
                answer_parser TEXT,
                vocabulary_checksum TEXT,
                ground_truth_checksum TEXT,
                canonical_json TEXT NOT NULL
            );
            CREATE TABLE models (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                architecture TEXT NOT NULL DEFAULT '',
                fingerprint TEXT NOT NULL DEFAULT '',
                UNIQUE (name, architecture, fingerprint)
            );
            CREATE TABLE decoders (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                parameters TEXT NOT NULL DEFAULT '{}',  -- canonical JSON
                UNIQUE (name, parameters)
            );
            CREATE TABLE runs (
                id INTEGER PRIMARY KEY,
                protocol_id INTEGER NOT NULL REFERENCES protocols(id),
                model_id INTEGER NOT NULL REFERENCES models(id),
                decoder_id INTEGER NOT NULL REFERENCES decoders(id),
                seed INTEGER,
                label TEXT UNIQUE,
                source_hash TEXT,                     -- imports: SHA-256 of file + import options
                source_path TEXT,
                expected_items INTEGER,
                mirage_version TEXT NOT NULL,
                git_revision TEXT,
                host TEXT NOT NULL,
                created_at TEXT NOT NULL,             -- ISO 8601 UTC
                updated_at TEXT NOT NULL,
                finished_at TEXT,
                status TEXT NOT NULL CHECK (status IN ('running', 'complete', 'failed'))
            );
            CREATE UNIQUE INDEX runs_source_hash ON runs(source_hash) WHERE source_hash IS NOT NULL;
            CREATE INDEX runs_protocol ON runs(protocol_id);
            CREATE TABLE items (
                id INTEGER PRIMARY KEY,
                run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                item_key TEXT NOT NULL,
                ordinal INTEGER NOT NULL,
                image_id INTEGER,
                question_id INTEGER,
                prompt TEXT,
                output_text TEXT NOT NULL,
                output_tokens TEXT,                   -- JSON array of token ids
                prefill_seconds REAL,
                decode_seconds REAL,
                forward_passes INTEGER,
                seed INTEGER,
                status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
                failure_reason TEXT,
                created_at TEXT NOT NULL,
                UNIQUE (run_id, item_key)
            );
            CREATE INDEX items_run_ordinal ON items(run_id, ordinal);
            CREATE TABLE item_scores (
                item_id INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
                run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                kind TEXT NOT NULL CHECK (kind IN ('chair', 'pope')),
                -- CHAIR
                mentions TEXT,                        -- JSON [{word, node, position, hallucinated}]
                ground_truth TEXT,                    -- JSON [node words]
                mention_count INTEGER,
                hallucinated_count INTEGER,
                word_count INTEGER,
                -- POPE
                label TEXT CHECK (label IN ('yes', 'no')),
                parsed_answer TEXT CHECK (parsed_answer IN ('yes', 'no', 'unknown'))
            );
            CREATE INDEX item_scores_run ON item_scores(run_id);
            CREATE TABLE run_metrics (
                run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                value REAL,                           -- NULL where the ratio is undefined (0/0)
                PRIMARY KEY (run_id, name)
            );
            """),
        ("v2-item-attention", """
            CREATE TABLE item_attention (
                item_id INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
                run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                format_version INTEGER NOT NULL,
                n INTEGER NOT NULL,                   -- response rows
                tokens TEXT NOT NULL,                 -- JSON array of the n response token ids
                labels TEXT NOT NULL,                 -- JSON array: the text each token adds to the response
                data BLOB NOT NULL                    -- Float32 little-endian, layout in docs/overtrust.md
            );
            CREATE INDEX item_attention_run ON item_attention(run_id);
            """),
        ("v3-item-claims", """
            CREATE TABLE item_claims (
                run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                item_key TEXT NOT NULL,
                worker TEXT NOT NULL,                 -- host:pid:random of the claiming process
                expires_at REAL NOT NULL,             -- Unix seconds; the lease, renewed while decoding
                PRIMARY KEY (run_id, item_key)
            );
            CREATE INDEX item_claims_worker ON item_claims(worker);
            """),
    ]

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for (index, migration) in migrations.enumerated() {
            migrator.registerMigration(migration.identifier) { db in
                try db.execute(sql: migration.sql + "\nPRAGMA user_version = \(index + 1);")
                try recordWriter(db, identifier: migration.identifier, generation: index + 1)
            }
        }
        return migrator
    }

    /// Bookkeeping beside GRDB's `grdb_migrations` (not part of the schema generation): which Mirage release applied
    /// each migration, so an older build refusing the database can say which release to upgrade to.
    static let writersTable = "mirage_migrations"

    /// Records that this release applied `identifier` (in the migration's own transaction).
    static func recordWriter(_ db: Database, identifier: String, generation: Int) throws {
        try db.execute(sql: """
            CREATE TABLE IF NOT EXISTS \(writersTable) (identifier TEXT PRIMARY KEY, mirage_version TEXT NOT NULL,
                generation INTEGER NOT NULL, applied_at TEXT NOT NULL)
            """)
        try db.execute(sql: "INSERT OR REPLACE INTO \(writersTable) VALUES (?, ?, ?, ?)",
                       arguments: [identifier, MirageRelease.version, generation, StoreClock.now()])
    }

    /// The refusal of a database with migrations this build does not know: the releases recorded beside them (or,
    /// when only the generation is newer, beside the newest generation) and the database's schema generation.
    static func newerSchema(_ db: Database, path: String, unknown: [String]) throws -> StoreError {
        let userVersion = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
        var versions: [String] = []
        if try db.tableExists(writersTable) {
            let marks = unknown.map { _ in "?" }.joined(separator: ", ")
            versions = try String.fetchAll(db, sql: "SELECT DISTINCT mirage_version FROM \(writersTable) WHERE identifier IN (\(marks))",
                                           arguments: StatementArguments(unknown))
            if versions.isEmpty {
                versions = try String.fetchAll(db, sql: """
                    SELECT mirage_version FROM \(writersTable) WHERE generation > ? ORDER BY generation DESC LIMIT 1
                    """, arguments: [version])
            }
        }
        let generation = max(userVersion, try Int.fetchOne(db, sql: "SELECT count(*) FROM grdb_migrations") ?? 0)
        return .newerSchema(path: path, unknownMigrations: unknown, writtenBy: newest(versions), generation: generation)
    }

    /// The newest of some release strings (compared numerically, part by part), or nil for none.
    static func newest(_ versions: [String]) -> String? {
        func parts(_ v: String) -> [Int] { v.split(whereSeparator: { !$0.isNumber }).map { Int($0) ?? 0 } }
        return versions.max { parts($0).lexicographicallyPrecedes(parts($1)) }
    }
}
