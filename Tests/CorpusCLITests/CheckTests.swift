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

    /// After a whole-store check, a check of a new file compares only the new records with the
    /// stored facts, signatures and findings, and stores exactly what settling every record again
    /// stores: the same groups (a copy joining a record that had none, a question that had one
    /// answer becoming a conflict, near copies of kept records and of each other), the same
    /// recurring sentences (one crossing the threshold with the new answers, its text read from an
    /// earlier record), the same verdicts for the new records. A check limited by --source, and
    /// erasing a record, make the next check settle everything again.
    @Test func anIncrementalCheckStoresWhatSettlingEverythingStores() throws {
        // Deterministic "Chinese" text: characters drawn from a fixed range by a small generator.
        func text(_ seed: UInt64, _ count: Int) -> String {
            var state = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            var out = String.UnicodeScalarView()
            for _ in 0..<count {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                out.append(Unicode.Scalar(UInt32(0x4E00 + (state >> 33) % 3000))!)
            }
            return String(out)
        }
        func row(_ question: String, _ answer: String) -> String {
            #"{"messages":[{"role":"user","content":"\#(question)"},{"role":"assistant","content":"\#(answer)"}]}"#
        }
        let recurring = "如有不适请及时到医院就诊并遵医嘱。", crossing = "本回答仅供参考不能代替医生面诊。"
        var first: [String] = [], second: [String] = []
        for i in 0..<30 {
            var answer = text(1000 + UInt64(i), 40) + "。"
            if i < 6 { answer += recurring }             // recurring in 6 answers already (9 with copies)
            if i >= 6 && i < 10 { answer += crossing }   // 4 answers: below min_records (5)
            first.append(row(text(UInt64(i), 40) + "？", answer))
        }
        first.append(first[3])                                              // 31: an exact copy, a group before
        first.append(row(text(7, 40) + "？", text(77, 30)))                 // 32: record 8's question, another answer
        second.append(first[0])                                              // 33: copy of record 1 (no group before)
        second.append(first[3])                                              // 34: copy of record 4 (group before)
        second.append(row(text(2, 40) + "？", text(55, 30)))                // 35: record 3's question, another answer
        second.append(row(text(7, 40) + "？", text(88, 30)))                // 36: a third answer to record 8's
        var near = text(10, 40)
        near.unicodeScalars.removeLast()
        second.append(row(near + "？", text(1010, 40) + "。"))              // 37: near copy of record 11
        second.append(row(near + "x？", text(1010, 40) + "。"))             // 38: near copy of record 11 or 37
        second.append(row(text(500, 40) + "？", text(501, 40) + "。" + crossing))   // 39, 40: the sentence crosses
        second.append(row(text(502, 40) + "？", text(503, 40) + "。" + crossing))
        second.append(row(text(600, 40) + "？", text(601, 40) + "。"))       // 41: new
        second.append(row(text(600, 40) + "？", text(601, 38) + "。"))       // 42: near copy of 41

        let dir = try TestSupport.temporaryDirectory()
        let a = dir.appendingPathComponent("a.jsonl"), b = dir.appendingPathComponent("b.jsonl")
        try Data((first.joined(separator: "\n") + "\n").utf8).write(to: a)
        try Data((second.joined(separator: "\n") + "\n").utf8).write(to: b)
        let config = dir.appendingPathComponent("checks.json")
        try Data(#"{"boilerplate": {"min_records": 5, "min_share": 0.001}}"#.utf8).write(to: config)
        func store(_ name: String, files: [URL]) throws -> String {
            let db = dir.appendingPathComponent(name).path
            #expect(try TestSupport.run(["init", "--db", db]).status == 0)
            for f in files { #expect(try TestSupport.run(["ingest", "--db", db, f.path]).status == 0) }
            return db
        }
        func check(_ db: String, _ extra: [String] = []) throws -> [String: Any] {
            let result = try TestSupport.run(["check", "--db", db, "--config", config.path, "--json"] + extra)
            #expect(result.status == 0, "\(result.stderr)")
            return try #require(try result.json() as? [String: Any])
        }
        func findings(_ db: String) throws -> [[String]] {
            try CorpusStore(path: db).pool.read { db in
                try [
                    String.fetchAll(db, sql: "SELECT kind || ' ' || record_id || ' ' || representative_id || ' ' || ifnull(similarity, '-') FROM duplicate_groups ORDER BY kind, record_id"),
                    String.fetchAll(db, sql: "SELECT records || ' ' || sentence || ' ' || sentence_hash FROM boilerplate ORDER BY sentence"),
                    String.fetchAll(db, sql: "SELECT record_id || ' ' || ran || ' ' || failed || ' ' || hex(scores) || ' ' || ifnull(details, '-') FROM verdicts WHERE record_id > 32 ORDER BY record_id"),
                    String.fetchAll(db, sql: "SELECT records || ' ' || last_record_id || ' ' || covering FROM check_state"),
                ]
            }
        }
        let twice = try store("twice.db", files: [a])
        #expect(try check(twice)["incremental"] as? Bool == false)
        #expect(try TestSupport.run(["ingest", "--db", twice, b.path]).status == 0)
        let settled = dir.appendingPathComponent("settled.db").path
        try FileManager.default.copyItem(atPath: twice, toPath: settled)
        try CorpusStore(path: settled).pool.write { db in try db.execute(sql: "DELETE FROM check_state") }
        let incremental = try check(twice)
        #expect(incremental["incremental"] as? Bool == true)
        #expect(incremental["records"] as? Int == 10)
        #expect(incremental["context"] as? Int == 42)
        #expect(incremental["facts_read"] as? Int == 32)
        let settledRun = try check(settled)
        #expect(settledRun["incremental"] as? Bool == false)
        // The per-check counts: the kept ones plus the new rows' (0017) equal those summed from every row.
        let counts = try #require(incremental["checks"] as? [String: [String: Int]])
        #expect(counts == settledRun["checks"] as? [String: [String: Int]])
        #expect(counts["exact_duplicate"] == ["checked": 42, "failed": 3])   // 31, 33 and 34
        let found = try findings(twice)
        #expect(found == (try findings(settled)))
        let once = try store("once.db", files: [a, b])
        _ = try check(once)
        let together = try findings(once)
        #expect(found[0] == together[0] && found[1] == together[1] && found[2] == together[2])
        // What the new file brought, as settling everything finds it.
        for member in ["exact 1 1 -", "exact 33 1 -", "exact 34 4 -", "exact 31 4 -", "conflict 3 3 -", "conflict 35 3 -",
                       "conflict 8 8 -", "conflict 32 8 -", "conflict 36 8 -"] {
            #expect(found[0].contains(member), "\(member) in \(found[0])")
        }
        #expect(found[0].contains { $0.hasPrefix("near 37 11 ") }, "\(found[0])")
        #expect(found[0].contains { $0.hasPrefix("near 42 41 ") }, "\(found[0])")
        // Records 1-6, 31 (a copy of 4), 33 (of 1) and 34 (of 4): nine answers.
        #expect(found[1].count == 2 && found[1].contains { $0.hasPrefix("9 \(recurring)") }
                && found[1].contains { $0.hasPrefix("6 \(crossing)") }, "\(found[1])")
        #expect(found[3].count == 1 && found[3].first?.hasPrefix("42 42 ") == true, "\(found[3])")

        // Nothing new: incremental, nothing added. A check limited to a source, then erasing a
        // record: the next check settles everything.
        #expect(try check(twice)["verdicts_added"] as? Int == 0)
        _ = try check(twice, ["--source", "2"])
        #expect(try findings(twice)[3].isEmpty)
        #expect(try check(twice)["incremental"] as? Bool == false)
        #expect(try check(twice)["incremental"] as? Bool == true)
        #expect(try TestSupport.run(["forget", "--db", twice, "41", "--reason", "test"]).status == 0)
        #expect(try findings(twice)[3].isEmpty)
        #expect(try check(twice)["incremental"] as? Bool == false)

        // A stored facts row and a signature gone bad: the incremental check meets them, settles
        // everything instead, and repairs them, so the check after it is incremental again.
        try CorpusStore(path: twice).pool.write { db in
            try db.execute(sql: "UPDATE check_facts SET facts = x'00' WHERE record_id = 2")
            try db.execute(sql: "UPDATE minhash_signatures SET signature = x'0102' WHERE record_id = 3")
        }
        let repairing = try check(twice)
        #expect(repairing["incremental"] as? Bool == false)
        #expect(repairing["signatures_computed"] as? Int == 1)
        #expect(try check(twice)["incremental"] as? Bool == true)
        let repaired = try CorpusStore(path: twice).pool.read { db in
            try [Int.fetchOne(db, sql: "SELECT length(facts) FROM check_facts WHERE record_id = 2"),
                 Int.fetchOne(db, sql: "SELECT length(signature) FROM minhash_signatures WHERE record_id = 3")]
        }
        #expect(repaired[0].map { $0 >= 68 } == true && repaired[1] == 512, "\(repaired)")
    }
}
