import Foundation
import GRDB

/// Writes the rows of one ingested file inside the transaction `CorpusStore.ingestTransaction`
/// opened for it: records and rejects that carry `sourceID`.
///
/// Uses prepared statements instead of `Codable` persistence: ingest writes hundreds of
/// thousands of rows and the statement is the hot path (records are bound through SQLite's C
/// API, `CheckedStatement`: GRDB's arguments cost the writing thread a third of its time). Valid only inside the closure it was
/// handed to; afterwards every append throws.
public final class SourceWriter {
    /// The id of the file's new `sources` row.
    public let sourceID: Int64
    /// Records appended so far.
    public private(set) var recordCount = 0
    /// Rejects appended so far.
    public private(set) var rejectCount = 0
    private let insertRecord: CheckedStatement
    private let insertReject: Statement
    private let path: String
    fileprivate var isOpen = true

    /// Prepares the statements on `db`, which must be inside the write transaction.
    fileprivate init(_ db: Database, sourceID: Int64, path: String, storePath: String) throws {
        self.sourceID = sourceID
        self.path = path
        insertRecord = CheckedStatement(try db.makeStatement(sql: """
            INSERT INTO records (source_id, row_index, locator, line, byte_offset, byte_length,
                                 conversation, original, original_refs, tags, content_hash, flags)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """), db, path: storePath)
        insertReject = try db.makeStatement(sql: """
            INSERT INTO rejects (source_id, row_index, locator, line, byte_offset, byte_length,
                                 reason, detail, excerpt)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
    }

    /// Appends one record (its `id` is ignored; SQLite assigns the next one).
    /// - Throws: `CorpusDBError` after the transaction ended; SQLite's error when the insert fails.
    public func append(_ r: Record) throws {
        try checkOpen()
        let s = insertRecord
        try s.reset()
        try s.bind(1, r.sourceId)
        try s.bind(2, Int64(r.rowIndex))
        try s.bind(3, r.locator)
        try s.bind(4, Int64(r.line))
        try s.bind(5, r.byteOffset)
        try s.bind(6, r.byteLength)
        try s.bind(7, r.conversation)
        try s.bind(8, r.original)
        try s.bind(9, r.originalRefs)
        try s.bind(10, r.tags)
        try s.bind(11, r.contentHash)
        try s.bind(12, r.flags)
        _ = try s.step("storing \(r.locator) of the file")
        recordCount += 1
    }

    /// Appends one reject (its `id` is ignored; SQLite assigns the next one).
    /// - Throws: `CorpusDBError` after the transaction ended; SQLite's error when the insert fails.
    public func append(_ r: Reject) throws {
        try checkOpen()
        try insertReject.execute(arguments: [r.sourceId, r.rowIndex, r.locator, r.line, r.byteOffset, r.byteLength,
                                             r.reason, r.detail, r.excerpt])
        rejectCount += 1
    }

    private func checkOpen() throws {
        guard isOpen else {
            throw CorpusDBError(.invalid, "\(path): a SourceWriter was used after its ingest transaction ended (a bug in the caller)")
        }
    }
}

extension CorpusStore {
    /// Ingests one file in ONE write transaction: inserts `source`, hands `body` a writer for its
    /// records and rejects, then sets the source's counts (rows read = records + rejects
    /// appended) and commits.
    ///
    /// When `body` throws (an error, or the caller's own cancellation error), the transaction is
    /// rolled back, so nothing of the file stays, and the error is rethrown unchanged.
    /// - Parameter source: the file's row; its `id` and counts are ignored.
    /// - Returns: what `body` returned.
    /// - Throws: what `body` throws; SQLite's error when an insert fails.
    public func ingestTransaction<T>(inserting source: Source, _ body: (SourceWriter) throws -> T) throws -> T {
        try pool.write { db in
            var source = source
            source.id = nil
            try source.insert(db)
            guard let sourceID = source.id else {
                throw CorpusDBError(.cannotOpen, "\(path): \(source.path): the store did not return an id for the new source")
            }
            let writer = try SourceWriter(db, sourceID: sourceID, path: source.path, storePath: path)
            defer { writer.isOpen = false }
            let result = try body(writer)
            try db.execute(sql: "UPDATE sources SET rows_read = ?, records_added = ?, rows_rejected = ? WHERE id = ?",
                           arguments: [writer.recordCount + writer.rejectCount, writer.recordCount, writer.rejectCount, sourceID])
            return result
        }
    }
}
