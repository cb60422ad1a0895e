import CorpusDB
import Foundation
import GRDB
import TestSupport
import Testing

@Suite("The store: creation, migrations, schema checks")
struct StoreTests {
    @Test func generatedMigrationsMatchTheSQLFiles() throws {
        let dir = TestSupport.packageRoot.appendingPathComponent("migrations")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".sql") }.sorted()
        #expect(files.map { String($0.dropLast(4)) } == Migrations.all.map(\.identifier),
                "run scripts/gen-migrations.sh after changing migrations/")
        for (file, migration) in zip(files, Migrations.all) {
            let text = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
            #expect(text == migration.sql + (text.hasSuffix("\n") && !migration.sql.hasSuffix("\n") ? "\n" : ""),
                    "migrations/\(file) differs from the embedded copy; run scripts/gen-migrations.sh")
        }
    }

    @Test func createsWALStoreWithForeignKeys() throws {
        let store = try TestSupport.temporaryStore()
        #expect(try store.schemaVersion() == Migrations.latestVersion)
        try store.pool.read { db in
            #expect(try String.fetchOne(db, sql: "PRAGMA journal_mode") == "wal")
            #expect(try Int.fetchOne(db, sql: "PRAGMA foreign_keys") == 1)
            #expect(try Int.fetchOne(db, sql: "PRAGMA page_size") == 16384)
            let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'grdb%' ORDER BY name")
            #expect(tables == ["adapters", "audit_log", "boilerplate", "check_configs", "check_facts", "check_state", "duplicate_groups", "eval_items", "evals", "minhash_signatures", "models", "records", "rejects", "run_metrics", "runs", "served_requests", "snapshot_records", "snapshots", "sources", "sqlite_sequence", "verdicts", "withdrawals"])
        }
        #expect(try store.status() == StoreStatus(schemaVersion: 17, sources: 0, records: 0, rejects: 0))
        #expect(try store.integrityProblems().isEmpty)
    }

    @Test func missingStoreSaysRunInit() throws {
        let path = try TestSupport.temporaryDirectory().appendingPathComponent("none.db").path
        #expect(throws: CorpusDBError.self) { try CorpusStore(path: path) }
        do { _ = try CorpusStore(path: path) } catch let error as CorpusDBError {
            #expect(error.code == .notInitialized)
            #expect(error.message.contains("corpus init"))
        }
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func newerSchemaIsRefused() throws {
        let store = try TestSupport.temporaryStore()
        try store.pool.write { db in
            try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('9999_from_the_future')")
        }
        do {
            _ = try CorpusStore(path: store.path)
            Issue.record("a newer store was opened")
        } catch let error as CorpusDBError {
            #expect(error.code == .newerSchema)
            #expect(error.message.contains("9999_from_the_future"))
            #expect(error.message.contains("upgrade corpus"))
        }
    }

    @Test func notASQLiteFile() throws {
        let dir = try TestSupport.temporaryDirectory()
        let path = try TestSupport.write("this is not a database, just text\n", to: "x.db", in: dir)
        do {
            _ = try CorpusStore(path: path)
            Issue.record("a text file was opened as a store")
        } catch let error as CorpusDBError {
            #expect(error.code == .cannotOpen)
        }
    }

    @Test func foreignKeysAreEnforced() throws {
        let store = try TestSupport.temporaryStore()
        #expect(throws: DatabaseError.self) {
            try store.pool.write { db in
                var r = Record(sourceId: 42, rowIndex: 0, locator: "[0]", line: 1, byteOffset: 0, byteLength: 1,
                               conversation: "{}", original: "{}", tags: "{}", contentHash: "x")
                try r.insert(db)
            }
        }
    }

    @Test func tagFiltersQueryJSON() throws {
        let store = try TestSupport.temporaryStore()
        let s = Source(path: "/x.csv", sha256: "ab", bytes: 1, format: "csv", encoding: "UTF-8", encodingConfidence: 100,
                       encodingMethod: "utf8", mapping: "{}", importedAt: Timestamp.now(), toolVersion: CorpusVersion.string)
        try store.ingestTransaction(inserting: s) { writer in
            for (i, dept) in ["内科", "外科", "内科"].enumerated() {
                let c = Conversation(messages: [Message(role: .user, content: "q\(i)"), Message(role: .assistant, content: "a")])
                try writer.append(Record(sourceId: writer.sourceID, rowIndex: i + 1, locator: "row \(i + 1)", line: i + 2, byteOffset: Int64(i * 10),
                                         byteLength: 10, conversation: CanonicalJSON.string(c), original: "{}",
                                         tags: CanonicalJSON.object(["department": dept, "a\"b": "x"]), contentHash: CanonicalJSON.contentHash(c)))
            }
        }
        #expect(try store.records(tags: [TagFilter(key: "department", value: "内科")]).map(\.rowIndex) == [1, 3])
        #expect(try store.records(tags: [TagFilter(key: "a\"b", value: "x")]).count == 3)
        #expect(try store.records(tags: [TagFilter(key: "department", value: "眼科")]).isEmpty)
        #expect(try store.records(limit: 1, offset: 1).map(\.rowIndex) == [2])
    }
}
