import Foundation
import GRDB

/// One input row that became a conversation (`records` table).
public struct Record: Codable, Sendable, Equatable {
    public var id: Int64?
    public var sourceId: Int64
    /// 0-based row number within the file.
    public var rowIndex: Int
    /// Human locator: "row 12", "[41]", "[0][3]", "data[2]", "line 17".
    public var locator: String
    /// 1-based physical line where the row starts.
    public var line: Int
    /// Offset of the row's first byte in the original file.
    public var byteOffset: Int64
    /// Length of the row in the original file, in bytes.
    public var byteLength: Int64
    /// Canonical JSON of the conversation (`CanonicalJSON`).
    public var conversation: String
    /// JSON object of the row's original fields; with `originalRefs`, only those not stored by
    /// reference (`originalFields()` gives them all).
    public var original: String
    /// The fields stored by reference to the conversation's text (`OriginalFields`), or nil.
    public var originalRefs: String?
    /// JSON object of string tags.
    public var tags: String
    /// Hex SHA-256 of `conversation`.
    public var contentHash: String
    /// JSON array of flags, e.g. `["lossy_decoding"]`.
    public var flags: String

    public init(id: Int64? = nil, sourceId: Int64, rowIndex: Int, locator: String, line: Int,
                byteOffset: Int64, byteLength: Int64, conversation: String, original: String,
                tags: String, contentHash: String, flags: String = "[]", originalRefs: String? = nil) {
        self.id = id
        self.sourceId = sourceId
        self.rowIndex = rowIndex
        self.locator = locator
        self.line = line
        self.byteOffset = byteOffset
        self.byteLength = byteLength
        self.conversation = conversation
        self.original = original
        self.tags = tags
        self.contentHash = contentHash
        self.flags = flags
        self.originalRefs = originalRefs
    }

    /// Every original field as read, as one JSON object (references resolved).
    /// - Throws: `CorpusDBError` when stored references do not fit the conversation.
    public func originalFields() throws -> String {
        try OriginalFields.resolve(original: original, refs: originalRefs, conversation: conversation, record: id)
    }

    /// The decoded conversation.
    /// - Throws: `CorpusDBError` when the stored text is not canonical JSON.
    public func decodedConversation() throws -> Conversation {
        try CanonicalJSON.decode(conversation)
    }

    /// The decoded tags (non-string values are skipped).
    public func decodedTags() -> [String: String] {
        (try? JSONSerialization.jsonObject(with: Data(tags.utf8)) as? [String: String]) ?? [:]
    }
}

extension Record: StoreRecord {
    public static let databaseTableName = "records"
}
