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

    /// One record as `corpus check` reads it: its stored check facts and signature (when any)
    /// and, only when asked for, its conversation.
    public struct CheckBatchRow: Sendable {
        public var id: Int64
        /// The canonical conversation JSON; nil unless `needsText` asked for it.
        public var json: String?
        public var facts: Data?
        public var signature: Data?
    }

    /// Calls `body` with every record in id order, `size` at a time, all read in one
    /// transaction: each with its check facts stored under `factsKey` and MinHash signature
    /// under `signatureKey` (none when nil), and its conversation when `needsText(id, stored
    /// facts, stored signature)` says so. A record judged before with both stored is never read
    /// from the `records` table (its text is most of the store). `after`: only records with larger ids.
    public func forEachCheckBatch(size: Int, signatureKey: String?, factsKey: String, after: Int64 = Int64.min,
                                  needsText: (_ id: Int64, _ facts: Data?, _ signature: Data?) -> Bool,
                                  _ body: ([CheckBatchRow]) throws -> Void) throws {
        try pool.read { db in
            // The ids from the smallest index (SQLite scans it instead of the table), sorted here.
            var ids = try Int64.fetchAll(db, sql: "SELECT id FROM records WHERE id > ?", arguments: [after])
            ids.sort()
            let facts = try Row.fetchCursor(db, sql: "SELECT record_id, facts FROM check_facts WHERE facts_key = ? AND record_id > ? ORDER BY record_id", arguments: [factsKey, after])
            let signatures = try signatureKey.map {
                try Row.fetchCursor(db, sql: "SELECT record_id, signature FROM minhash_signatures WHERE settings_hash = ? AND record_id > ? ORDER BY record_id", arguments: [$0, after])
            }
            let one = try db.makeStatement(sql: "SELECT conversation FROM records WHERE id = ?")
            var pendingFacts: (id: Int64, blob: Data)?, pendingSignature: (id: Int64, blob: Data)?
            /// The rows of `cursor` with ids in lo...hi (those below lo are skipped).
            func collect(_ cursor: RowCursor?, _ pending: inout (id: Int64, blob: Data)?, _ lo: Int64, _ hi: Int64) throws -> [Int64: Data] {
                guard let cursor else { return [:] }
                var found: [Int64: Data] = [:]
                while true {
                    if pending == nil, let row = try cursor.next() { pending = (row[0], row[1]) }
                    guard let p = pending, p.id <= hi else { break }
                    if p.id >= lo { found[p.id] = p.blob }
                    pending = nil
                }
                return found
            }
            var start = 0
            let step = max(1, size)
            while start < ids.count {
                let end = min(ids.count, start + step)
                let lo = ids[start], hi = ids[end - 1]
                let factsFound = try collect(facts, &pendingFacts, lo, hi)
                let signaturesFound = try collect(signatures, &pendingSignature, lo, hi)
                var rows = ids[start..<end].map { CheckBatchRow(id: $0, json: nil, facts: factsFound[$0], signature: signaturesFound[$0]) }
                let need = rows.indices.filter { needsText(rows[$0].id, rows[$0].facts, rows[$0].signature) }
                if need.count * 4 > rows.count {
                    // Most of the batch: one range scan.
                    let texts = try Row.fetchCursor(db, sql: "SELECT id, conversation FROM records WHERE id BETWEEN ? AND ? ORDER BY id", arguments: [lo, hi])
                    var k = 0
                    while k < need.count, let row = try texts.next() {
                        let id: Int64 = row[0]
                        while k < need.count && rows[need[k]].id < id { k += 1 }
                        if k < need.count && rows[need[k]].id == id {
                            rows[need[k]].json = row[1]
                            k += 1
                        }
                    }
                } else {
                    for i in need { rows[i].json = try String.fetchOne(one, arguments: [rows[i].id]) }
                }
                try body(rows)
                start = end
            }
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
