import Foundation

/// A file or folder that could not be written: which path, and what went wrong in words a person
/// can act on. Nothing half-written is left behind when it is thrown.
public struct FileWriteError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file or folder that could not be written.
    public var path: String
    /// What failed and, where it helps, what to do ("cannot create the folder (Permission denied)").
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    /// `path: message`.
    public var description: String { "\(path): \(message)" }

    /// The C library's text for `code` (`strerror`), e.g. "No space left on device".
    static func reason(_ code: Int32) -> String {
        String(cString: strerror(code))
    }
}
