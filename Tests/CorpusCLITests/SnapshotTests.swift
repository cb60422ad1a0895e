import CorpusDB
import Foundation
import GRDB
import TestSupport
import Testing

/// Snapshots, export, lineage and forget, end to end through the `corpus` binary on real files
/// (the bundled examples and ../shared/data when present).
@Suite("Snapshots, export, lineage, forget")
struct SnapshotTests {
    let medical = TestSupport.packageRoot.appendingPathComponent("examples/medical/medical_qa.csv").path
    let legal = TestSupport.packageRoot.appendingPathComponent("examples/legal/legal_qa.jsonl").path
    static let legalMap = "user=query,assistant=response"

    func store(_ files: [[String]]) throws -> String {
        let db = try TestSupport.temporaryDirectory().appendingPathComponent("corpus.db").path
        #expect(try TestSupport.run(["init", "--db", db]).status == 0)
        for arguments in files {
            let result = try TestSupport.run(["ingest", "--db", db] + arguments)
            #expect(result.status == 0, "\(result.stderr)")
        }
        return db
    }

    func run(_ arguments: [String], _ db: String) throws -> [String: Any] {
        let result = try TestSupport.run(arguments + ["--db", db, "--json"])
        #expect(result.status == 0, "\(arguments): \(result.stderr)")
        return try #require(try result.json() as? [String: Any])
    }

    var legalArguments: [String] { [legal, "--map", Self.legalMap] }

    /// The same files ingested in the other order into a fresh store give the same hash, splits
    /// and counts; record ids differ.
    @Test func hashIsIndependentOfIngestOrder() throws {
        let a = try store([[medical], legalArguments])
        let b = try store([legalArguments, [medical]])
        let sa = try run(["snapshot", "create", "med", "--eval-ratio", "0.2", "--seed", "3"], a)
        let sb = try run(["snapshot", "create", "med", "--eval-ratio", "0.2", "--seed", "3"], b)
        #expect(sa["hash"] as? String == sb["hash"] as? String)
        #expect(sa["records"] as? Int == 24)  // 14 medical + 10 legal distinct conversations (counted with Python)
        #expect(sa["train"] as? Int == sb["train"] as? Int)
        #expect((sa["excluded"] as? [String: Int]) == ["duplicate": 2])
        // A different seed gives a different split, so a different hash.
        let other = try run(["snapshot", "create", "med", "--eval-ratio", "0.2", "--seed", "4"], a)
        #expect(other["hash"] as? String != sa["hash"] as? String)
        #expect(other["version"] as? Int == 2)
        #expect(other["label"] as? String == "med@2")
        // The hash is the documented function of the member list (docs/SNAPSHOTS.md).
        let store = try CorpusStore(path: a)
        let members = try store.members(of: try store.snapshot("med@1"))
        #expect(members.map(\.contentHash) == members.map(\.contentHash).sorted())
        let lines = members.map { "\($0.contentHash) \($0.split)\n" }.joined()
        let file = try TestSupport.temporaryDirectory().appendingPathComponent("members.txt")
        try Data(lines.utf8).write(to: file)
        #expect(try TestSupport.shell("sha256sum '\(file.path)' | cut -d' ' -f1") == sa["hash"] as? String)
    }

