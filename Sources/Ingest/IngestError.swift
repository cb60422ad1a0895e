import Foundation

/// Errors of the Ingest module: a whole file (or option) that cannot be ingested. Problems with
/// single rows are not errors: they become rejects with a reason.
///
/// `message` names the file, line or byte offset, what is wrong and what to do.
public struct IngestError: Error, CustomStringConvertible, Equatable {
    /// Stable kinds, for tests and exit codes.
    public enum Code: String, Sendable {
        /// The path does not exist or cannot be read.
        case unreadableFile
        /// The bytes are in no encoding we can identify, or a forced encoding is unknown.
        case unknownEncoding
        /// The file looks binary (NUL bytes outside UTF-16, control bytes).
        case binaryFile
        /// The file has no bytes, or only whitespace, or only a header.
        case emptyFile
        /// No field maps to a conversation; the message lists the keys and an example --map.
        case noMapping
        /// The file's structure is broken beyond row level (top-level JSON not an array/object...).
        case malformedInput
        /// An option value is invalid (--map, --format, --encoding, --tag).
        case invalidOption
        /// A directory argument held no file we could read.
        case noInputFiles
        /// Ctrl-C or a termination signal; the current file's transaction was rolled back.
        case interrupted
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
