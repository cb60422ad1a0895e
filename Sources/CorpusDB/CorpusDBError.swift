import Foundation
import GRDB

/// Errors of the store. The message names the database file and what to do.
public struct CorpusDBError: Error, CustomStringConvertible, Equatable {
    /// What kind of failure this is; stable for tests and exit codes.
    public enum Code: String, Sendable {
        /// The database file does not exist (run `corpus init`).
        case notInitialized
        /// The file was written by a newer version of corpus.
        case newerSchema
        /// The file is not a corpus store or could not be opened.
        case cannotOpen
        /// A record, source or other object that was asked for does not exist.
        case notFound
        /// The request cannot be carried out as given (a bad name, an empty selection...).
        case invalid
        /// A name is already taken by something different (e.g. a model with other weights).
        case conflict
        /// Another command held the store's write lock for longer than the wait
        /// (`CorpusStore.busyTimeout`); nothing of this command's change was kept.
        case busy
        /// The disk holding the store is full, or reading or writing it failed; the change in
        /// progress was rolled back.
        case storageFailed
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// SQLite's failures that a person can act on, in words: the store is busy (another command is
    /// writing), the disk is full, or an I/O error. Nil for any other error.
    public static func explaining(_ error: any Error) -> CorpusDBError? {
        guard let error = error as? DatabaseError else { return nil }
        return explaining(code: error.resultCode, extended: error.extendedResultCode.rawValue, message: error.message ?? "\(error.resultCode)")
    }

    /// The same from SQLite's result code (primary and extended) and message, for statements
    /// driven through the C API (`CheckedStatement`).
    static func explaining(code: ResultCode, extended: Int32, message sqlite: String) -> CorpusDBError? {
        switch code {
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return CorpusDBError(.busy, "the store is busy: another corpus command (ingest, check, train…) has held its write lock for more than \(Int(CorpusStore.busyTimeout)) s (SQLite: \(sqlite)); this command's unfinished change was rolled back and the store is intact: run it again when the other command has finished (CORPUS_BUSY_TIMEOUT=SECONDS waits longer)")
        case .SQLITE_FULL:
            return CorpusDBError(.storageFailed, "the disk holding the store is full (SQLite: \(sqlite)); the change in progress was rolled back and the store is intact: free some space and run the command again")
        case .SQLITE_IOERR, .SQLITE_CANTOPEN, .SQLITE_READONLY:
            return CorpusDBError(.storageFailed, "the store could not be read or written (SQLite: \(sqlite), code \(extended)); the change in progress was rolled back: check the disk, its free space and the file's permissions, then run the command again")
        default:
            return nil
        }
    }
}
