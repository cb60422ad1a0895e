import Foundation
import GRDB

/// One check's verdict on one record (stored packed per record: `PackedVerdicts`, table `verdicts`).
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
    /// Stores verdicts under a configuration (packed per record, `PackedVerdicts`), in one
    /// transaction with its audit entry. Convenience for `savePackedVerdicts`: the verdicts of one
    /// record need not be adjacent.
    @discardableResult
    public func saveVerdicts(_ verdicts: [CheckVerdict], configHash: String, configJSON: String,
                             groups: [DuplicateGroup] = [], boilerplate: [RecurringSentence]? = nil,
                             arguments: [String] = []) throws -> Int {
        var order: [Int64] = [], packed: [Int64: PackedVerdicts] = [:]
        for v in verdicts {
            if packed[v.recordId] == nil { order.append(v.recordId); packed[v.recordId] = PackedVerdicts(recordId: v.recordId) }
            try packed[v.recordId]?.add(v.name, passed: v.passed, score: v.score, detail: v.detail)
        }
        return try savePackedVerdicts(order.compactMap { packed[$0] }, configHash: configHash, configJSON: configJSON,
                                      groups: groups, boilerplate: boilerplate, arguments: arguments)
    }

    /// Stores every record's verdicts under a configuration, one row per record, in one transaction
    /// with its audit entry. A verdict already stored for the same (record, check, configuration)
    /// is kept as it is, so re-running with the same configuration changes nothing; checks a record
    /// was not judged by before (say `prompt_tokens` once `--model` is given) are added to its row;
    /// another configuration adds its own rows.
    /// - Parameters:
    ///   - groups: with `replacingGroups`, every group under the configuration (stored rows that
    ///     differ are replaced); otherwise only members to add or update, nothing is removed (an
    ///     incremental check: earlier records' groups stay as they are).
    ///   - boilerplate: every recurring sentence under the configuration, replacing those stored;
    ///     nil leaves them.
    ///   - state: what this check covered (`check_state`), kept for the next one; nil removes the
    ///     configuration's state (a check limited to some records).
    /// - Returns: how many verdicts (record and check) were new.
    @discardableResult
    public func savePackedVerdicts(_ rows: [PackedVerdicts], configHash: String, configJSON: String,
                                   groups: [DuplicateGroup] = [], replacingGroups: Bool = true, boilerplate: [RecurringSentence]? = nil,
                                   state: CheckState? = nil, arguments: [String] = []) throws -> Int {
        try savePackedVerdicts(count: rows.count, { rows[$0] }, configHash: configHash, configJSON: configJSON, groups: GroupMembers(groups),
                               replacingGroups: replacingGroups, boilerplate: boilerplate, state: state, arguments: arguments)
    }

    /// The same with the rows made one at a time (`row(k)` for k < `count`), so that ten
    /// million of them are never held together, and the groups as flat members.
    @discardableResult
    public func savePackedVerdicts(count: Int, _ row: (Int) throws -> PackedVerdicts, configHash: String, configJSON: String,
                                   groups: GroupMembers = GroupMembers(), replacingGroups: Bool = true, boilerplate: [RecurringSentence]? = nil,
                                   state: CheckState? = nil, arguments: [String] = []) throws -> Int {
        try pool.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO check_configs (hash, config, created_at) VALUES (?, ?, ?)",
                           arguments: [configHash, configJSON, Timestamp.now()])
            guard let configId = try Int64.fetchOne(db, sql: "SELECT id FROM check_configs WHERE hash = ?", arguments: [configHash]) else {
                throw CorpusDBError(.storageFailed, "\(path): the check configuration \(configHash) was not stored; run the command again")
            }
            // Bound through SQLite's C API (GRDB's argument arrays per row cost as much as SQLite).
            let insert = CheckedStatement(try db.makeStatement(sql: """
                INSERT OR IGNORE INTO verdicts (config_id, record_id, ran, failed, scores, details) VALUES (?, ?, ?, ?, ?, ?)
                """), db, path: path)
            try insert.bind(1, configId)
            var added = 0
            // The per-check counts of the rows inserted (for the summary kept with the state).
            var inserted = VerdictCounts()
            var merged = false
            for k in 0..<count {
                let row = try row(k)
                guard row.ran != 0 else { continue }
                try insert.reset()
                try insert.bind(2, row.recordId)
                try insert.bind(3, Int64(row.ran))
                try insert.bind(4, Int64(row.failed))
                try insert.bind(5, row.scoresBlob)
                try insert.bind(6, row.detailsJSON)
                if try insert.step("storing the verdicts of record \(row.recordId)") == 1 {
                    added += row.count
                    inserted.add(ran: UInt64(row.ran), failed: UInt64(row.failed))
                } else {
                    let more = try mergeVerdicts(db, row, configId: configId)
                    merged = merged || more > 0
                    added += more
                }
            }
            try insert.reset()
            // Groups and recurring sentences describe the corpus as checked now: replaced, not kept.
            if replacingGroups {
                try replaceGroups(db, groups, configId: configId)
            } else {
                try insertGroupMembers(db, groups, configId: configId)
            }
            if let boilerplate {
                try db.execute(sql: "DELETE FROM boilerplate WHERE config_hash = ?", arguments: [configHash])
                let sentence = try db.makeStatement(sql: "INSERT OR REPLACE INTO boilerplate (config_hash, sentence, records, sentence_hash) VALUES (?, ?, ?, ?)")
                for b in boilerplate { try sentence.execute(arguments: [configHash, b.sentence, b.records, b.hash.map { Int64(bitPattern: $0) }]) }
            }
            if let state {
                // The counts: those kept with the previous state plus the rows inserted now, when
                // there were such and no stored row changed; otherwise summed from every row.
                var counts: VerdictCounts
                if !merged, let before = try String.fetchOne(db, sql: "SELECT summary FROM check_state WHERE config_id = ?", arguments: [configId]),
                   let kept = Self.parseSummary(before) {
                    counts = kept
                    counts.add(inserted)
                } else {
                    counts = try Self.verdictCounts(db, configId: configId)
                }
                try db.execute(sql: """
                    INSERT OR REPLACE INTO check_state (config_id, records, last_record_id, covering, facts_key, signature_key, summary)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [configId, state.records, state.lastRecordId, Int64(state.covering), state.factsKey, state.signatureKey,
                                     Self.summaryJSON(counts)])
            } else {
                try db.execute(sql: "DELETE FROM check_state WHERE config_id = ?", arguments: [configId])
            }
            try Self.audit(db, command: "check", arguments: arguments, outcome: ["config": configHash, "verdicts_added": added])
            return added
        }
    }

    /// Makes the stored group members under a configuration exactly `members`, touching only the
    /// rows that differ: checking again after a small new file leaves most of a large corpus's
    /// groups as they were, and deleting and re-inserting them all was most of such a run. The
    /// members, in the table's key order (kind, record), are merged with the stored ones read in
    /// that order: no hash table of a million members.
    private func replaceGroups(_ db: Database, _ members: GroupMembers, configId: Int64) throws {
        var members = members
        if !members.isSortedForTable { members.sortForTable() }
        var stale: [(kind: String, record: Int64)] = []
        var keep = [Bool](repeating: false, count: members.count)
        let stored = try Row.fetchCursor(db, sql: """
            SELECT kind, record_id, representative_id, similarity FROM duplicate_groups WHERE config_id = ? ORDER BY kind, record_id
            """, arguments: [configId])
        var w = 0
        func rank(_ k: Int) -> Int { Int(GroupMembers.tableRank[members.kinds[k]] ?? 0) }
        while let row = try stored.next() {
            let kindName: String = row[0]
            let kind = DuplicateGroup.Kind(rawValue: kindName).flatMap { GroupMembers.tableRank[$0] }.map(Int.init) ?? -1
            let record: Int64 = row[1], representative: Int64 = row[2], similarity: Double? = row[3]
            while w < members.count && (rank(w), members.records[w]) < (kind, record) { w += 1 }
            if w < members.count, rank(w) == kind, members.records[w] == record,
               members.representatives[w] == representative, members.similarity(w)?.bitPattern == similarity?.bitPattern {
                keep[w] = true               // already stored as it should be
            } else {
                stale.append((kindName, record))
            }
        }
        let delete = CheckedStatement(try db.makeStatement(sql: "DELETE FROM duplicate_groups WHERE config_id = ? AND kind = ? AND record_id = ?"),
                                      db, path: path)
        try delete.bind(1, configId)
        for m in stale {
            try delete.reset()
            try delete.bind(2, m.kind)
            try delete.bind(3, m.record)
            _ = try delete.step("removing record \(m.record) from the \(m.kind) groups")
        }
        try delete.reset()
        // In the table's key order, so that the same findings write the same pages.
        try storeGroupMembers(db, configId: configId) { put in
            for k in 0..<members.count where !keep[k] {
                try put(members.kinds[k].rawValue, members.records[k], members.representatives[k], members.similarity(k))
            }
        }
    }

    /// Inserts (or updates) group members, removing none.
    private func insertGroupMembers(_ db: Database, _ members: GroupMembers, configId: Int64) throws {
        try storeGroupMembers(db, configId: configId) { put in
            for k in 0..<members.count {
                try put(members.kinds[k].rawValue, members.records[k], members.representatives[k], members.similarity(k))
            }
        }
    }

    /// Inserts or replaces the group members `members` hands to `put` (kind, record, representative, similarity).
    private func storeGroupMembers(_ db: Database, configId: Int64,
                                   _ members: ((String, Int64, Int64, Double?) throws -> Void) throws -> Void) throws {
        let insert = CheckedStatement(try db.makeStatement(sql: """
            INSERT OR REPLACE INTO duplicate_groups (config_id, kind, record_id, representative_id, similarity) VALUES (?, ?, ?, ?, ?)
            """), db, path: path)
        try insert.bind(1, configId)
        try members { kind, record, representative, similarity in
            try insert.reset()
            try insert.bind(2, kind)
            try insert.bind(3, record)
            try insert.bind(4, representative)
            try insert.bind(5, similarity)
            _ = try insert.step("storing record \(record) of the \(kind) group of record \(representative)")
        }
        try insert.reset()
    }

    /// Adds to a record's stored row the checks it lacks; returns how many were added.
    private func mergeVerdicts(_ db: Database, _ row: PackedVerdicts, configId: Int64) throws -> Int {
        guard let stored = try Row.fetchOne(db, sql: "SELECT ran, failed, scores, details FROM verdicts WHERE config_id = ? AND record_id = ?",
                                            arguments: [configId, row.recordId]) else { return 0 }
        var merged = try Self.unpack(stored, recordId: row.recordId, path: path)
        guard row.ran & ~merged.ran != 0 else { return 0 }
        let before = merged.count
        for v in row.verdicts { try merged.add(v.name, passed: v.passed, score: v.score, detail: v.detail) }
        try db.execute(sql: "UPDATE verdicts SET ran = ?, failed = ?, scores = ?, details = ? WHERE config_id = ? AND record_id = ?",
                       arguments: [Int64(merged.ran), Int64(merged.failed), merged.scoresBlob, merged.detailsJSON, configId, row.recordId])
        return merged.count - before
    }

    /// The packed verdicts of one stored row, or a clear error when it is malformed.
    static func unpack(_ row: Row, recordId id: Int64, path: String) throws -> PackedVerdicts {
        guard let packed = PackedVerdicts(recordId: id, ran: row["ran"], failed: row["failed"], scores: row["scores"] ?? Data(), details: row["details"]) else {
            throw CorpusDBError(.invalid, "\(path): the stored verdicts of record \(id) are malformed (table verdicts); restore the store from a backup or check again under another configuration")
        }
        return packed
    }

    /// Stores `count` signatures computed under a signature key, the k-th given by `signature(k)`
    /// (made one at a time: a million of them are half a gigabyte). A stored one is replaced: a
    /// check computes a signature only where none readable is stored, so this repairs a malformed
    /// row (which an incremental check would otherwise meet, and fall back on, every time).
    public func saveMinHashSignatures(count: Int, key: String, _ signature: (Int) throws -> (recordId: Int64, blob: Data)) throws {
        try savePerRecordBlobs(sql: "INSERT OR REPLACE INTO minhash_signatures (record_id, settings_hash, signature) VALUES (?, ?, ?)",
                               count: count, key: key, what: "MinHash signature", signature)
    }

    /// Stores `count` records' check facts under a key, the k-th given by `facts(k)`; a stored row
    /// is replaced (facts are computed only where none readable is stored: a malformed row is
    /// repaired).
    public func saveCheckFacts(count: Int, key: String, _ facts: (Int) throws -> (recordId: Int64, blob: Data)) throws {
        try savePerRecordBlobs(sql: "INSERT OR REPLACE INTO check_facts (record_id, facts_key, facts) VALUES (?, ?, ?)",
                               count: count, key: key, what: "check facts", facts)
    }

    /// One transaction of `sql` (parameters: record id, key, blob) for `count` rows made on demand.
    private func savePerRecordBlobs(sql: String, count: Int, key: String, what: String,
                                    _ row: (Int) throws -> (recordId: Int64, blob: Data)) throws {
        guard count > 0 else { return }
        try pool.write { db in
            let insert = CheckedStatement(try db.makeStatement(sql: sql), db, path: path)
            try insert.bind(2, key)
            for k in 0..<count {
                let r = try row(k)
                try insert.reset()
                try insert.bind(1, r.recordId)
                try insert.bind(3, r.blob)
                _ = try insert.step("storing the \(what) of record \(r.recordId)")
            }
            try insert.reset()
        }
    }

    /// Per check: (records checked, records failed) under a configuration, by check name.
    public func checkSummary(configHash: String) throws -> [(name: String, checked: Int, failed: Int)] {
        try pool.read { db in
            guard let configId = try Int64.fetchOne(db, sql: "SELECT id FROM check_configs WHERE hash = ?", arguments: [configHash]) else { return [] }
            // Kept with the check state (0017) when there is one; otherwise summed from the rows.
            let kept = try String.fetchOne(db, sql: "SELECT summary FROM check_state WHERE config_id = ?", arguments: [configId]).flatMap(Self.parseSummary)
            let counts = try kept ?? Self.verdictCounts(db, configId: configId)
            return CheckCatalog.names.enumerated().compactMap { bit, name in
                counts.checked[bit] == 0 ? nil : (name: name, checked: counts.checked[bit], failed: counts.failed[bit])
            }.sorted { $0.name < $1.name }
        }
    }

    /// Per check of the catalogue: how many rows under a configuration it judged and failed.
    /// Grouped by the two masks (a few dozen combinations), summed per bit here: half the time of
    /// summing every bit of every row in SQL (0.6 against 1.3 s at a million rows).
    static func verdictCounts(_ db: Database, configId: Int64) throws -> VerdictCounts {
        var counts = VerdictCounts()
        let rows = try Row.fetchCursor(db, sql: "SELECT ran, failed, COUNT(*) FROM verdicts WHERE config_id = ? GROUP BY ran, failed",
                                       arguments: [configId])
        while let row = try rows.next() {
            counts.add(ran: UInt64(bitPattern: row[0] as Int64), failed: UInt64(bitPattern: row[1] as Int64), rows: row[2])
        }
        return counts
    }

    /// The counts as kept in `check_state.summary`: {"check": [checked, failed], ...}.
    static func summaryJSON(_ counts: VerdictCounts) -> String {
        let fields = CheckCatalog.names.enumerated().map { bit, name in "\"\(name)\":[\(counts.checked[bit]),\(counts.failed[bit])]" }
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// Reads `summaryJSON`'s form; nil unless it names every check of the catalogue with two
    /// counts (then the counts are summed from the rows instead).
    static func parseSummary(_ json: String) -> VerdictCounts? {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] else { return nil }
        var counts = VerdictCounts()
        for (bit, name) in CheckCatalog.names.enumerated() {
            guard let pair = object[name] as? [Int], pair.count == 2, pair[0] >= 0, pair[1] >= 0, pair[1] <= pair[0] else { return nil }
            counts.checked[bit] = pair[0]
            counts.failed[bit] = pair[1]
        }
        return counts
    }

    /// The verdicts of one record, every configuration (by configuration hash, then check name).
    public func verdicts(recordId: Int64) throws -> [(configHash: String, verdict: CheckVerdict)] {
        try pool.read { db in
            var out: [(configHash: String, verdict: CheckVerdict)] = []
            for config in try Row.fetchAll(db, sql: "SELECT id, hash FROM check_configs ORDER BY hash") {
                guard let row = try Row.fetchOne(db, sql: "SELECT * FROM verdicts WHERE config_id = ? AND record_id = ?",
                                                 arguments: [config["id"] as Int64, recordId]) else { continue }
                let hash: String = config["hash"]
                out += try Self.unpack(row, recordId: recordId, path: path).verdicts.sorted { $0.name < $1.name }.map { (configHash: hash, verdict: $0) }
            }
            return out
        }
    }

    /// Records with a verdict under a configuration from every check in `covering` (a bit mask
    /// over `CheckCatalog.names`): those a new run under it need not judge again.
    /// `after`: only records with larger ids.
    public func recordsJudged(configHash: String, covering: UInt32, after: Int64 = Int64.min) throws -> Set<Int64> {
        try pool.read { db in
            Set(try Int64.fetchAll(db, sql: """
                SELECT record_id FROM verdicts WHERE config_id = (SELECT id FROM check_configs WHERE hash = ?) AND record_id > ? AND ran & ? = ?
                """, arguments: [configHash, after, Int64(covering), Int64(covering)]))
        }
    }

    /// Records that failed `check` under a configuration.
    public func failedRecords(configHash: String, check: String) throws -> Set<Int64> {
        guard let bit = CheckCatalog.bit(check) else { return [] }
        return try pool.read { db in
            Set(try Int64.fetchAll(db, sql: """
                SELECT record_id FROM verdicts WHERE config_id = (SELECT id FROM check_configs WHERE hash = ?) AND (failed >> ?) & 1 = 1
                """, arguments: [configHash, bit]))
        }
    }
}

extension CorpusStore {
    /// The groups of one kind under a configuration, ordered by representative.
    public func duplicateGroups(configHash: String, kind: DuplicateGroup.Kind) throws -> [DuplicateGroup] {
        try pool.read { db in
            var groups: [DuplicateGroup] = []
            let rows = try Row.fetchCursor(db, sql: """
                SELECT record_id, representative_id, similarity FROM duplicate_groups
                WHERE config_id = (SELECT id FROM check_configs WHERE hash = ?) AND kind = ?
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
            let configId = try configHash.flatMap { try Int64.fetchOne(db, sql: "SELECT id FROM check_configs WHERE hash = ?", arguments: [$0]) } ?? -1
            let rows = try Row.fetchCursor(db, sql: """
                SELECT r.id, r.source_id, r.tags, w.record_id IS NOT NULL AS withdrawn, v.record_id AS verdict_record, v.ran, v.failed, v.scores, v.details
                FROM records r LEFT JOIN withdrawals w ON w.record_id = r.id
                LEFT JOIN verdicts v ON v.config_id = ? AND v.record_id = r.id
                ORDER BY r.id
                """, arguments: [configId])
            while let row = try rows.next() {
                let id: Int64 = row["id"]
                let tags: String = row["tags"]
                let decoded = (try? JSONSerialization.jsonObject(with: Data(tags.utf8))) as? [String: Any] ?? [:]
                var facts = RecordFacts(id: id, sourceId: row["source_id"], tags: decoded.compactMapValues { $0 as? String },
                                        withdrawn: row["withdrawn"], verdicts: [])
                if (row["verdict_record"] as Int64?) != nil {
                    facts.verdicts = try Self.unpack(row, recordId: id, path: path).verdicts
                }
                try body(facts)
            }
        }
    }
}

/// Per check of the catalogue (by bit): how many verdict rows it judged and how many failed it.
struct VerdictCounts {
    var checked = [Int](repeating: 0, count: CheckCatalog.names.count)
    var failed = [Int](repeating: 0, count: CheckCatalog.names.count)

    /// Counts `rows` rows with these masks (bits of `PackedVerdicts.ran` and `failed`).
    mutating func add(ran: UInt64, failed fail: UInt64, rows: Int = 1) {
        for bit in checked.indices {
            if (ran >> UInt64(bit)) & 1 == 1 { checked[bit] += rows }
            if (fail >> UInt64(bit)) & 1 == 1 { failed[bit] += rows }
        }
    }

    /// Adds another set of counts.
    mutating func add(_ other: VerdictCounts) {
        for bit in checked.indices {
            checked[bit] += other.checked[bit]
            failed[bit] += other.failed[bit]
        }
    }
}
