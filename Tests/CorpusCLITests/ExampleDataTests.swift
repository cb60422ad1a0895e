import CorpusDB
import Foundation
import TestSupport
import Testing

/// End-to-end: the real `corpus` binary on the bundled examples (written for this project by
/// scripts/make-example-data.py). Expected offsets and hashes were computed independently with
/// Python and sha256sum.
@Suite("corpus binary on the bundled examples")
struct ExampleDataTests {
    let medical = TestSupport.packageRoot.appendingPathComponent("examples/medical/medical_qa.csv").path
    let legal = TestSupport.packageRoot.appendingPathComponent("examples/legal/legal_qa.jsonl").path

    func freshStore() throws -> String {
        let db = try TestSupport.temporaryDirectory().appendingPathComponent("corpus.db").path
        let result = try TestSupport.run(["init", "--db", db])
        #expect(result.status == 0, "\(result.stderr)")
        return db
    }

    @Test func initAndEmptyStatus() throws {
        let db = try freshStore()
        let status = try TestSupport.run(["status", "--db", db, "--json"]).json() as? [String: Any]
        #expect(status?["schema_version"] as? Int == 17)
        #expect(status?["sources"] as? Int == 0)
        #expect(status?["records"] as? Int == 0)
        #expect(status?["rejects"] as? Int == 0)
    }

    @Test func commandsWithoutAStoreSayRunInit() throws {
        let db = try TestSupport.temporaryDirectory().appendingPathComponent("missing.db").path
        let result = try TestSupport.run(["status", "--db", db])
        #expect(result.status == 4)
        #expect(result.stderr.contains("corpus init"))
        #expect(!FileManager.default.fileExists(atPath: db))
    }

    @Test func corpusDBEnvironmentVariable() throws {
        let db = try freshStore()
        let result = try TestSupport.run(["ingest", medical], environment: ["CORPUS_DB": db])
        #expect(result.status == 0, "\(result.stderr)")
        let status = try TestSupport.run(["status", "--json"], environment: ["CORPUS_DB": db]).json() as? [String: Any]
        #expect(status?["records"] as? Int == 15)
    }

    @Test func medicalGB18030CSV() throws {
        let db = try freshStore()
        let ingest = try TestSupport.run(["ingest", "--db", db, medical])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        #expect(ingest.stdout.contains("17 rows → 15 records, 2 rejects"))

        let sources = try #require(try TestSupport.run(["sources", "--db", db, "--json"]).json() as? [[String: Any]])
        #expect(sources.count == 1)
        #expect(sources[0]["sha256"] as? String == "fb10aace00aa196fd852218bc7117dd99b18bf27282250aef3c7aa5686ec3467")
        #expect(sources[0]["format"] as? String == "csv")
        #expect(sources[0]["encoding"] as? String == "GB18030")
        #expect(sources[0]["rows"] as? Int == 17)
        #expect(sources[0]["records"] as? Int == 15)
        #expect(sources[0]["rejects"] as? Int == 2)

        let rejects = try #require(try TestSupport.run(["rejects", "--db", db, "--json"]).json() as? [[String: Any]])
        #expect(rejects.map { $0["reason"] as? String } == ["undecodable_bytes", "empty_answer"])
        #expect(rejects[0]["locator"] as? String == "row 11")
        #expect(rejects[0]["byte_offset"] as? Int == 2035)
        #expect((rejects[0]["detail"] as? String)?.contains("0xFF at byte offset 2162") == true)
        #expect(rejects[1]["locator"] as? String == "row 16")
        #expect(rejects[1]["byte_offset"] as? Int == 3034)

        let records = try #require(try TestSupport.run(["records", "--db", db, "--json"]).json() as? [[String: Any]])
        #expect(records.count == 15)
        let first = records[0]
        #expect(first["locator"] as? String == "row 1")
        #expect(first["byte_offset"] as? Int == 29)
        #expect(first["byte_length"] as? Int == 201)
        #expect((first["tags"] as? [String: String]) == ["department": "内科"])
        let messages = try #require(first["messages"] as? [[String: String]])
        #expect(messages.map { $0["role"] } == ["user", "assistant"])
        #expect(messages[0]["content"] == "高血压患者能吃党参吗？\n我有高血压，最近想用党参泡水喝，可以吗？")
        // The row with an embedded newline keeps it, and starts on line 18.
        let last = try #require(records.last)
        #expect(last["line"] as? Int == 18)
        #expect((last["messages"] as? [[String: String]])?.first?["content"] == "伤口多久拆线\n膝盖缝了五针，什么时候可以拆线？\n伤口有点红。")
        // The exact duplicate (row 6 repeats row 2) is kept as a record with the same content hash.
        #expect(records[1]["content_hash"] as? String == records[5]["content_hash"] as? String)
        #expect(Set(records.compactMap { $0["content_hash"] as? String }).count == 14)
    }

