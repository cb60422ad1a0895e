import Foundation

/// Errors of the Quality module: a check configuration or taxonomy file that cannot be used.
/// Records that fail a check are not errors: they get a failing verdict.
///
/// `message` names the file, the section or setting, what is wrong and what to do.
public struct QualityError: Error, CustomStringConvertible, Equatable {
    /// Stable kinds, for tests and exit codes.
    public enum Code: String, Sendable {
        /// The configuration or taxonomy file does not exist or cannot be read.
        case unreadableFile
        /// The check configuration is not JSON, has an unknown section or setting, or a value
        /// out of its allowed range.
        case invalidConfiguration
        /// The taxonomy file is not an object of tag keys, values and minimum counts.
        case invalidTaxonomy
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
