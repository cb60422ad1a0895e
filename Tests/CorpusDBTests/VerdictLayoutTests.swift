@testable import CorpusDB
import Foundation
import GRDB
import TestSupport
import Testing

@Suite("Verdicts packed one row per record and configuration (migration 0012)")
struct VerdictLayoutTests {
    @Test func packingKeepsEveryVerdictInCatalogueOrder() throws {
        // Added out of catalogue order: scores and reasons land at their check's place.
        var p = PackedVerdicts(recordId: 7)
        try p.add("pii", passed: true, score: 0, detail: "")
        try p.add("exact_duplicate", passed: false, score: nil, detail: "duplicate of record 3")
        try p.add("prompt_length", passed: false, score: 2, detail: "prompt shorter than 5 characters")
        try p.add("near_duplicate", passed: true, score: 0.61, detail: "")
        try p.add("prompt_length", passed: true, score: 99, detail: "")      // a second verdict is ignored
        #expect(p.ran == 0b1000_0000_0000_1011)
        #expect(p.failed == 0b0000_0000_0000_1001)
        #expect(p.count == 4)
        #expect(p.scores.count == 4 && p.scores[0].isNaN && p.scores[1] == 0.61 && p.scores[2] == 2 && p.scores[3] == 0)
        #expect(p.details == ["duplicate of record 3", "prompt shorter than 5 characters"])
        #expect(p.verdicts == [
            CheckVerdict(recordId: 7, name: "exact_duplicate", passed: false, score: nil, detail: "duplicate of record 3"),
            CheckVerdict(recordId: 7, name: "near_duplicate", passed: true, score: 0.61, detail: ""),
            CheckVerdict(recordId: 7, name: "prompt_length", passed: false, score: 2, detail: "prompt shorter than 5 characters"),
            CheckVerdict(recordId: 7, name: "pii", passed: true, score: 0, detail: ""),
        ])
        #expect(p.detailsJSON == #"{"exact_duplicate":"duplicate of record 3","prompt_length":"prompt shorter than 5 characters"}"#)
        #expect(p.scoresBlob.count == 32)
        // Stored and read back: the same row, bit for bit (NaN included).
        let back = PackedVerdicts(recordId: 7, ran: Int64(p.ran), failed: Int64(p.failed), scores: p.scoresBlob, details: p.detailsJSON)
        #expect(back == p)
        #expect(throws: CorpusDBError.self) { try p.add("no_such_check", passed: true, score: nil, detail: "") }
    }

    @Test func malformedRowsAreRefusedNotGuessed() {
        let eight = Data(count: 8)
        #expect(PackedVerdicts(recordId: 1, ran: 1, failed: 0, scores: eight, details: nil) != nil)
        #expect(PackedVerdicts(recordId: 1, ran: 1, failed: 0, scores: Data(count: 16), details: nil) == nil, "two scores for one check")
        #expect(PackedVerdicts(recordId: 1, ran: 1, failed: 2, scores: eight, details: #"{"near_duplicate":"x"}"#) == nil, "failed outside ran")
        #expect(PackedVerdicts(recordId: 1, ran: 1 << 20, failed: 0, scores: eight, details: nil) == nil, "a bit the catalogue lacks")
        #expect(PackedVerdicts(recordId: 1, ran: 1, failed: 1, scores: eight, details: "[1]") == nil, "reasons not an object")
        #expect(PackedVerdicts(recordId: 1, ran: -1, failed: 0, scores: eight, details: nil) == nil)
    }

    /// A store written at schema 11 (one row per verdict), opened by this build.
    static func legacyStore(extraVerdict: String? = nil) throws -> String {
        let path = try TestSupport.temporaryDirectory("verdict-migration").appendingPathComponent("corpus.db").path
        let queue = try DatabaseQueue(path: path)
        try Migrations.migrator().migrate(queue, upTo: "0011_run_process")
        try queue.write { db in
            try db.execute(sql: """
                INSERT INTO sources (id, path, sha256, bytes, format, encoding, encoding_confidence, encoding_method, mapping, imported_at, tool_version)
                VALUES (1, '/in.csv', 'ab', 10, 'csv', 'UTF-8', 100, 'utf8', '{}', '2026-01-01T00:00:00Z', 'test');
                """)
            for id in 1...3 {
                try db.execute(sql: """
                    INSERT INTO records (id, source_id, row_index, locator, line, byte_offset, byte_length, conversation, original, content_hash)
                    VALUES (?, 1, ?, ?, ?, 0, 1, '{"messages":[]}', '{}', ?)
                    """, arguments: [id, id - 1, "row \(id)", id + 1, String(repeating: "\(id)", count: 64)])
            }
            let a = String(repeating: "a", count: 64), b = String(repeating: "b", count: 64)
            try db.execute(sql: "INSERT INTO check_configs (hash, config, created_at) VALUES (?, '{}', '2026-01-01T00:00:00Z'), (?, '{\"advisory\":[]}', '2026-01-02T00:00:00Z')",
                           arguments: [a, b])
            // Groups as stored by configuration hash (moved to its id by migration 0016).
            try db.execute(sql: """
                INSERT INTO duplicate_groups (config_hash, kind, record_id, representative_id, similarity)
                VALUES (?, 'near', 1, 1, 1.0), (?, 'near', 2, 1, 0.83), (?, 'exact', 1, 1, NULL)
                """, arguments: [a, a, b])
            let rows: [(Int64, String, String, Bool, Double?, String)] = [
                (1, "exact_duplicate", a, true, nil, ""),
                (1, "prompt_length", a, false, 3, "prompt shorter than 5 characters"),
                (1, "pii", a, true, 0, ""),
                (2, "near_duplicate", a, false, 0.83, "near duplicate of record 1 (similarity 0.83)"),
                (2, "pii", a, false, 2, "2 email"),
                (1, "pii", b, true, 0, ""),
            ] + (extraVerdict.map { [(3, $0, b, true, nil, "")] } ?? [])
            for r in rows {
                try db.execute(sql: "INSERT INTO checks (record_id, name, config_hash, passed, score, detail) VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: [r.0, r.1, r.2, r.3, r.4, r.5])
            }
        }
        return path
    }

    @Test func migrationPacksEveryStoredVerdict() throws {
        let path = try Self.legacyStore()
        let store = try CorpusStore(path: path)
        #expect(try store.schemaVersion() == 17)
        let a = String(repeating: "a", count: 64), b = String(repeating: "b", count: 64)
        let tables = try store.pool.read { db in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('checks', 'verdicts')") }
        #expect(tables == ["verdicts"])
        #expect(try store.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM verdicts") } == 3)
        #expect(try store.pool.read { db in try String.fetchAll(db, sql: "SELECT hash FROM check_configs ORDER BY id") } == [a, b])
        #expect(try store.duplicateGroups(configHash: a, kind: .near) == [DuplicateGroup(kind: .near, representative: 1, members: [1, 2], similarity: [1: 1, 2: 0.83])])
        #expect(try store.duplicateGroups(configHash: b, kind: .exact) == [DuplicateGroup(kind: .exact, representative: 1, members: [1])])
        #expect(try store.pool.read { db in try String.fetchAll(db, sql: "SELECT config_id || ' ' || kind || ' ' || record_id FROM duplicate_groups ORDER BY 1") }
                == ["1 near 1", "1 near 2", "2 exact 1"])
        let one = try store.verdicts(recordId: 1)
        #expect(one.map(\.configHash) == [a, a, a, b])
        #expect(one.map(\.verdict) == [
            CheckVerdict(recordId: 1, name: "exact_duplicate", passed: true, score: nil, detail: ""),
            CheckVerdict(recordId: 1, name: "pii", passed: true, score: 0, detail: ""),
            CheckVerdict(recordId: 1, name: "prompt_length", passed: false, score: 3, detail: "prompt shorter than 5 characters"),
            CheckVerdict(recordId: 1, name: "pii", passed: true, score: 0, detail: ""),
        ])
        #expect(try store.verdicts(recordId: 2).map(\.verdict.detail) == ["near duplicate of record 1 (similarity 0.83)", "2 email"])
        #expect(try store.verdicts(recordId: 3).isEmpty)
        let summary = try store.checkSummary(configHash: a)
        #expect(summary.map(\.name) == ["exact_duplicate", "near_duplicate", "pii", "prompt_length"])
        #expect(summary.map(\.checked) == [1, 1, 2, 1])
        #expect(summary.map(\.failed) == [0, 1, 1, 1])
        #expect(try store.failedRecords(configHash: a, check: "pii") == [2])
        #expect(try store.failedRecords(configHash: b, check: "pii") == [])
        #expect(try store.resolveChecks("default") == b)
        #expect(try store.integrityProblems().isEmpty)
    }

    @Test func aVerdictOfAnUnknownCheckStopsTheMigrationAndChangesNothing() throws {
        let path = try Self.legacyStore(extraVerdict: "retired_check")
        do {
            _ = try CorpusStore(path: path)
            Issue.record("a verdict of an unknown check was migrated")
        } catch let error as CorpusDBError {
            #expect(error.message.contains("retired_check"), "\(error.message)")
            #expect(error.message.contains("record 3"), "\(error.message)")
        }
        let queue = try DatabaseQueue(path: path)
        #expect(try queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM checks") } == 7)
        #expect(try queue.read { db in try Migrations.migrator().appliedIdentifiers(db).count } == 11)
    }

    @Test func recheckingAddsOnlyTheChecksARecordLacked() throws {
        let store = try TestSupport.temporaryStore()
        try store.ingestTransaction(inserting: IngestTransactionTests.source()) { writer in
            try writer.append(IngestTransactionTests.record(writer.sourceID, 0))
        }
        let id = try #require(try store.pool.read { db in try Int64.fetchOne(db, sql: "SELECT id FROM records") })
        let first = try store.saveVerdicts([CheckVerdict(recordId: id, name: "prompt_length", passed: true, score: 12, detail: "")],
                                           configHash: "h", configJSON: "{}")
        #expect(first == 1)
        let again = try store.saveVerdicts([CheckVerdict(recordId: id, name: "prompt_length", passed: false, score: 1, detail: "changed"),
                                            CheckVerdict(recordId: id, name: "prompt_tokens", passed: false, score: 900, detail: "prompt longer than 512 tokens (900)")],
                                           configHash: "h", configJSON: "{}")
        #expect(again == 1)
        #expect(try store.verdicts(recordId: id).map(\.verdict) == [
            CheckVerdict(recordId: id, name: "prompt_length", passed: true, score: 12, detail: ""),
            CheckVerdict(recordId: id, name: "prompt_tokens", passed: false, score: 900, detail: "prompt longer than 512 tokens (900)"),
        ])
        #expect(try store.saveVerdicts([CheckVerdict(recordId: id, name: "prompt_tokens", passed: true, score: 1, detail: "")],
                                       configHash: "h", configJSON: "{}") == 0)
    }

    /// Checking again stores exactly the new groups: members that left are removed, changed
    /// representatives and similarities replaced, unchanged rows kept.
    @Test func groupsAreReplacedByWhatTheLastCheckFound() throws {
        let store = try TestSupport.temporaryStore()
        try store.ingestTransaction(inserting: IngestTransactionTests.source()) { writer in
            for i in 0..<5 { try writer.append(IngestTransactionTests.record(writer.sourceID, i)) }
        }
        let first = [DuplicateGroup(kind: .exact, representative: 1, members: [1, 2, 3]),
                     DuplicateGroup(kind: .near, representative: 1, members: [1, 4], similarity: [1: 1, 4: 0.8]),
                     DuplicateGroup(kind: .borderline, representative: 2, members: [5], similarity: [5: 0.65])]
        try store.saveVerdicts([], configHash: "h", configJSON: "{}", groups: first)
        #expect(try store.duplicateGroups(configHash: "h", kind: .exact) == [first[0]])
        let second = [DuplicateGroup(kind: .exact, representative: 1, members: [1, 3]),
                      DuplicateGroup(kind: .near, representative: 1, members: [1, 4, 5], similarity: [1: 1, 4: 0.75, 5: 0.9])]
        try store.saveVerdicts([], configHash: "h", configJSON: "{}", groups: second)
        #expect(try store.duplicateGroups(configHash: "h", kind: .exact) == [second[0]])
        #expect(try store.duplicateGroups(configHash: "h", kind: .near) == [second[1]])
        #expect(try store.duplicateGroups(configHash: "h", kind: .borderline).isEmpty)
        #expect(try store.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM duplicate_groups") } == 5)
    }

    /// Groups handed over as flat members (what `corpus check` does) are put in the table's key
    /// order with the later of two entries for one (kind, record) standing, and read back as the
    /// same groups.
    @Test func groupMembersSortAndMakeTheSameGroups() throws {
        let groups = [DuplicateGroup(kind: .near, representative: 2, members: [2, 9, 4], similarity: [2: 1, 9: 0.75, 4: 0.9]),
                      DuplicateGroup(kind: .exact, representative: 3, members: [3, 7]),
                      DuplicateGroup(kind: .borderline, representative: 2, members: [8], similarity: [8: 0.6]),
                      DuplicateGroup(kind: .borderline, representative: 3, members: [6], similarity: [6: 0.62]),
                      DuplicateGroup(kind: .conflict, representative: 1, members: [1, 5])]
        var members = GroupMembers(groups)
        #expect(members.count == 9)
        #expect(!members.isSortedForTable)
        // Given again later with another representative: the later entry stands.
        members.append(.exact, record: 7, representative: 1)
        members.sortForTable()
        #expect(members.isSortedForTable)
        // borderline < conflict < exact < near, as SQLite orders the names.
        #expect(members.kinds == [.borderline, .borderline, .conflict, .conflict, .exact, .exact, .near, .near, .near])
        #expect(members.records == [6, 8, 1, 5, 3, 7, 2, 4, 9])
        #expect(members.representatives == [3, 2, 1, 1, 3, 1, 2, 2, 2])
        #expect(members.similarity(0) == 0.62 && members.similarity(2) == nil && members.similarity(8) == 0.75)
        #expect(members.groups == [DuplicateGroup(kind: .exact, representative: 1, members: [7]),
                                   DuplicateGroup(kind: .exact, representative: 3, members: [3]),
                                   DuplicateGroup(kind: .near, representative: 2, members: [2, 4, 9], similarity: [2: 1, 9: 0.75, 4: 0.9]),
                                   DuplicateGroup(kind: .conflict, representative: 1, members: [1, 5]),
                                   DuplicateGroup(kind: .borderline, representative: 3, members: [6], similarity: [6: 0.62]),
                                   DuplicateGroup(kind: .borderline, representative: 2, members: [8], similarity: [8: 0.6])])
        // Equal by similarity bit pattern (NaN where none).
        #expect(GroupMembers(groups) == GroupMembers(groups))
        #expect(GroupMembers(groups) != members)
        // Stored and read back: the table holds exactly these rows.
        let store = try TestSupport.temporaryStore()
        try store.ingestTransaction(inserting: IngestTransactionTests.source()) { writer in
            for i in 0..<9 { try writer.append(IngestTransactionTests.record(writer.sourceID, i)) }
        }
        try store.savePackedVerdicts(count: 0, { PackedVerdicts(recordId: Int64($0)) }, configHash: "h", configJSON: "{}", groups: members)
        #expect(try store.pool.read { db in
            try String.fetchAll(db, sql: "SELECT kind || ' ' || record_id || ' ' || representative_id FROM duplicate_groups ORDER BY kind, record_id")
        } == ["borderline 6 3", "borderline 8 2", "conflict 1 1", "conflict 5 1", "exact 3 3", "exact 7 1", "near 2 2", "near 4 2", "near 9 2"])
    }
}
