import CorpusDB
import Foundation
import GRDB
import TestSupport
import Testing

@Suite("The models table and the model fingerprint")
struct ModelStoreTests {
    static func model(_ name: String, fingerprint: String = String(repeating: "a", count: 64), path: String = "/models/x.gguf") -> RegisteredModel {
        RegisteredModel(name: name, path: path, format: "gguf", fingerprint: fingerprint, architecture: "llama",
                        parameters: 680, config: #"{"hidden_size":8}"#, addedAt: Timestamp.now(), toolVersion: CorpusVersion.string)
    }

    @Test func exactColumns() throws {
        let store = try TestSupport.temporaryStore()
        try store.pool.read { db in
            let columns = try Row.fetchAll(db, sql: "PRAGMA table_info(models)").map { row -> String in
                let name: String = row["name"], type: String = row["type"], notNull: Int = row["notnull"], pk: Int = row["pk"]
                return "\(name) \(type)\(notNull == 1 ? " NOT NULL" : "")\(pk == 1 ? " PK" : "")"
            }
            #expect(columns == [
                "id INTEGER PK", "name TEXT NOT NULL", "path TEXT NOT NULL", "format TEXT NOT NULL",
                "fingerprint TEXT NOT NULL", "architecture TEXT NOT NULL", "parameters INTEGER NOT NULL",
                "config TEXT NOT NULL", "added_at TEXT NOT NULL", "tool_version TEXT NOT NULL",
            ])
            let indexes = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'models' ORDER BY name")
            #expect(indexes == ["models_fingerprint", "sqlite_autoindex_models_1"])
        }
    }

    @Test func namesAreUnique() throws {
        let store = try TestSupport.temporaryStore()
        try store.pool.write { db in
            var a = Self.model("smol")
            try a.insert(db)
            #expect(a.id == 1)
        }
        do {
            try store.pool.write { db in
                var b = Self.model("smol", fingerprint: String(repeating: "b", count: 64))
                try b.insert(db)
            }
            Issue.record("a second model named smol was inserted")
        } catch let error as DatabaseError {
            #expect(error.resultCode == .SQLITE_CONSTRAINT)
            #expect(error.message?.contains("models.name") == true)
        }
        #expect(try store.allModels().count == 1)
    }

    @Test func registerAddsReportsOrRefuses() throws {
        let store = try TestSupport.temporaryStore()
        let first = try store.register(Self.model("smol"))
        #expect(first.added)
        #expect(first.model.id == 1)
        let again = try store.register(Self.model("smol", path: "/elsewhere/x.gguf"))
        #expect(!again.added)
        #expect(again.model == first.model)
        do {
            _ = try store.register(Self.model("smol", fingerprint: String(repeating: "c", count: 64), path: "/models/other.gguf"))
            Issue.record("a name was taken twice")
        } catch let error as CorpusDBError {
            #expect(error.code == .conflict)
            #expect(error.message.hasPrefix("/models/other.gguf: the name \"smol\" is already taken by model 1"))
            #expect(error.message.contains("--name"))
        }
        let second = try store.register(Self.model("smol-2", fingerprint: String(repeating: "c", count: 64)))
        #expect(second.model.id == 2)
        #expect(try store.allModels().map(\.name) == ["smol", "smol-2"])
        #expect(try store.model(named: "smol-2") == second.model)
        #expect(try store.model(id: 1) == first.model)
        #expect(try store.model(id: 3) == nil)
        #expect(try store.model(reference: "2") == second.model)
        #expect(try store.model(reference: "smol") == first.model)
        #expect(try store.model(reference: "99999999999999999999") == nil)
        #expect(try store.models(fingerprint: String(repeating: "a", count: 64)).map(\.id) == [1])
    }

    @Test(arguments: ["", "123", "a/b"])
    func constraintsRejectBadNames(_ name: String) throws {
        #expect(RegisteredModel.problem(withName: name) != nil)
        let store = try TestSupport.temporaryStore()
        #expect(throws: DatabaseError.self) {
            try store.pool.write { db in
                var m = Self.model(name)
                try m.insert(db)
            }
        }
    }

    @Test func constraintsRejectBadValues() throws {
        #expect(RegisteredModel.problem(withName: "SmolLM2-135M-Instruct.Q4_1") == nil)
        #expect(RegisteredModel.problem(withName: "1b") == nil)
        let store = try TestSupport.temporaryStore()
        var bad = [Self.model("f"), Self.model("h"), Self.model("p")]
        bad[0].format = "bin"
        bad[1].fingerprint = "abc"
        bad[2].parameters = 0
        for var m in bad {
            #expect(throws: DatabaseError.self, "\(m.name)") { try store.pool.write { db in try m.insert(db) } }
        }
        #expect(try store.allModels().isEmpty)
    }

    /// Runs and adapters will reference models(id): an id is never reused and never changes.
    @Test func idsAreStable() throws {
        let store = try TestSupport.temporaryStore()
        _ = try store.register(Self.model("a"))
        _ = try store.register(Self.model("b"))
        try store.pool.write { db in try db.execute(sql: "DELETE FROM models WHERE id = 2") }
        #expect(try store.register(Self.model("c")).model.id == 3)
        for sql in ["UPDATE models SET id = 10 WHERE id = 1",
                    "UPDATE models SET fingerprint = '\(String(repeating: "d", count: 64))' WHERE id = 1",
                    "UPDATE models SET parameters = 5 WHERE id = 1"] {
            do {
                try store.pool.write { db in try db.execute(sql: sql) }
                Issue.record("allowed: \(sql)")
            } catch let error as DatabaseError {
                #expect(error.message?.contains("never change") == true)
            }
        }
        try store.pool.write { db in try db.execute(sql: "UPDATE models SET name = 'renamed' WHERE id = 1") }
        #expect(try store.model(id: 1)?.name == "renamed")
    }

    /// A store made by a build that knew only 0001 gains the models table on opening.
    @Test func upgradesAVersionOneStore() throws {
        let path = try TestSupport.temporaryDirectory().appendingPathComponent("old.db").path
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)")
            try db.execute(sql: try #require(Migrations.all.first).sql)
            try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('0001_initial')")
        }
        try queue.close()
        let store = try CorpusStore(path: path)
        #expect(try store.schemaVersion() == Migrations.latestVersion)
        #expect(try store.allModels().isEmpty)
        #expect(try store.register(Self.model("a")).model.id == 1)
    }

    @Test func fingerprintOfOneFileIsItsHash() {
        let sha = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
        #expect(ModelFingerprint.combine([("model.safetensors", sha)]) == sha)
    }

    /// printf 'model-00001-of-00002.safetensors <sha256 of "a">\nmodel-00002-of-00002.safetensors <sha256 of "b">\n' | sha256sum
    @Test func fingerprintOfShardsHashesSortedLines() {
        let a = ("model-00001-of-00002.safetensors", "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb")
        let b = ("model-00002-of-00002.safetensors", "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d")
        let expected = "6c7b78fe12624fa9e233056efef3d9e30aab66506cfcf594194d7270b21199ce"
        #expect(ModelFingerprint.combine([a, b]) == expected)
        #expect(ModelFingerprint.combine([b, a]) == expected)
    }
}
