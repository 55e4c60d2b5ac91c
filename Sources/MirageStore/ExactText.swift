import Foundation
import GRDB

/// Free text (captions, model outputs, prompts, failure reasons) written and read with its full length.
///
/// SQLite keeps a TEXT value with its byte length, U+0000 included, but GRDB binds a `String` with length -1
/// (`sqlite3_bind_text(..., -1, ...)`) and reads one with `String(cString:)` (groue/GRDB.swift,
/// `GRDB/Core/Support/StandardLibrary/StandardLibrary.swift` and `GRDB/Core/DatabaseValue.swift`): both stop
/// at the first NUL, so "a\u{0}b" would be stored as "a". Text that may hold any code point therefore goes
/// in as a blob of its UTF-8 bytes converted by SQL (`CAST(? AS TEXT)`, which keeps the length) and comes out
/// as `CAST(column AS BLOB)`, whose bytes GRDB copies with their length. The value stays TEXT in the file,
/// so other tools (the sqlite3 shell, Python) read it as text. No normalisation happens anywhere: NFC and NFD
/// spellings, BOMs, CR/LF and noncharacters are stored byte for byte.
enum ExactText {
    /// The SQL placeholder for a value bound with `bind`.
    static let placeholder = "CAST(? AS TEXT)"

    /// The argument for `placeholder`: the text itself when it has no NUL (the ordinary binding is exact then),
    /// else its UTF-8 bytes as a blob. (An empty blob would bind as NULL, so "" always goes the first way.)
    static func bind(_ text: String?) -> DatabaseValue {
        guard let text else { return .null }
        guard text.utf8.contains(0) else { return text.databaseValue }
        return Data(text.utf8).databaseValue
    }

    /// `CAST(expression AS BLOB) AS alias`, for a select list.
    static func column(_ expression: String, as alias: String) -> String {
        "CAST(\(expression) AS BLOB) AS \(alias)"
    }

    /// The text of a value selected with `column` (a blob), or of a plain TEXT value; nil for NULL.
    static func string(_ value: DatabaseValue) -> String? {
        switch value.storage {
        case .null: return nil
        case .blob(let data): return String(decoding: data, as: UTF8.self)
        case .string(let s): return s
        case .int64(let n): return String(n)
        case .double(let d): return String(d)
        }
    }
}