    /// Adding records never moves existing ones between train and eval.
    @Test(.needsShared("data/alpaca_zh_10k.json")) func splitIsStableUnderAddedRecords() throws {
        let alpaca = try TestInputs.shared("data/alpaca_zh_10k.json").path
        let db = try store([[medical]])
        _ = try run(["snapshot", "create", "s", "--eval-ratio", "0.3"], db)
        let ingest = try TestSupport.run(["ingest", "--db", db, alpaca])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let second = try run(["snapshot", "create", "s", "--eval-ratio", "0.3"], db)
        let store = try CorpusStore(path: db)
        let before = Dictionary(uniqueKeysWithValues: try store.members(of: try store.snapshot("s@1")).map { ($0.contentHash, $0.split) })
        let after = Dictionary(uniqueKeysWithValues: try store.members(of: try store.snapshot("s@2")).map { ($0.contentHash, $0.split) })
        #expect(before.count == 14)
        #expect(after.count == second["records"] as? Int)
        #expect(after.count > 10_000)
        for (hash, split) in before { #expect(after[hash] == split) }
        // About 30% eval on the large set.
        let eval = Double(after.values.filter { $0 == "eval" }.count) / Double(after.count)
        #expect(abs(eval - 0.3) < 0.02)
    }

    @Test func immutableAndTamperEvident() throws {
        let db = try store([[medical]])
        _ = try run(["snapshot", "create", "m"], db)
        let queue = try DatabaseQueue(path: db)
        for sql in ["UPDATE snapshots SET hash = 'x'", "DELETE FROM snapshots", "UPDATE snapshot_records SET split = 'eval'",
                    "DELETE FROM snapshot_records", "INSERT INTO snapshot_records VALUES (1, 99, 1, 'x', 'train')"] {
            do {
                try queue.write { try $0.execute(sql: sql) }
                if !sql.hasPrefix("INSERT") { Issue.record("\(sql) was allowed") }
            } catch let error as DatabaseError {
                #expect(error.message?.contains("immutable") == true || sql.hasPrefix("INSERT"), "\(sql): \(error)")
            }
        }
        // An INSERT of a member after the fact changes the member list: verify notices.
        var verify = try TestSupport.run(["snapshot", "verify", "m", "--db", db])
        #expect(verify.status == 6)
        // Edit one record's text directly, as a tamperer would.
        let db2 = try store([[medical]])
        _ = try run(["snapshot", "create", "m"], db2)
        try DatabaseQueue(path: db2).write { db in
            try db.execute(sql: #"UPDATE records SET conversation = replace(conversation, '"content":"', '"content":"!') WHERE id = 1"#)
        }
        verify = try TestSupport.run(["snapshot", "verify", "m", "--db", db2])
        #expect(verify.status == 6)
        #expect(verify.stdout.contains("m@1: CHANGED"))
        #expect(verify.stdout.contains("record 1 (position"))
        #expect(verify.stderr.contains("m@1 changed since it was made"))
        let json = try #require(try TestSupport.run(["snapshot", "verify", "m", "--db", db2, "--json"]).json() as? [[String: Any]])
        let mismatches = try #require(json.first?["mismatches"] as? [[String: Any]])
        #expect(mismatches.map { $0["record"] as? Int } == [1])
    }

    /// Export in each format, ingest the export into a fresh store: the same content hashes.
    /// Exporting twice gives identical bytes.
    @Test func exportRoundTripAndDatasetInfo() throws {
        var files = [[medical], legalArguments]
        if let sharegpt = TestSupport.sharedFile("sharegpt_zh_1k.jsonl") { files.append([sharegpt]) }
        let db = try store(files)
        let snapshot = try run(["snapshot", "create", "x", "--eval-ratio", "0.1"], db)
        let store = try CorpusStore(path: db)
        let expected = Set(try store.members(of: try store.snapshot("x")).map(\.contentHash))
        for format in ["messages", "sharegpt", "alpaca"] {
            let out = try TestSupport.temporaryDirectory().appendingPathComponent("export-\(format)")
            let report = try run(["snapshot", "export", "x", "--format", format, "--out", out.path], db)
            let again = try run(["snapshot", "export", "x", "--format", format, "--out", out.path + "-again"], db)
            for name in ["train.jsonl", "eval.jsonl", "manifest.json", "dataset_info.json"] {
                let a = try Data(contentsOf: out.appendingPathComponent(name))
                let b = try Data(contentsOf: URL(fileURLWithPath: out.path + "-again").appendingPathComponent(name))
                #expect(a == b, "\(format) \(name) differs between two exports")
            }
            #expect((report["files"] as? [String: Any])?.keys.sorted() == ["eval.jsonl", "train.jsonl"])
            #expect((again["files"] as? [String: [String: Any]])?["train.jsonl"]?["sha256"] as? String
                == (report["files"] as? [String: [String: Any]])?["train.jsonl"]?["sha256"] as? String)

            let info = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("dataset_info.json"))) as? [String: [String: Any]])
            #expect(info.keys.sorted() == ["x_1_eval", "x_1_train"])
            #expect(info["x_1_train"]?["file_name"] as? String == "train.jsonl")
            #expect(info["x_1_train"]?["formatting"] as? String == (format == "alpaca" ? "alpaca" : "sharegpt"))
            let columns = try #require(info["x_1_train"]?["columns"] as? [String: String])
            switch format {
            case "alpaca": #expect(columns == ["prompt": "instruction", "query": "input", "response": "output", "system": "system", "history": "history"])
            case "sharegpt": #expect(columns == ["messages": "conversations", "system": "system"])
            default: #expect(columns == ["messages": "messages"])
            }
            let manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("manifest.json"))) as? [String: Any])
            #expect(manifest["hash"] as? String == snapshot["hash"] as? String)
            #expect(manifest["format"] as? String == format)

            let fresh = try self.store([[out.appendingPathComponent("train.jsonl").path], [out.appendingPathComponent("eval.jsonl").path]])
            let roundTrip = try CorpusStore(path: fresh)
            let hashes = Set(try roundTrip.records().map(\.contentHash))
            let skipped = (report["skipped"] as? [String: Int])?.values.reduce(0, +) ?? 0
            if format == "alpaca" {
                // Conversations that are not user/assistant pairs (tool turns) are left out of alpaca.
                #expect(hashes.isSubset(of: expected))
                #expect(hashes.count == expected.count - skipped)
            } else {
                #expect(skipped == 0)
                #expect(hashes == expected)
            }
        }
    }

    /// --out writes only its four file names inside the folder: a symlink planted there is
    /// replaced, the file it pointed to is untouched; a file given as --out is refused.
    @Test func exportStaysInsideItsFolder() throws {
        let db = try store([[medical]])
        _ = try run(["snapshot", "create", "m"], db)
        let dir = try TestSupport.temporaryDirectory()
        let outside = dir.appendingPathComponent("precious.txt")
        try Data("keep me".utf8).write(to: outside)
        let out = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: out.appendingPathComponent("train.jsonl"), withDestinationURL: outside)
        let result = try TestSupport.run(["snapshot", "export", "m", "--format", "messages", "--out", out.path, "--db", db])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try String(contentsOf: outside, encoding: .utf8) == "keep me")
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path).sorted() == ["dataset_info.json", "eval.jsonl", "manifest.json", "train.jsonl"])
        let refused = try TestSupport.run(["snapshot", "export", "m", "--format", "messages", "--out", outside.path, "--db", db])
        #expect(refused.status == 3)
        #expect(refused.stderr.contains("is not a folder"))
    }

    @Test func forgetEndToEnd() throws {
        let db = try store([[medical]])
        let first = try run(["snapshot", "create", "m", "--eval-ratio", "0"], db)
        #expect(first["records"] as? Int == 14)
        let forget = try run(["forget", "2", "--reason", "patient withdrew consent"], db)
        // Record 6 is the same question and answer ingested again (the example's duplicate row):
        // it is withdrawn with record 2, or it would take its place in the next snapshot.
        #expect(forget["withdrawn"] as? [Int] == [2, 6])
        #expect(forget["identical_copies"] as? [Int] == [6])
        #expect((forget["snapshots"] as? [[String: Any]])?.map { $0["snapshot"] as? String } == ["m@1"])
        // The text is erased, the hash kept.
        let store = try CorpusStore(path: db)
        let record = try #require(try store.record(id: 2))
        #expect(record.conversation == #"{"messages":[]}"#)
        #expect(record.contentHash.count == 64)
        // The old snapshot verifies as intact, reporting the withdrawal; a new one leaves it out.
        let verify = try TestSupport.run(["snapshot", "verify", "m", "--db", db])
        #expect(verify.status == 0)
        #expect(verify.stdout.contains("withdrawn since (removal requests, not corruption): records 2"))
        let second = try run(["snapshot", "create", "m", "--eval-ratio", "0"], db)
        #expect(second["records"] as? Int == 13)
        #expect((second["excluded"] as? [String: Int]) == ["withdrawn": 2])
        let diff = try run(["snapshot", "diff", "m@1", "m@2"], db)
        #expect((diff["removed"] as? [[String: Any]])?.map { $0["record"] as? Int } == [2])
        let lineage = try run(["lineage", "record", "2"], db)
        #expect((lineage["snapshots"] as? [[String: Any]])?.map { $0["snapshot"] as? String } == ["m@1"])
        #expect((lineage["withdrawn"] as? [String: Any])?["reason"] as? String == "patient withdrew consent")
        // Exports of the old snapshot leave the withdrawn record out.
        let out = try TestSupport.temporaryDirectory().appendingPathComponent("e")
        let export = try run(["snapshot", "export", "m@1", "--format", "messages", "--out", out.path], db)
        #expect((export["skipped"] as? [String: Int]) == ["withdrawn": 1])
        // Forgetting again reports it as already withdrawn; every step is in the audit log.
        let again = try run(["forget", "2", "--reason", "again"], db)
        #expect(again["already_withdrawn"] as? [Int] == [2, 6])
        let log = try #require(try TestSupport.run(["log", "--db", db, "--json"]).json() as? [[String: Any]])
        #expect(log.compactMap { $0["command"] as? String }.filter { $0 != "ingest" && $0 != "init" }
            == ["snapshot create", "forget", "snapshot create", "snapshot export", "forget"])
        let source = try run(["lineage", "source", "1"], db)
        #expect((source["snapshots"] as? [[String: Any]])?.map { $0["records"] as? Int } == [14, 13])
        let missing = try TestSupport.run(["forget", "999", "--reason", "x", "--db", db])
        #expect(missing.status == 5)
    }

    /// After `forget`, none of the record's text is left in the database file, its write-ahead log
    /// or shared-memory file (freed page space included: secure_delete), nor in its MinHash
    /// signatures (docs/RELIABILITY.md).
    @Test func forgetLeavesNoTraceInTheFiles() throws {
        let db = try store([[medical]])
        #expect(try TestSupport.run(["check", "--db", db]).status == 0)
        let before = try CorpusStore(path: db)
        let record = try #require(try before.record(id: 3))
        let conversation = try #require(try JSONSerialization.jsonObject(with: Data(record.conversation.utf8)) as? [String: Any])
        let texts = (conversation["messages"] as? [[String: Any]] ?? []).compactMap { $0["content"] as? String }
        #expect(texts.count == 2)
        // Pieces of six characters (18 bytes of Chinese) of every message: each is unique enough.
        var needles: [String] = []
        for text in texts {
            let characters = Array(text)
            for start in stride(from: 0, to: characters.count - 6, by: 6) {
                let piece = String(characters[start..<(start + 6)])
                // Stored as JSON: a piece with a character JSON escapes would not be found as it is.
                if !piece.contains(where: { $0 == "\n" || $0 == "\"" || $0 == "\\" }) { needles.append(piece) }
            }
        }
        #expect(needles.count >= 10)
        func found(_ needle: String) throws -> Bool {
            let bytes = Data(needle.utf8)
            for path in [db, db + "-wal", db + "-shm"] where FileManager.default.fileExists(atPath: path) {
                if try Data(contentsOf: URL(fileURLWithPath: path)).range(of: bytes) != nil { return true }
            }
            return false
        }
        for needle in needles { #expect(try found(needle)) }   // the test can fail: the text is there before
        #expect(try before.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM minhash_signatures WHERE record_id = 3") } == 1)
        // This process keeps the store open meanwhile, as `corpus serve` or a report might.
        let forget = try run(["forget", "3", "--reason", "patient withdrew consent"], db)
        #expect(forget["withdrawn"] as? [Int] == [3])
        for needle in needles { #expect(try !found(needle), "\(needle) is still in the store's files") }
        #expect(try before.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM minhash_signatures WHERE record_id = 3") } == 0)
    }
}
