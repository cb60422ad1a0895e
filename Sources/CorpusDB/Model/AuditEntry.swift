import Foundation
import GRDB

/// One command that changed the store (`audit_log` table).
public struct AuditEntry: Codable, Sendable, Equatable {
    public var id: Int64?
    /// ISO 8601 UTC.
    public var at: String
    public var command: String
    /// JSON array of the command-line arguments.
    public var arguments: String
    public var toolVersion: String
    /// JSON object describing what changed.
    public var outcome: String

    public init(id: Int64? = nil, at: String, command: String, arguments: String, toolVersion: String, outcome: String = "{}") {
        self.id = id
        self.at = at
        self.command = command
        self.arguments = arguments
        self.toolVersion = toolVersion
        self.outcome = outcome
    }
}

extension AuditEntry: StoreRecord {
    public static let databaseTableName = "audit_log"
}

/// ISO 8601 timestamps in UTC with milliseconds, the store's only time format.
public enum Timestamp {
    /// The current time as stored.
    public static func now() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date())
    }
}
