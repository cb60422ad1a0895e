import Foundation
import GRDB

/// One check's verdict on one record (table `checks`).
public struct CheckVerdict: Sendable, Equatable {
    public var recordId: Int64
    public var name: String
    public var passed: Bool
    public var score: Double?
    public var detail: String

    public init(recordId: Int64, name: String, passed: Bool, score: Double?, detail: String) {
        self.recordId = recordId
        self.name = name
        self.passed = passed
        self.score = score
        self.detail = detail
    }
}

/// A group of records found to be the same (exact or near duplicates) or to ask the same
/// question with different answers (conflict); table `duplicate_groups`.
public struct DuplicateGroup: Sendable, Equatable {
    /// `borderline`: a pair just below the near-duplicate threshold, listed for review; its one
    /// member is the later record and the representative the earlier one.
    public enum Kind: String, Sendable, CaseIterable { case exact, near, conflict, borderline }
    public var kind: Kind
    /// The record kept (the first ingested by default); also the first of `members`.
    public var representative: Int64
    /// Every record of the group, the representative first, then by id.
    public var members: [Int64]
    /// Near duplicates: each member's estimated Jaccard similarity with the representative.
    public var similarity: [Int64: Double]

    public init(kind: Kind, representative: Int64, members: [Int64], similarity: [Int64: Double] = [:]) {
        self.kind = kind
        self.representative = representative
        self.members = members
        self.similarity = similarity
    }
}

