import Foundation
import GRDB

/// One input row that could not become a record (`rejects` table).
public struct Reject: Codable, Sendable, Equatable {
    public var id: Int64?
    public var sourceId: Int64
    public var rowIndex: Int
    public var locator: String
    public var line: Int
    public var byteOffset: Int64
    public var byteLength: Int64
    /// Stable snake_case code, e.g. `empty_answer`, `undecodable_bytes`.
    public var reason: String
    /// A sentence naming the field, turn or byte.
    public var detail: String
    /// The first characters of the row as read.
    public var excerpt: String

    public init(id: Int64? = nil, sourceId: Int64, rowIndex: Int, locator: String, line: Int,
                byteOffset: Int64, byteLength: Int64, reason: String, detail: String, excerpt: String) {
        self.id = id
        self.sourceId = sourceId
        self.rowIndex = rowIndex
        self.locator = locator
        self.line = line
        self.byteOffset = byteOffset
        self.byteLength = byteLength
        self.reason = reason
        self.detail = detail
        self.excerpt = excerpt
    }
}

extension Reject: StoreRecord {
    public static let databaseTableName = "rejects"
}
