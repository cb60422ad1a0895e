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

extension CorpusStore {
    /// Stores verdicts under a configuration, in one transaction with its audit entry. A verdict
    /// already stored for the same (record, check, configuration) is kept as it is, so re-running
    /// with the same configuration changes nothing; another configuration adds its own verdicts.
    /// - Returns: how many verdicts were new.
    @discardableResult
    public func saveVerdicts(_ verdicts: [CheckVerdict], configHash: String, configJSON: String, arguments: [String] = []) throws -> Int {
        try pool.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO check_configs (hash, config, created_at) VALUES (?, ?, ?)",
                           arguments: [configHash, configJSON, Timestamp.now()])
            let insert = try db.makeStatement(sql: """
                INSERT OR IGNORE INTO checks (record_id, name, config_hash, passed, score, detail) VALUES (?, ?, ?, ?, ?, ?)
                """)
            var added = 0
            for v in verdicts {
                try insert.execute(arguments: [v.recordId, v.name, configHash, v.passed, v.score, v.detail])
                added += db.changesCount
            }
            try Self.audit(db, command: "check", arguments: arguments, outcome: ["config": configHash, "verdicts_added": added])
            return added
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
