import Foundation
import GRDB

/// A source's share of a snapshot.
public struct SourceShare: Sendable, Equatable {
    public var source: Source
    public var records: Int
    public var train: Int
    public var eval: Int
}

/// A snapshot's use of some records (for record and source lineage, and for `forget`).
public struct SnapshotUse: Sendable, Equatable {
    public var snapshot: Snapshot
    /// How many of the records in question it contains.
    public var records: Int
    /// The split, when one record is in question.
    public var split: String?
}

/// An adapter trained on a snapshot (the training issue fills the table).
public struct AdapterUse: Sendable, Equatable {
    public var adapterId: Int64
    public var runId: Int64
    public var path: String
    public var sha256: String
    public var snapshot: String
}

/// What `corpus forget` did and found.
public struct ForgetReport: Sendable, Equatable {
    /// Records newly withdrawn.
    public var withdrawn: [Int64]
    /// Records that had been withdrawn before.
    public var alreadyWithdrawn: [Int64]
    /// Records not named but withdrawn too because their text is identical to a named one's.
    public var identicalCopies: [Int64]
    /// Every snapshot that contains any of them.
    public var snapshots: [SnapshotUse]
    /// Every adapter trained on one of those snapshots.
    public var adapters: [AdapterUse]
}

extension CorpusStore {
    /// The sources a snapshot's members come from, with counts.
    public func sourceShares(of snapshot: Snapshot) throws -> [SourceShare] {
        try pool.read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT r.source_id, COUNT(*) AS n, SUM(m.split = 'train') AS train, SUM(m.split = 'eval') AS eval
                FROM snapshot_records m JOIN records r ON r.id = m.record_id
                WHERE m.snapshot_id = ? GROUP BY r.source_id ORDER BY r.source_id
                """, arguments: [snapshot.id])
            return try rows.compactMap { row in
                guard let source = try Source.fetchOne(db, key: row["source_id"] as Int64) else { return nil }
                return SourceShare(source: source, records: row["n"], train: row["train"], eval: row["eval"])
            }
        }
    }

    /// Snapshots that contain any of `recordIds` (or any record of `sourceId`), with counts.
    public func snapshotUses(recordIds: [Int64] = [], sourceId: Int64? = nil) throws -> [SnapshotUse] {
        try pool.read { db in try Self.snapshotUses(db, recordIds: recordIds, sourceId: sourceId) }
    }

    static func snapshotUses(_ db: Database, recordIds: [Int64], sourceId: Int64?) throws -> [SnapshotUse] {
        let condition: String
        if let sourceId {
            condition = "m.record_id IN (SELECT id FROM records WHERE source_id = \(sourceId))"
        } else {
            guard !recordIds.isEmpty else { return [] }
            condition = "m.record_id IN (\(recordIds.map { String($0) }.joined(separator: ",")))"
        }
        let rows = try Row.fetchAll(db, sql: """
            SELECT m.snapshot_id, COUNT(*) AS n, MIN(m.split) AS split FROM snapshot_records m
            WHERE \(condition) GROUP BY m.snapshot_id ORDER BY m.snapshot_id
            """)
        return try rows.compactMap { row in
            guard let snapshot = try Snapshot.fetchOne(db, key: row["snapshot_id"] as Int64) else { return nil }
            return SnapshotUse(snapshot: snapshot, records: row["n"], split: recordIds.count == 1 && sourceId == nil ? row["split"] : nil)
        }
    }

    /// Adapters trained on any of `snapshotIds`.
    public func adapterUses(snapshotIds: [Int64]) throws -> [AdapterUse] {
        try pool.read { db in try Self.adapterUses(db, snapshotIds: snapshotIds) }
    }

    static func adapterUses(_ db: Database, snapshotIds: [Int64]) throws -> [AdapterUse] {
        guard !snapshotIds.isEmpty else { return [] }
        let rows = try Row.fetchAll(db, sql: """
            SELECT a.id, a.run_id, a.path, a.sha256, s.name || '@' || s.version AS snapshot
            FROM adapters a JOIN runs r ON r.id = a.run_id JOIN snapshots s ON s.id = r.snapshot_id
            WHERE r.snapshot_id IN (\(snapshotIds.map { String($0) }.joined(separator: ","))) ORDER BY a.id
            """)
        return rows.map { AdapterUse(adapterId: $0["id"], runId: $0["run_id"], path: $0["path"], sha256: $0["sha256"], snapshot: $0["snapshot"]) }
    }

    /// The withdrawal of a record, if any.
    public func withdrawal(recordId: Int64) throws -> Withdrawal? {
        try pool.read { db in try Withdrawal.fetchOne(db, key: recordId) }
    }

    /// Withdraws records (a removal request): each is marked withdrawn with the reason and, with
    /// `erase`, its text and original fields are replaced by empty ones while its content hash
    /// stays. New snapshots leave withdrawn records out; old ones still list them, and `verify`
    /// reports them as withdrawn. One transaction, with its audit entry.
    /// - Throws: `CorpusDBError(.notFound)` for an unknown record or source, `.invalid` without a reason.
    public func forget(recordIds: [Int64] = [], sourceId: Int64? = nil, reason: String, erase: Bool = true,
                       arguments: [String] = []) throws -> ForgetReport {
        guard !reason.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw CorpusDBError(.invalid, "a removal needs a reason (--reason TEXT), kept for the auditor")
        }
        let report: ForgetReport = try pool.write { db in
            // Erased text must not survive in freed space of the file's pages: secure_delete makes
            // SQLite overwrite what it frees with zeros (docs/RELIABILITY.md, "forget").
            if erase { try db.execute(sql: "PRAGMA secure_delete = ON") }
            var ids = recordIds
            if let sourceId {
                guard try Source.fetchOne(db, key: sourceId) != nil else {
                    throw CorpusDBError(.notFound, "\(path): no source \(sourceId); `corpus sources` lists them")
                }
                ids += try Int64.fetchAll(db, sql: "SELECT id FROM records WHERE source_id = ? ORDER BY id", arguments: [sourceId])
            }
            ids = Array(Set(ids)).sorted()
            for id in ids where try Record.fetchOne(db, key: id) == nil {
                throw CorpusDBError(.notFound, "\(path): no record \(id); `corpus records` lists them")
            }
            // The same text ingested twice (another file, a repeated row) is withdrawn with it:
            // otherwise its copy would take its place in the next snapshot.
            let named = Set(ids)
            ids = try Int64.fetchAll(db, sql: """
                SELECT id FROM records WHERE content_hash IN (SELECT content_hash FROM records WHERE id IN (\(ids.map { String($0) }.joined(separator: ","))))
                ORDER BY id
                """)
            let copies = ids.filter { !named.contains($0) }
            var report = ForgetReport(withdrawn: [], alreadyWithdrawn: [], identicalCopies: copies, snapshots: [], adapters: [])
            let now = Timestamp.now()
            for id in ids {
                if try Withdrawal.fetchOne(db, key: id) != nil { report.alreadyWithdrawn.append(id); continue }
                try Withdrawal(recordId: id, reason: reason, requestedAt: now, erased: erase).insert(db)
                if erase {
                    try db.execute(sql: #"UPDATE records SET conversation = '{"messages":[]}', original = '{}', original_refs = NULL WHERE id = ?"#, arguments: [id])
                    // Signatures and check facts (keys, sentence hashes) are derived from the text, and evaluations' answers from its question:
                    // they go with it (the scores stay, so stored evaluations keep their figures).
                    try db.execute(sql: "DELETE FROM minhash_signatures WHERE record_id = ?", arguments: [id])
                    try db.execute(sql: "DELETE FROM check_facts WHERE record_id = ?", arguments: [id])
                    try db.execute(sql: "UPDATE eval_items SET prediction = '' WHERE record_id = ?", arguments: [id])
                    // Its text is gone: the next check settles every finding again (no incremental shortcut).
                    try db.execute(sql: "DELETE FROM check_state")
                }
                report.withdrawn.append(id)
            }
            report.snapshots = try Self.snapshotUses(db, recordIds: ids, sourceId: nil)
            report.adapters = try Self.adapterUses(db, snapshotIds: report.snapshots.compactMap(\.snapshot.id))
            try Self.audit(db, command: "forget", arguments: arguments,
                           outcome: ["withdrawn": report.withdrawn, "erased": erase, "snapshots": report.snapshots.map(\.snapshot.label)])
            return report
        }
        // The write-ahead log still holds the pages as they were before the erasure: copy the
        // committed pages into the file and truncate the log to zero bytes. A process reading the
        // store at this moment can hold the log; it is then emptied when the last one closes.
        if erase { _ = try? pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") } }
        return report
    }
}
