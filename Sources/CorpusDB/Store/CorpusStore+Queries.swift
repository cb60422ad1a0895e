import Foundation
import GRDB

/// Counts shown by `corpus status`.
public struct StoreStatus: Codable, Sendable, Equatable {
    public var schemaVersion: Int
    public var sources: Int
    public var records: Int
    public var rejects: Int

    public init(schemaVersion: Int, sources: Int, records: Int, rejects: Int) {
        self.schemaVersion = schemaVersion
        self.sources = sources
        self.records = records
        self.rejects = rejects
    }
}

/// A `key=value` filter on record tags.
public struct TagFilter: Sendable, Equatable {
    public var key: String
    public var value: String

    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }

    /// Parses `key=value`; nil when there is no `=` or the key is empty.
    public init?(parsing text: String) {
        guard let eq = text.firstIndex(of: "="), eq != text.startIndex else { return nil }
        key = String(text[..<eq])
        value = String(text[text.index(after: eq)...])
    }
}

extension CorpusStore {
    /// Schema version and row counts.
    public func status() throws -> StoreStatus {
        let version = try schemaVersion()
        return try pool.read { db in
            StoreStatus(
                schemaVersion: version,
                sources: try Source.fetchCount(db),
                records: try Record.fetchCount(db),
                rejects: try Reject.fetchCount(db))
        }
    }

    /// Every source, oldest first.
    public func allSources() throws -> [Source] {
        try pool.read { db in try Source.order(Column("id")).fetchAll(db) }
    }

    /// The source with this id, or nil.
    public func source(id: Int64) throws -> Source? {
        try pool.read { db in try Source.fetchOne(db, key: id) }
    }

    /// Sources whose file had this SHA-256.
    public func sources(sha256: String) throws -> [Source] {
        try pool.read { db in try Source.filter(Column("sha256") == sha256).order(Column("id")).fetchAll(db) }
    }

    /// Records in id order, optionally of one source and carrying every given tag.
    public func records(sourceId: Int64? = nil, tags: [TagFilter] = [], limit: Int? = nil, offset: Int = 0) throws -> [Record] {
        try pool.read { db in
            var request = Record.order(Column("id")).all()
            if let sourceId { request = request.filter(Column("source_id") == sourceId) }
            for tag in tags {
                // json_each instead of a JSON path: any key works, quotes and dots included.
                request = request.filter(sql: "EXISTS (SELECT 1 FROM json_each(records.tags) WHERE json_each.key = ? AND json_each.value = ?)",
                                         arguments: [tag.key, tag.value])
            }
            if let limit { request = request.limit(limit, offset: offset) }
            return try request.fetchAll(db)
        }
    }

    /// Calls `body` with the conversations (id, canonical JSON) in id order, `size` at a time,
    /// each batch with the MinHash signatures stored for its records under `signatureKey` (none
    /// when nil), all read in one transaction: `corpus check` streams the corpus through this.
    /// Only those columns are read (the original fields can be large).
    public func forEachConversationBatch(size: Int, signatureKey: String?,
                                         _ body: ([(id: Int64, json: String)], [Int64: Data]) throws -> Void) throws {
        try pool.read { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT id, conversation FROM records ORDER BY id")
            let signatures = try signatureKey.map {
                try Row.fetchCursor(db, sql: "SELECT record_id, signature FROM minhash_signatures WHERE settings_hash = ? ORDER BY record_id", arguments: [$0])
            }
            var pending: (id: Int64, blob: Data)?
            var batch: [(id: Int64, json: String)] = []
            batch.reserveCapacity(max(1, size))
            func flush() throws {
                guard let last = batch.last?.id else { return }
                var found: [Int64: Data] = [:]
                if let signatures {
                    while true {
                        if pending == nil, let row = try signatures.next() { pending = (row[0], row[1]) }
                        guard let p = pending, p.id <= last else { break }
                        if p.id >= batch[0].id { found[p.id] = p.blob }
                        pending = nil
                    }
                }
                try body(batch, found)
                batch.removeAll(keepingCapacity: true)
            }
            while let row = try rows.next() {
                batch.append((row[0], row[1]))
                if batch.count >= size { try flush() }
            }
            try flush()
        }
    }

    /// The record with this id, or nil.
    public func record(id: Int64) throws -> Record? {
        try pool.read { db in try Record.fetchOne(db, key: id) }
    }

    /// Rejects in id order, optionally of one source.
    public func rejects(sourceId: Int64? = nil, limit: Int? = nil) throws -> [Reject] {
        try pool.read { db in
            var request = Reject.order(Column("id")).all()
            if let sourceId { request = request.filter(Column("source_id") == sourceId) }
            if let limit { request = request.limit(limit) }
            return try request.fetchAll(db)
        }
    }

    /// Number of rejects per reason for one source, most frequent first.
    public func rejectCounts(sourceId: Int64) throws -> [(reason: String, count: Int)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT reason, COUNT(*) AS n FROM rejects WHERE source_id = ?
                GROUP BY reason ORDER BY n DESC, reason
                """, arguments: [sourceId]).map { (reason: $0["reason"], count: $0["n"]) }
        }
    }

    /// Appends an entry to the audit log.
    public func logAudit(command: String, arguments: [String], toolVersion: String, outcome: [String: Any] = [:]) throws {
        try pool.write { db in try Self.audit(db, command: command, arguments: arguments, toolVersion: toolVersion, outcome: outcome) }
    }

    /// The audit log, oldest first.
    public func auditLog() throws -> [AuditEntry] {
        try pool.read { db in try AuditEntry.order(Column("id")).fetchAll(db) }
    }
}
