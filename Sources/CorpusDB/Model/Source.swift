import Foundation
import GRDB

/// One ingested file (`sources` table).
public struct Source: Codable, Sendable, Equatable {
    public var id: Int64?
    public var path: String
    public var sha256: String
    public var bytes: Int64
    public var format: String
    public var encoding: String
    public var encodingConfidence: Int
    public var encodingMethod: String
    /// JSON describing how fields became a conversation.
    public var mapping: String
    /// JSON object of tags applied to every record of the file.
    public var tags: String
    /// JSON object of the options the file was ingested with.
    public var options: String
    public var rowsRead: Int
    public var recordsAdded: Int
    public var rowsRejected: Int
    /// ISO 8601 UTC.
    public var importedAt: String
    public var toolVersion: String

    public init(id: Int64? = nil, path: String, sha256: String, bytes: Int64, format: String,
                encoding: String, encodingConfidence: Int, encodingMethod: String, mapping: String,
                tags: String = "{}", options: String = "{}", rowsRead: Int = 0, recordsAdded: Int = 0,
                rowsRejected: Int = 0, importedAt: String, toolVersion: String) {
        self.id = id
        self.path = path
        self.sha256 = sha256
        self.bytes = bytes
        self.format = format
        self.encoding = encoding
        self.encodingConfidence = encodingConfidence
        self.encodingMethod = encodingMethod
        self.mapping = mapping
        self.tags = tags
        self.options = options
        self.rowsRead = rowsRead
        self.recordsAdded = recordsAdded
        self.rowsRejected = rowsRejected
        self.importedAt = importedAt
        self.toolVersion = toolVersion
    }
}

extension Source: StoreRecord {
    public static let databaseTableName = "sources"
}
