import CorpusDB
import Foundation
import GRDB
import TestSupport
import Testing

/// The disk filling up under `corpus ingest`, `check`, `snapshot export` and the adapter writing of
/// `train`, on a small tmpfs (`SmallDisk`): a clear error, the store intact, nothing half-written
/// in place and nothing left behind, and the same command succeeding once space is freed
/// (docs/RELIABILITY.md, "Disk full").
@Suite("disk full: ingest, check, export, adapter", .serialized)
struct DiskFullTests {
    /// A CSV of `rows` distinct question-answer rows (about 110 bytes each), outside any small disk.
    static func csv(rows: Int, name: String = "qa.csv") throws -> String {
        let dir = try TestSupport.temporaryDirectory("disk-full-input")
        var text = "question,answer\n"
        text.reserveCapacity(rows * 120)
        for i in 0..<rows {
            text += "\"How should dose \(i) of medicine \(i % 97) be taken with food?\",\"Take dose \(i) after a meal with water; ask your doctor about \(i % 89) interactions.\"\n"
        }
        return try TestSupport.write(text, to: name, in: dir)
    }

    static func status(_ db: String) throws -> [String: Any] {
        let result = try TestSupport.run(["status", "--db", db, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        return try #require(try result.json() as? [String: Any])
    }

    /// Hidden temporaries (`.NAME.UUID.tmp`) anywhere under `url`.
    static func temporaries(under url: URL) -> [String] {
        let names = FileManager.default.enumerator(atPath: url.path)?.compactMap { $0 as? String } ?? []
        return names.filter { ($0 as NSString).lastPathComponent.hasPrefix(".") && $0.hasSuffix(".tmp") }
    }

    @Test(.needsSmallDisk) func ingestOnAFullDisk() throws {
        let input = try Self.csv(rows: 20_000)
        let disk = try SmallDisk(kilobytes: 32 * 1024)
        defer { disk.unmount() }
        let db = disk.url.appendingPathComponent("corpus.db").path
        #expect(try TestSupport.run(["init", "--db", db]).status == 0)
        try disk.fill(leaving: 512)

        let full = try TestSupport.run(["ingest", input, "--db", db])
        #expect(full.status == 4, "\(full.stderr)")
        #expect(full.stderr.contains("the disk holding the store is full"), "\(full.stderr)")
        #expect(full.stderr.contains("free some space and run the command again"))
        #expect(!full.stderr.contains("Fatal error"))
        let before = try Self.status(db)
        #expect(before["sources"] as? Int == 0 && before["records"] as? Int == 0, "nothing of the file was kept: \(before)")
        #expect(try CorpusStore(path: db).integrityProblems().isEmpty)

        try disk.free()
        let again = try TestSupport.run(["ingest", input, "--db", db])
        #expect(again.status == 0, "\(again.stderr)")
        let after = try Self.status(db)
        #expect(after["sources"] as? Int == 1 && after["records"] as? Int == 20_000, "\(after)")
        #expect(try CorpusStore(path: db).integrityProblems().isEmpty)
    }

    @Test(.needsSmallDisk) func checkOnAFullDisk() throws {
        let input = try Self.csv(rows: 5_000)
        let disk = try SmallDisk(kilobytes: 48 * 1024)
        defer { disk.unmount() }
        let db = disk.url.appendingPathComponent("corpus.db").path
        #expect(try TestSupport.run(["init", "--db", db]).status == 0)
        #expect(try TestSupport.run(["ingest", input, "--db", db]).status == 0)
        try disk.fill(leaving: 256)

        let full = try TestSupport.run(["check", "--db", db])
        #expect(full.status == 4, "\(full.stderr)")
        #expect(full.stderr.contains("the disk holding the store is full"), "\(full.stderr)")
        let store = try CorpusStore(path: db)
        #expect(try store.integrityProblems().isEmpty)
        let verdicts = try store.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM verdicts") ?? -1 }
        #expect(verdicts == 0, "no verdict of the failed check was kept")
        let left = try FileManager.default.contentsOfDirectory(atPath: disk.url.path).filter { $0.contains(".check-") }
        #expect(left.isEmpty, "the check's temporary folder is removed: \(left)")

        try disk.free()
        let again = try TestSupport.run(["check", "--db", db, "--json"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect((try again.json() as? [String: Any])?["records"] as? Int == 5_000)
        #expect(try store.integrityProblems().isEmpty)
    }

    @Test(.needsSmallDisk) func exportToAFullDisk() throws {
        let (db, _) = try TrainTests.snapshotStore()
        let disk = try SmallDisk(kilobytes: 1024)
        defer { disk.unmount() }
        let out = disk.url.appendingPathComponent("export")
        try disk.fill(leaving: 4)

        let full = try TestSupport.run(["snapshot", "export", "demo", "--format", "sharegpt", "--out", out.path, "--db", db])
        #expect(full.status == 3, "\(full.stderr)")
        #expect(full.stderr.contains("No space left on device") || full.stderr.contains("space"), "\(full.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.path), "no half-written export in place")
        #expect(Self.temporaries(under: disk.url).isEmpty, "nothing left behind: \(Self.temporaries(under: disk.url))")

        try disk.free()
        let again = try TestSupport.run(["snapshot", "export", "demo", "--format", "sharegpt", "--out", out.path, "--db", db])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: out.path)) == ["train.jsonl", "eval.jsonl", "manifest.json", "dataset_info.json"])
    }

    @Test(.needsSmallDisk, .needsTestModel) func adapterOnAFullDisk() throws {
        let model = try TestInputs.model()
        let (db, _) = try TrainTests.snapshotStore()
        // The adapter is about 19.5 MB (30 layers × 7 projections, r = 16, fp32): 4 MiB holds the
        // TensorBoard log but not the adapter.
        let disk = try SmallDisk(kilobytes: 4 * 1024)
        defer { disk.unmount() }
        let out = disk.url.appendingPathComponent("adapter")
        let options = ["demo", "--model", model, "--db", db, "--max-steps", "2", "--batch-tokens", "256", "--max-len", "128",
                       "--eval-every", "0", "--seed", "3", "--out", out.path]

        let full = try TestSupport.run(["train"] + options)
        #expect(full.status == 3, "\(full.stderr)")
        #expect(full.stderr.contains("adapter_model.safetensors") && full.stderr.contains("space"), "\(full.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("adapter_model.safetensors").path))
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("adapter_config.json").path))
        #expect(Self.temporaries(under: disk.url).isEmpty, "nothing left behind: \(Self.temporaries(under: disk.url))")
        let runs = try #require(try TestSupport.run(["runs", "list", "--db", db, "--json"]).json() as? [[String: Any]])
        #expect(runs.map { $0["status"] as? String } == ["failed"])

        try disk.resize(kilobytes: 64 * 1024)
        let again = try TestSupport.run(["train"] + options + ["--json"])
        #expect(again.status == 0, "\(again.stderr)")
        let run = try #require(try again.json() as? [String: Any])
        #expect(run["status"] as? String == "finished")
        let verify = try TestSupport.run(["lineage", "adapter", out.path, "--verify", "--db", db])
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(try CorpusStore(path: db).integrityProblems().isEmpty)
    }
}
