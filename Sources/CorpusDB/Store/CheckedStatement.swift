import Foundation
import GRDB
import GRDBSQLite

/// A GRDB prepared statement driven through SQLite's C API, for the hottest inserts (records, verdicts),
/// with every return code checked: a failed bind, reset or step throws `CorpusDBError` naming the
/// store, the statement and SQLite's own message.
///
/// Valid only inside the database access closure where `statement` was made. It keeps the GRDB
/// statement alive (GRDB finalizes it when the last reference goes).
struct CheckedStatement {
    /// Held so that GRDB does not finalize the statement while it is in use here.
    private let statement: Statement
    private let handle: SQLiteStatement
    private let connection: SQLiteConnection?
    /// The statement's SQL on one line, for messages.
    let sql: String
    /// The store's path, for messages.
    let path: String

    /// Strings are copied by SQLite (SQLITE_TRANSIENT), so nothing outlives its closure.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(_ statement: Statement, _ db: Database, path: String) {
        self.statement = statement
        handle = statement.sqliteStatement
        connection = db.sqliteConnection
        sql = statement.sql.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
        self.path = path
    }

    /// Binds text to parameter `index` (1-based).
    func bind(_ index: Int32, _ text: String) throws {
        var text = text
        let code = text.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                if let base = chars.baseAddress {
                    sqlite3_bind_text(handle, index, base, Int32(chars.count), Self.transient)
                } else {
                    sqlite3_bind_text(handle, index, "", 0, Self.transient)
                }
            }
        }
        try check(code, "binding parameter \(index)")
    }

    /// Binds text, or NULL for nil, to parameter `index` (1-based).
    func bind(_ index: Int32, _ text: String?) throws {
        if let text { try bind(index, text) } else { try check(sqlite3_bind_null(handle, index), "binding parameter \(index)") }
    }

    /// Binds bytes as a blob to parameter `index` (1-based).
    func bind(_ index: Int32, _ data: Data) throws {
        let code = data.withUnsafeBytes { raw in
            // An empty blob, not NULL (a nil base address would bind NULL).
            raw.baseAddress.map { sqlite3_bind_blob(handle, index, $0, Int32(raw.count), Self.transient) } ?? sqlite3_bind_zeroblob(handle, index, 0)
        }
        try check(code, "binding parameter \(index)")
    }

    /// Binds an integer to parameter `index` (1-based).
    func bind(_ index: Int32, _ value: Int64) throws {
        try check(sqlite3_bind_int64(handle, index, value), "binding parameter \(index)")
    }

    /// Binds a real, or NULL for nil, to parameter `index` (1-based).
    func bind(_ index: Int32, _ value: Double?) throws {
        if let value {
            try check(sqlite3_bind_double(handle, index, value), "binding parameter \(index)")
        } else {
            try check(sqlite3_bind_null(handle, index), "binding parameter \(index)")
        }
    }

    /// Makes the statement ready to run again (bindings are kept).
    func reset() throws {
        try check(sqlite3_reset(handle), "resetting")
    }

    /// Runs the statement, which must not return rows.
    /// - Parameter what: what the row is, for the message (e.g. "storing the verdict pii of record 3").
    /// - Returns: the rows it changed.
    func step(_ what: @autoclosure () -> String) throws -> Int {
        let code = sqlite3_step(handle)
        guard code == SQLITE_DONE else {
            throw error(code, what())
        }
        return Int(sqlite3_changes(connection))
    }

    /// Steps a query: true when a row is ready (read it with `int64`, `blob`), false when done.
    func nextRow(_ what: @autoclosure () -> String) throws -> Bool {
        let code = sqlite3_step(handle)
        if code == SQLITE_ROW { return true }
        guard code == SQLITE_DONE else { throw error(code, what()) }
        return false
    }

    /// Column `index` (0-based) of the current row as an integer.
    func int64(_ index: Int32) -> Int64 { sqlite3_column_int64(handle, index) }

    /// Whether column `index` of the current row is NULL.
    func isNull(_ index: Int32) -> Bool { sqlite3_column_type(handle, index) == SQLITE_NULL }

    /// Column `index` of the current row as bytes, valid until the next step or reset.
    func blob(_ index: Int32) -> UnsafeRawBufferPointer {
        let base = sqlite3_column_blob(handle, index)
        let count = Int(sqlite3_column_bytes(handle, index))
        return UnsafeRawBufferPointer(start: count > 0 ? base : nil, count: base == nil ? 0 : count)
    }

    /// Throws unless `code` is `SQLITE_OK`.
    @inline(__always)
    func check(_ code: Int32, _ action: @autoclosure () -> String) throws {
        guard code == SQLITE_OK else { throw error(code, "\(action()) of `\(sql)`") }
    }

    /// The error for a failed call: store, action, SQLite's message and code.
    func error(_ code: Int32, _ action: String) -> CorpusDBError {
        let message = connection.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(code))
        // A full disk, a busy store or an I/O error gets the same words as through GRDB.
        if let explained = CorpusDBError.explaining(code: ResultCode(rawValue: code & 0xFF), extended: code, message: message) {
            return CorpusDBError(explained.code, "\(path): \(explained.message)")
        }
        return CorpusDBError(.cannotOpen, "\(path): \(action) failed: \(message) (SQLite code \(code))")
    }
}
