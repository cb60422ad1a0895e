import Foundation
import GRDB

/// What the last whole-store `corpus check` under a configuration covered (table `check_state`,
/// migration 0015): the next check compares only records added since with what is stored.
public struct CheckState: Sendable, Equatable {
    /// How many records the store held.
    public var records: Int
    /// The largest of their ids; records added later have larger ones.
    public var lastRecordId: Int64
    /// The checks every one of them has a verdict from (bits of `PackedVerdicts.ran`).
    public var covering: UInt32
    /// The key of their `check_facts` rows.
    public var factsKey: String
    /// The key of their `minhash_signatures` rows; nil when near duplicates were not looked for.
    public var signatureKey: String?

    public init(records: Int, lastRecordId: Int64, covering: UInt32, factsKey: String, signatureKey: String?) {
        self.records = records
        self.lastRecordId = lastRecordId
        self.covering = covering
        self.factsKey = factsKey
        self.signatureKey = signatureKey
    }
}

/// A sentence recurring in many answers (table `boilerplate`).
public struct RecurringSentence: Sendable, Equatable {
    /// The normalized sentence ("" when the record it was read from has been erased).
    public var sentence: String
    /// In how many answers it occurs.
    public var records: Int
    /// Its FNV-1a hash; nil in rows stored before migration 0015.
    public var hash: UInt64?

    public init(sentence: String, records: Int, hash: UInt64? = nil) {
        self.sentence = sentence
        self.records = records
        self.hash = hash
    }
}

/// One record checked before, as its stored rows give it. The buffers are valid only during the
/// call that hands the row over.
public struct StoredCheckRow {
    public var id: Int64
    /// Its `check_facts` blob.
    public var facts: UnsafeRawBufferPointer
    /// Its MinHash signature blob; nil when none is stored under the key asked for.
    public var signature: UnsafeRawBufferPointer?
    /// Whether it is an exact copy of an earlier record (a member, not the representative, of an
    /// exact-duplicate group).
    public var exactDuplicate: Bool
}

extension CorpusStore {
    /// The state the last whole-store check under a configuration left, or nil.
    public func checkState(configHash: String) throws -> CheckState? {
        try pool.read { db in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT s.records, s.last_record_id, s.covering, s.facts_key, s.signature_key
                FROM check_state s JOIN check_configs c ON c.id = s.config_id WHERE c.hash = ?
                """, arguments: [configHash]) else { return nil }
            return CheckState(records: row[0], lastRecordId: row[1], covering: UInt32(truncatingIfNeeded: row[2] as Int64),
                              factsKey: row[3], signatureKey: row[4])
        }
    }

    /// How many records have an id at most `id`.
    public func recordCount(upTo id: Int64) throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM records WHERE id <= ?", arguments: [id]) ?? 0 }
    }

    /// The number of records and the largest id.
    public func recordCountAndLastId() throws -> (count: Int, lastId: Int64) {
        try pool.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM records")
            return (row?[0] ?? 0, row?[1] ?? 0)
        }
    }

    /// Calls `body` for every record with an id in `range` and at most `state.lastRecordId` that
    /// has check facts under `state.factsKey`, in id order, with its signature under `state.signatureKey` and
    /// whether it is an exact duplicate under the configuration. Read straight from SQLite's
    /// buffers (a million records are ~600 MB of facts and signatures; nothing is copied).
    /// - Returns: how many records it handed over.
    @discardableResult
    public func forEachStoredCheckRow(configHash: String, state: CheckState, range: ClosedRange<Int64> = Int64.min...Int64.max,
                                      _ body: (StoredCheckRow) throws -> Void) throws -> Int {
        let lo = range.lowerBound, hi = min(range.upperBound, state.lastRecordId)
        guard lo <= hi else { return 0 }
        return try pool.read { db in
            let facts = CheckedStatement(try db.makeStatement(sql: """
                SELECT record_id, facts FROM check_facts WHERE facts_key = ? AND record_id BETWEEN ? AND ? ORDER BY record_id
                """), db, path: path)
            try facts.bind(1, state.factsKey)
            try facts.bind(2, lo)
            try facts.bind(3, hi)
            let signatures = try state.signatureKey.map { key in
                let s = CheckedStatement(try db.makeStatement(sql: """
                    SELECT record_id, signature FROM minhash_signatures WHERE settings_hash = ? AND record_id BETWEEN ? AND ? ORDER BY record_id
                    """), db, path: path)
                try s.bind(1, key)
                try s.bind(2, lo)
                try s.bind(3, hi)
                return s
            }
            let copies = CheckedStatement(try db.makeStatement(sql: """
                SELECT record_id FROM duplicate_groups WHERE config_id = (SELECT id FROM check_configs WHERE hash = ?)
                AND kind = 'exact' AND record_id != representative_id
                AND record_id BETWEEN ? AND ? ORDER BY record_id
                """), db, path: path)
            try copies.bind(1, configHash)
            try copies.bind(2, lo)
            try copies.bind(3, hi)
            defer { try? facts.reset(); try? signatures?.reset(); try? copies.reset() }
            var signatureId: Int64 = -1, copyId: Int64 = -1
            var signaturesDone = signatures == nil, copiesDone = false
            var count = 0
            while try facts.nextRow("reading the stored check facts") {
                let id = facts.int64(0)
                while !signaturesDone && signatureId < id {
                    if let s = signatures, try s.nextRow("reading the stored MinHash signatures") { signatureId = s.int64(0) } else { signaturesDone = true }
                }
                while !copiesDone && copyId < id {
                    if try copies.nextRow("reading the stored exact-duplicate groups") { copyId = copies.int64(0) } else { copiesDone = true }
                }
                let signature = !signaturesDone && signatureId == id ? signatures?.blob(1) : nil
                try body(StoredCheckRow(id: id, facts: facts.blob(1), signature: signature, exactDuplicate: !copiesDone && copyId == id))
                count += 1
            }
            return count
        }
    }

    /// Which of `ids` are near duplicates under a configuration (members of a near-duplicate
    /// group that are not its representative).
    public func nearDuplicates(configHash: String, among ids: [Int64]) throws -> Set<Int64> {
        try pool.read { db in
            let one = CheckedStatement(try db.makeStatement(sql: """
                SELECT 1 FROM duplicate_groups WHERE config_id = (SELECT id FROM check_configs WHERE hash = ?)
                AND kind = 'near' AND record_id = ? AND representative_id != record_id
                """), db, path: path)
            try one.bind(1, configHash)
            var found = Set<Int64>()
            for id in Set(ids) {
                try one.reset()
                try one.bind(2, id)
                if try one.nextRow("reading the near-duplicate groups") { found.insert(id) }
            }
            try one.reset()
            return found
        }
    }

    /// The stored MinHash signatures of some records under a signature key, by record id.
    public func signatureBlobs(key: String, ids: [Int64]) throws -> [Int64: Data] {
        try pool.read { db in
            let one = try db.makeStatement(sql: "SELECT signature FROM minhash_signatures WHERE record_id = ? AND settings_hash = ?")
            var found: [Int64: Data] = [:]
            for id in ids {
                if let blob = try Data.fetchOne(one, arguments: [id, key]) { found[id] = blob }
            }
            return found
        }
    }

    /// Every recurring sentence stored under a configuration, with its hash where stored.
    public func recurringSentences(configHash: String) throws -> [RecurringSentence] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT sentence, records, sentence_hash FROM boilerplate WHERE config_hash = ?", arguments: [configHash])
                .map { RecurringSentence(sentence: $0[0], records: $0[1], hash: ($0[2] as Int64?).map { UInt64(bitPattern: $0) }) }
        }
    }
}
