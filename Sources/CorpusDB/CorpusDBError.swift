import Foundation

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
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