extension CorpusStore {
    /// Stores verdicts under a configuration, in one transaction with its audit entry. A verdict
    /// already stored for the same (record, check, configuration) is kept as it is, so re-running
    /// with the same configuration changes nothing; another configuration adds its own verdicts.
    /// - Returns: how many verdicts were new.
    @discardableResult
    public func saveVerdicts(_ verdicts: [CheckVerdict], configHash: String, configJSON: String,
                             groups: [DuplicateGroup] = [], boilerplate: [(sentence: String, records: Int)] = [],
                             arguments: [String] = []) throws -> Int {
        try pool.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO check_configs (hash, config, created_at) VALUES (?, ?, ?)",
                           arguments: [configHash, configJSON, Timestamp.now()])
            let insert = try db.makeStatement(sql: """
                INSERT OR IGNORE INTO checks (record_id, name, config_hash, passed, score, detail) VALUES (?, ?, ?, ?, ?, ?)
                """)
            // Bound through SQLite's C API: a million records make 14 million rows, and building
            // GRDB's argument arrays per row cost as much as SQLite itself.
            var added = 0
            let statement = CheckedStatement(insert, db, path: path)
            try statement.bind(3, configHash)
            for v in verdicts {
                try statement.reset()
                try statement.bind(1, v.recordId)
                try statement.bind(2, v.name)
                try statement.bind(4, Int64(v.passed ? 1 : 0))
                try statement.bind(5, v.score)
                try statement.bind(6, v.detail)
                added += try statement.step("storing the verdict \(v.name) of record \(v.recordId)")
            }
            try statement.reset()
            // Groups and recurring sentences describe the corpus as checked now: replaced, not kept.
            try db.execute(sql: "DELETE FROM duplicate_groups WHERE config_hash = ?", arguments: [configHash])
            let member = try db.makeStatement(sql: """
                INSERT OR REPLACE INTO duplicate_groups (config_hash, kind, record_id, representative_id, similarity) VALUES (?, ?, ?, ?, ?)
                """)
            for g in groups {
                for m in g.members {
                    try member.execute(arguments: [configHash, g.kind.rawValue, m, g.representative, g.similarity[m]])
                }
            }
            if !boilerplate.isEmpty {
                try db.execute(sql: "DELETE FROM boilerplate WHERE config_hash = ?", arguments: [configHash])
                let sentence = try db.makeStatement(sql: "INSERT OR REPLACE INTO boilerplate (config_hash, sentence, records) VALUES (?, ?, ?)")
                for b in boilerplate { try sentence.execute(arguments: [configHash, b.sentence, b.records]) }
            }
            try Self.audit(db, command: "check", arguments: arguments, outcome: ["config": configHash, "verdicts_added": added])
            return added
        }
    }

    /// Stored MinHash signatures under a signature key (`NearDuplicateSettings.signatureKey`), by record id.
    public func minHashSignatures(key: String) throws -> [Int64: Data] {
        try pool.read { db in
            var out: [Int64: Data] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT record_id, signature FROM minhash_signatures WHERE settings_hash = ?", arguments: [key])
            while let row = try rows.next() { out[row["record_id"]] = row["signature"] }
            return out
        }
    }

    /// Stores signatures computed under a signature key (already stored ones are left as they are).
    public func saveMinHashSignatures(_ signatures: [(recordId: Int64, blob: Data)], key: String) throws {
        guard !signatures.isEmpty else { return }
        try pool.write { db in
            let insert = try db.makeStatement(sql: "INSERT OR IGNORE INTO minhash_signatures (record_id, settings_hash, signature) VALUES (?, ?, ?)")
            for s in signatures { try insert.execute(arguments: [s.recordId, key, s.blob]) }
        }
    }

    /// Per check: (records checked, records failed) under a configuration.
    public func checkSummary(configHash: String) throws -> [(name: String, checked: Int, failed: Int)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT name, COUNT(*) AS n, SUM(passed = 0) AS failed FROM checks WHERE config_hash = ? GROUP BY name ORDER BY name
                """, arguments: [configHash]).map { (name: $0["name"], checked: $0["n"], failed: $0["failed"]) }
        }
    }

    /// The verdicts of one record, every configuration.
    public func verdicts(recordId: Int64) throws -> [(configHash: String, verdict: CheckVerdict)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM checks WHERE record_id = ? ORDER BY config_hash, name", arguments: [recordId]).map {
                (configHash: $0["config_hash"], verdict: CheckVerdict(recordId: $0["record_id"], name: $0["name"], passed: $0["passed"],
                                                                     score: $0["score"], detail: $0["detail"]))
            }
        }
    }

    /// Records that failed `check` under a configuration.
    public func failedRecords(configHash: String, check: String) throws -> Set<Int64> {
        try pool.read { db in
            Set(try Int64.fetchAll(db, sql: "SELECT record_id FROM checks WHERE config_hash = ? AND name = ? AND passed = 0",
                                   arguments: [configHash, check]))
        }
    }
}

extension CorpusStore {
    /// The groups of one kind under a configuration, ordered by representative.
    public func duplicateGroups(configHash: String, kind: DuplicateGroup.Kind) throws -> [DuplicateGroup] {
        try pool.read { db in
            var groups: [DuplicateGroup] = []
            let rows = try Row.fetchCursor(db, sql: """
                SELECT record_id, representative_id, similarity FROM duplicate_groups WHERE config_hash = ? AND kind = ?
                ORDER BY representative_id, record_id != representative_id, record_id
                """, arguments: [configHash, kind.rawValue])
            while let row = try rows.next() {
                let id: Int64 = row["record_id"], rep: Int64 = row["representative_id"]
                if groups.last?.representative != rep { groups.append(DuplicateGroup(kind: kind, representative: rep, members: [])) }
                groups[groups.count - 1].members.append(id)
                if let s: Double = row["similarity"] { groups[groups.count - 1].similarity[id] = s }
            }
            return groups
        }
    }

    /// The recurring sentences found under a configuration, most frequent first.
    public func boilerplate(configHash: String, limit: Int = 20) throws -> [(sentence: String, records: Int)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT sentence, records FROM boilerplate WHERE config_hash = ? ORDER BY records DESC, sentence LIMIT ?",
                             arguments: [configHash, limit]).map { (sentence: $0["sentence"], records: $0["records"]) }
        }
    }

    /// The configuration stored under a hash (its canonical JSON), or nil.
    public func checkConfiguration(hash: String) throws -> String? {
        try pool.read { db in try String.fetchOne(db, sql: "SELECT config FROM check_configs WHERE hash = ?", arguments: [hash]) }
    }

    /// Resolves `--checks`: "none" is nil, "default" the newest configuration `corpus check` ran
    /// with (nil when none has), anything else a hash or a unique prefix of 8+ characters.
    /// - Throws: `CorpusDBError(.notFound)` when a hash names no single configuration.
    public func resolveChecks(_ reference: String) throws -> String? {
        try pool.read { db in try Self.resolveChecks(db, reference, path: path) }
    }

    static func resolveChecks(_ db: Database, _ reference: String, path: String) throws -> String? {
        switch reference {
        case "none": return nil
        case "default":
            return try String.fetchOne(db, sql: "SELECT hash FROM check_configs ORDER BY created_at DESC, rowid DESC LIMIT 1")
        default:
            let matches = reference.count >= 8
                ? try String.fetchAll(db, sql: "SELECT hash FROM check_configs WHERE hash LIKE ? || '%'", arguments: [reference]) : []
            guard matches.count == 1 else {
                throw CorpusDBError(.notFound, "\(path): no single check configuration \(reference); run `corpus check` first, give a hash from its output, or use --checks none")
            }
            return matches[0]
        }
    }
}

/// What the report needs of one record: where it came from, its tags and its verdicts.
public struct RecordFacts: Sendable {
    public var id: Int64
    public var sourceId: Int64
    public var tags: [String: String]
    public var withdrawn: Bool
    /// The record's verdicts under the configuration asked for (none when it was not checked).
    public var verdicts: [CheckVerdict]
}

extension CorpusStore {
    /// Calls `body` for every record in id order with its verdicts under `configHash` (or none).
    public func forEachRecordFacts(configHash: String?, _ body: (RecordFacts) throws -> Void) throws {
        try pool.read { db in
            let rows = try Row.fetchCursor(db, sql: """
                SELECT r.id, r.source_id, r.tags, w.record_id IS NOT NULL AS withdrawn, c.name, c.passed, c.score, c.detail
                FROM records r LEFT JOIN withdrawals w ON w.record_id = r.id
                LEFT JOIN checks c ON c.record_id = r.id AND c.config_hash = ?
                ORDER BY r.id
                """, arguments: [configHash ?? ""])
            var current: RecordFacts?
            while let row = try rows.next() {
                let id: Int64 = row["id"]
                if current?.id != id {
                    if let done = current { try body(done) }
                    let tags: String = row["tags"]
                    let decoded = (try? JSONSerialization.jsonObject(with: Data(tags.utf8))) as? [String: Any] ?? [:]
                    current = RecordFacts(id: id, sourceId: row["source_id"], tags: decoded.compactMapValues { $0 as? String },
                                          withdrawn: row["withdrawn"], verdicts: [])
                }
                if let name: String = row["name"] {
                    current?.verdicts.append(CheckVerdict(recordId: id, name: name, passed: row["passed"], score: row["score"], detail: row["detail"]))
                }
            }
            if let done = current { try body(done) }
        }
    }
}
