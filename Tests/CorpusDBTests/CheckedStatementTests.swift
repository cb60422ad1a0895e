@testable import CorpusDB
import Foundation
import GRDB
import TestSupport
import Testing

@Suite("SQLite C calls: every return code is checked")
struct CheckedStatementTests {
    @Test func aFailedBindNamesTheStatementAndSQLitesMessage() throws {
        let store = try TestSupport.temporaryStore()
        try store.pool.write { db in
            let statement = CheckedStatement(try db.makeStatement(sql: "INSERT INTO check_configs (hash, config, created_at)\n VALUES (?, ?, ?)"),
                                              db, path: store.path)
            do {
                try statement.bind(9, "x")
                Issue.record("binding parameter 9 of 3 did not throw")
            } catch let error as CorpusDBError {
                #expect(error.code == .cannotOpen)
                #expect(error.message.contains("binding parameter 9 of `INSERT INTO check_configs (hash, config, created_at) VALUES (?, ?, ?)`"))
                #expect(error.message.contains("column index out of range"))
                #expect(error.message.hasPrefix(store.path))
            }
            #expect(throws: CorpusDBError.self) { try statement.bind(0, Int64(1)) }
            #expect(throws: CorpusDBError.self) { try statement.bind(4, nil as Double?) }
            // 21 is SQLITE_MISUSE: any code but SQLITE_OK is an error.
            #expect(throws: CorpusDBError.self) { try statement.check(21, "calling") }
            try statement.check(0, "calling")
        }
    }

    @Test func aVerdictOfAMissingRecordIsACorpusDBErrorAndNothingIsKept() throws {
        let store = try TestSupport.temporaryStore()
        do {
            try store.saveVerdicts([CheckVerdict(recordId: 999, name: "pii", passed: true, score: nil, detail: "")],
                                   configHash: "h", configJSON: "{}")
            Issue.record("a verdict of a missing record was stored")
        } catch let error as CorpusDBError {
            #expect(error.message.contains("storing the verdicts of record 999 failed"))
            #expect(error.message.contains("FOREIGN KEY constraint failed"))
        }
        #expect(try store.checkConfiguration(hash: "h") == nil)
    }
}
