import CorpusDB
import Foundation
import GRDB
import TestSupport
import Testing

/// `corpus check` end to end: verdicts per configuration, idempotence, snapshots that select by
/// verdicts, and exports that carry redacted text where PII was found.
@Suite("corpus check, and snapshots by verdicts")
struct CheckTests {
    static let rows = [
        #"{"messages":[{"role":"user","content":"头痛怎么办？"},{"role":"assistant","content":"多休息，多喝水。"}]}"#,
        #"{"messages":[{"role":"user","content":"头痛怎么办?"},{"role":"assistant","content":"多休息,多喝水。"}]}"#,
        #"{"messages":[{"role":"user","content":"可以联系您吗？"},{"role":"assistant","content":"请拨打13812345678预约。"}]}"#,
        #"{"messages":[{"role":"user","content":"好吗？"},{"role":"assistant","content":"好"}]}"#,
        #"{"messages":[{"role":"user","content":"发烧吃什么药？"},{"role":"assistant","content":"体温超过38.5℃可服用退烧药，并及时就医。"}]}"#,
    ]

    @Test func verdictsSnapshotsAndRedaction() throws {
        let dir = try TestSupport.temporaryDirectory()
        let file = dir.appendingPathComponent("qa.jsonl")
        try Data((Self.rows.joined(separator: "\n") + "\n").utf8).write(to: file)
        let db = dir.appendingPathComponent("corpus.db").path
        #expect(try TestSupport.run(["init", "--db", db]).status == 0)
        #expect(try TestSupport.run(["ingest", "--db", db, file.path]).status == 0)

        let first = try #require(try TestSupport.run(["check", "--db", db, "--json"]).json() as? [String: Any])
        let checks = try #require(first["checks"] as? [String: [String: Int]])
        #expect(checks["exact_duplicate"] == ["checked": 5, "failed": 1])      // row 2 equals row 1 after normalization
        #expect(checks["answer_length"] == ["checked": 5, "failed": 1])        // "好"
        #expect(checks["pii"] == ["checked": 5, "failed": 1])                  // the mobile number
        #expect(checks["prompt_length"] == ["checked": 5, "failed": 0])
        #expect(first["verdicts_added"] as? Int == 70)   // 14 checks × 5 records (no tokenizer: no token checks)
        let hash = try #require(first["config_hash"] as? String)
        // The same configuration again changes nothing.
        let again = try #require(try TestSupport.run(["check", "--db", db, "--json"]).json() as? [String: Any])
        #expect(again["verdicts_added"] as? Int == 0)
        #expect(again["config_hash"] as? String == hash)
        // The verdicts say why, naming the kept record.
        let store = try CorpusStore(path: db)
        let duplicate = try store.verdicts(recordId: 2).first { $0.verdict.name == "exact_duplicate" }
        #expect(duplicate?.verdict.detail == "duplicate of record 1")
        #expect(duplicate?.verdict.passed == false)

        // A snapshot with the default checks leaves out the duplicate and the short answer, keeps
        // the record with PII (exports redact it), and records the configuration.
        let snapshot = try #require(try TestSupport.run(["snapshot", "create", "s", "--eval-ratio", "0", "--db", db, "--json"]).json() as? [String: Any])
        #expect(snapshot["records"] as? Int == 3)
        #expect(snapshot["checks"] as? String == hash)
        #expect((snapshot["excluded"] as? [String: Int]) == ["failed_answer_length": 1, "failed_exact_duplicate": 1])
        let none = try #require(try TestSupport.run(["snapshot", "create", "s", "--checks", "none", "--eval-ratio", "0", "--db", db, "--json"]).json() as? [String: Any])
        #expect(none["records"] as? Int == 5)

        let out = dir.appendingPathComponent("export")
        let export = try TestSupport.run(["snapshot", "export", "s@1", "--format", "messages", "--out", out.path, "--db", db])
        #expect(export.status == 0, "\(export.stderr)")
        let text = try String(contentsOf: out.appendingPathComponent("train.jsonl"), encoding: .utf8)
        #expect(text.contains("请拨打[手机号]预约。"))
        #expect(!text.contains("13812345678"))
        let manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("manifest.json"))) as? [String: Any])
        #expect(manifest["redacted"] as? Int == 1)
        // The store keeps the original text.
        #expect(try store.record(id: 3)?.conversation.contains("13812345678") == true)

        // A stricter configuration adds its own verdicts beside the first ones.
        let config = dir.appendingPathComponent("strict.json")
        try Data(#"{"length": {"min_answer_chars": 12}}"#.utf8).write(to: config)
        let strict = try #require(try TestSupport.run(["check", "--db", db, "--config", config.path, "--json"]).json() as? [String: Any])
        #expect(strict["config_hash"] as? String != hash)
        #expect((strict["checks"] as? [String: [String: Int]])?["answer_length"] == ["checked": 5, "failed": 3])
        #expect(try store.checkSummary(configHash: hash).first { $0.name == "answer_length" }?.failed == 1)
        let bad = dir.appendingPathComponent("bad.json")
        try Data(#"{"lenght": {}}"#.utf8).write(to: bad)
        let refused = try TestSupport.run(["check", "--db", db, "--config", bad.path])
        #expect(refused.status == 3)
        #expect(refused.stderr.contains("unknown section 'lenght'"))
        // A share that used to trap (1e300 × records turned into an Int) is an input error.
        try Data(#"{"boilerplate": {"min_share": 1e300}}"#.utf8).write(to: bad)
        let hostile = try TestSupport.run(["check", "--db", db, "--config", bad.path])
        #expect(hostile.status == 3)
        #expect(hostile.stderr.contains("\(bad.path): boilerplate.min_share is 1e+300; it must be a number from 0 to 1"))
        let printed = try TestSupport.run(["check", "--print-config"])
        #expect(printed.stdout.contains("\"min_answer_chars\" : 2"))
    }

    /// A newly ingested file is compared with the corpus through the stored signatures: only its
    /// own records are signed, and its near copy of an earlier record is found.
    @Test func newRecordsAreComparedWithStoredSignatures() throws {
        let dir = try TestSupport.temporaryDirectory()
        let first = dir.appendingPathComponent("a.jsonl"), second = dir.appendingPathComponent("b.jsonl")
        try Data((Self.rows.joined(separator: "\n") + "\n").utf8).write(to: first)
        try Data((#"{"messages":[{"role":"user","content":"发烧吃什么药？"},{"role":"assistant","content":"体温超过38.5℃可以服用退烧药，并及时就医。"}]}"# + "\n"
                  + #"{"messages":[{"role":"user","content":"晚上睡不着怎么办？"},{"role":"assistant","content":"睡前不要喝咖啡，规律作息。"}]}"# + "\n").utf8).write(to: second)
        let db = dir.appendingPathComponent("corpus.db").path
        #expect(try TestSupport.run(["init", "--db", db]).status == 0)
        #expect(try TestSupport.run(["ingest", "--db", db, first.path]).status == 0)
        let one = try #require(try TestSupport.run(["check", "--db", db, "--json"]).json() as? [String: Any])
        #expect(one["signatures_computed"] as? Int == 5)
        #expect(one["signatures_reused"] as? Int == 0)
        #expect(try TestSupport.run(["ingest", "--db", db, second.path]).status == 0)
        let two = try #require(try TestSupport.run(["check", "--db", db, "--source", "2", "--json"]).json() as? [String: Any])
        #expect(two["records"] as? Int == 2)
        #expect(two["signatures_computed"] as? Int == 2)
        #expect(two["signatures_reused"] as? Int == 5)
        #expect(two["verdicts_added"] as? Int == 28)
        let store = try CorpusStore(path: db)
        let near = try store.verdicts(recordId: 6).first { $0.verdict.name == "near_duplicate" }?.verdict
        #expect(near?.passed == false)
        #expect(near?.detail.hasPrefix("near duplicate of record 5 (similarity") == true)
        #expect(try store.verdicts(recordId: 7).first { $0.verdict.name == "near_duplicate" }?.verdict.passed == true)
        let dups = try #require(try TestSupport.run(["dups", "--db", db, "--near", "--json"]).json() as? [String: Any])
        #expect(dups["groups"] as? Int == 1)
        #expect((dups["shown"] as? [[String: Any]])?.first?["representative"] as? Int == 5)
    }

    /// The stored findings of a check streamed in batches of 3 records equal those of one batch:
    /// every verdict row byte for byte, every group, every recurring sentence.
    @Test func batchesDoNotChangeWhatIsStored() throws {
        func stored(batch: String?) throws -> [[String]] {
            let (db, _) = try TestSupport.exampleStore()
            let result = try TestSupport.run(["check", "--db", db, "--json"], environment: batch.map { ["CORPUS_CHECK_BATCH": $0] } ?? [:])
            #expect(result.status == 0, "\(result.stderr)")
            let store = try CorpusStore(path: db)
            return try store.pool.read { db in
                try [
                    String.fetchAll(db, sql: "SELECT record_id || ' ' || ran || ' ' || failed || ' ' || hex(scores) || ' ' || ifnull(details, '-') FROM verdicts ORDER BY record_id"),
                    String.fetchAll(db, sql: "SELECT kind || ' ' || record_id || ' ' || representative_id || ' ' || ifnull(similarity, '-') FROM duplicate_groups ORDER BY kind, record_id"),
                    String.fetchAll(db, sql: "SELECT records || ' ' || sentence FROM boilerplate ORDER BY sentence"),
                    String.fetchAll(db, sql: "SELECT record_id || ' ' || hex(signature) FROM minhash_signatures ORDER BY record_id"),
                ]
            }
        }
        let one = try stored(batch: nil), small = try stored(batch: "3")
        #expect(one[0].count == 26 && one[3].count == 26, "\(one[0].count) verdict rows, \(one[3].count) signatures")
        #expect(small == one)
    }

    /// After a new file, a second check reads the records judged before from their stored facts
    /// and signatures (not their text) and finds the same duplicate groups and boilerplate as one
    /// check of everything, with the same verdicts for the new records; erasing a record erases
    /// its facts.
    @Test func aSecondCheckReadsStoredFactsAndFindsWhatOneCheckFinds() throws {
        let dir = try TestSupport.temporaryDirectory()
        let first = dir.appendingPathComponent("a.jsonl"), second = dir.appendingPathComponent("b.jsonl")
        try Data((Self.rows.joined(separator: "\n") + "\n").utf8).write(to: first)
        try Data(([#"{"messages":[{"role":"user","content":"发烧吃什么药？"},{"role":"assistant","content":"体温超过38.5℃可以服用退烧药，并及时就医。"}]}"#,
                   #"{"messages":[{"role":"user","content":"晚上睡不着怎么办？"},{"role":"assistant","content":"睡前不要喝咖啡，规律作息。"}]}"#,
                   Self.rows[0]].joined(separator: "\n") + "\n").utf8).write(to: second)
        func store(_ name: String) throws -> String {
            let db = dir.appendingPathComponent(name).path
            #expect(try TestSupport.run(["init", "--db", db]).status == 0)
            #expect(try TestSupport.run(["ingest", "--db", db, first.path]).status == 0)
            return db
        }
        func findings(_ db: String) throws -> [[String]] {
            try CorpusStore(path: db).pool.read { db in
                try [
                    String.fetchAll(db, sql: "SELECT kind || ' ' || record_id || ' ' || representative_id || ' ' || ifnull(similarity, '-') FROM duplicate_groups ORDER BY kind, record_id"),
                    String.fetchAll(db, sql: "SELECT records || ' ' || sentence FROM boilerplate ORDER BY sentence"),
                    String.fetchAll(db, sql: "SELECT record_id || ' ' || ran || ' ' || failed || ' ' || hex(scores) || ' ' || ifnull(details, '-') FROM verdicts WHERE record_id > 5 ORDER BY record_id"),
                    String.fetchAll(db, sql: "SELECT record_id || ' ' || hex(facts) FROM check_facts ORDER BY record_id"),
                ]
            }
        }
        let twice = try store("twice.db")
        let one = try #require(try TestSupport.run(["check", "--db", twice, "--json"]).json() as? [String: Any])
        #expect(one["facts_read"] as? Int == 0)
        #expect(try TestSupport.run(["ingest", "--db", twice, second.path]).status == 0)
        let two = try #require(try TestSupport.run(["check", "--db", twice, "--json"]).json() as? [String: Any])
        #expect(two["records"] as? Int == 3)
        #expect(two["judged_before"] as? Int == 5)
        #expect(two["context"] as? Int == 8)
        #expect(two["facts_read"] as? Int == 5)
        #expect(two["signatures_reused"] as? Int == 5)

        let once = try store("once.db")
        #expect(try TestSupport.run(["ingest", "--db", once, second.path]).status == 0)
        #expect(try TestSupport.run(["check", "--db", once, "--json"]).status == 0)
        let a = try findings(twice), b = try findings(once)
        #expect(a == b)
        #expect(a[0].contains("exact 8 1 -"), "record 8 copies record 1: \(a[0])")
        #expect(a[3].count == 8, "one facts row a record")

        #expect(try TestSupport.run(["forget", "--db", twice, "1", "--reason", "test"]).status == 0)
        // Record 8 is an identical copy of record 1, withdrawn and erased with it.
        #expect(try findings(twice)[3].map { $0.split(separator: " ")[0] } == ["2", "3", "4", "5", "6", "7"])
    }
}
