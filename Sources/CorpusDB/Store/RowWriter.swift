import Foundation
import GRDB

/// Fast inserts of records and rejects inside one write transaction (an ingest of one file).
///
/// Uses prepared statements instead of `Codable` persistence: ingest writes hundreds of
/// thousands of rows and the statement is the hot path. Lives only for the duration of the
/// `pool.write` closure it was made in.
public final class RowWriter {
    private let insertRecord: Statement
    private let insertReject: Statement
    /// Records inserted through this writer.
    public private(set) var recordCount = 0
    /// Rejects inserted through this writer.
    public private(set) var rejectCount = 0

    /// Prepares the statements on `db`, which must be inside a write transaction.
    public init(_ db: Database) throws {
        insertRecord = try db.makeStatement(sql: """
            INSERT INTO records (source_id, row_index, locator, line, byte_offset, byte_length,
                                 conversation, original, tags, content_hash, flags)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        insertReject = try db.makeStatement(sql: """
            INSERT INTO rejects (source_id, row_index, locator, line, byte_offset, byte_length,
                                 reason, detail, excerpt)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
    }

    /// Inserts one record.
    public func insert(_ r: Record) throws {
        try insertRecord.execute(arguments: [r.sourceId, r.rowIndex, r.locator, r.line, r.byteOffset, r.byteLength,
                                             r.conversation, r.original, r.tags, r.contentHash, r.flags])
        recordCount += 1
    }

    /// Inserts one reject.
    public func insert(_ r: Reject) throws {
        try insertReject.execute(arguments: [r.sourceId, r.rowIndex, r.locator, r.line, r.byteOffset, r.byteLength,
                                             r.reason, r.detail, r.excerpt])
        rejectCount += 1
    }
}