    @Test func lossyKeepsTheRowAndFlagsIt() throws {
        let db = try freshStore()
        let ingest = try TestSupport.run(["ingest", "--db", db, "--lossy", medical])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let records = try #require(try TestSupport.run(["records", "--db", db, "--json"]).json() as? [[String: Any]])
        #expect(records.count == 16)
        let flagged = records.filter { ($0["flags"] as? [String]) == ["lossy_decoding"] }
        #expect(flagged.count == 1)
        #expect(flagged.first?["locator"] as? String == "row 11")
        let answer = (flagged.first?["messages"] as? [[String: String]])?.last?["content"] ?? ""
        #expect(answer.contains("\u{FFFD}"))
    }

    @Test func legalJSONLWithMapAndReingest() throws {
        let db = try freshStore()
        let ingest = try TestSupport.run(["ingest", "--db", db, legal, "--map", "user=query,assistant=response,tag.laws=laws"])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let rejects = try #require(try TestSupport.run(["rejects", "--db", db, "--json"]).json() as? [[String: Any]])
        #expect(rejects.map { $0["reason"] as? String } == ["empty_answer", "invalid_json"])
        #expect(rejects.map { $0["line"] as? Int } == [12, 13])
        #expect(rejects.map { $0["byte_offset"] as? Int } == [4966, 5038])
        let records = try #require(try TestSupport.run(["records", "--db", db, "--json"]).json() as? [[String: Any]])
        #expect(records.count == 11)
        #expect(records.map { $0["byte_offset"] as? Int }.prefix(3) == [0, 540, 1020])
        #expect((records[0]["tags"] as? [String: String])?["laws"] == "《中华人民共和国劳动合同法》第三十条; 《中华人民共和国劳动合同法》第三十八条")

        // Same bytes again: nothing happens; --force adds a second source.
        let again = try TestSupport.run(["ingest", "--db", db, legal, "--map", "user=query,assistant=response"])
        #expect(again.status == 0)
        #expect(again.stdout.contains("already ingested as source 1"))
        #expect((try TestSupport.run(["status", "--db", db, "--json"]).json() as? [String: Any])?["records"] as? Int == 11)
        let forced = try TestSupport.run(["ingest", "--db", db, legal, "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect((try TestSupport.run(["status", "--db", db, "--json"]).json() as? [String: Any])?["sources"] as? Int == 2)
    }

    @Test func showAndLog() throws {
        let db = try freshStore()
        _ = try TestSupport.run(["ingest", "--db", db, medical, "--tag", "hospital=示例医院"])
        let show = try TestSupport.run(["show", "--db", db, "1"])
        #expect(show.status == 0)
        #expect(show.stdout.contains("row 1, line 2, byte offset 29"))
        #expect(show.stdout.contains("hospital=示例医院"))
        let json = try #require(try TestSupport.run(["show", "--db", db, "1", "--json"]).json() as? [String: Any])
        #expect((json["original"] as? [String: String])?["title"] == "高血压患者能吃党参吗？")
        #expect((json["source"] as? [String: Any])?["sha256"] as? String == "fb10aace00aa196fd852218bc7117dd99b18bf27282250aef3c7aa5686ec3467")
        let missing = try TestSupport.run(["show", "--db", db, "999"])
        #expect(missing.status == 5)
        #expect(missing.stderr.contains("record 999 does not exist"))
        let log = try #require(try TestSupport.run(["log", "--db", db, "--json"]).json() as? [[String: Any]])
        #expect(log.map { $0["command"] as? String } == ["init", "ingest"])
    }

    @Test func tagsFromDirectories() throws {
        let db = try freshStore()
        let dir = try TestSupport.temporaryDirectory()
        try TestSupport.write("question,answer\n胸闷怎么办,建议做心电图。\n", to: "IM_心内科/a.csv", in: dir)
        try TestSupport.write("question,answer\n骨折多久能好,一般需要六到八周。\n", to: "SUR_骨科/deep/b.csv", in: dir)
        try TestSupport.write("ignored", to: "notes.md", in: dir)
        let ingest = try TestSupport.run(["ingest", "--db", db, dir.path, "--tags-from-dirs"])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let records = try #require(try TestSupport.run(["records", "--db", db, "--json"]).json() as? [[String: Any]])
        #expect(records.compactMap { ($0["tags"] as? [String: String])?["department"] } == ["心内科", "deep"])
        let filtered = try #require(try TestSupport.run(["records", "--db", db, "--json", "--tag", "department=心内科"]).json() as? [[String: Any]])
        #expect(filtered.count == 1)
    }
}
