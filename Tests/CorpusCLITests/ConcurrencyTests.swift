import CorpusDB
import Foundation
import GRDB
import TestSupport
import Testing

/// Two commands writing one store at once: they take turns (SQLite's write lock, waited for up to
/// `CORPUS_BUSY_TIMEOUT` seconds) or one fails with a clear message, the store is never corrupted,
/// and readers see committed states only (docs/RELIABILITY.md, "Concurrency").
@Suite("concurrent commands on one store", .serialized)
struct ConcurrencyTests {
    /// A `corpus` process started in the background, its output going to files.
    final class Background {
        let process = Process()
        let out: URL, err: URL

        init(_ arguments: [String], environment: [String: String] = [:]) throws {
            let dir = try TestSupport.temporaryDirectory("background")
            out = dir.appendingPathComponent("stdout")
            err = dir.appendingPathComponent("stderr")
            FileManager.default.createFile(atPath: out.path, contents: nil)
            FileManager.default.createFile(atPath: err.path, contents: nil)
            process.executableURL = TestSupport.corpusBinary
            process.arguments = arguments
            var env = ProcessInfo.processInfo.environment
            env.removeValue(forKey: "CORPUS_DB")
            for (k, v) in environment { env[k] = v }
            process.environment = env
            process.standardOutput = try FileHandle(forWritingTo: out)
            process.standardError = try FileHandle(forWritingTo: err)
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }

        /// Waits for the end: exit status, stdout, stderr.
        func wait() throws -> CommandResult {
            process.waitUntilExit()
            return CommandResult(status: process.terminationStatus, stdout: try String(contentsOf: out, encoding: .utf8),
                                 stderr: try String(contentsOf: err, encoding: .utf8))
        }
    }

    /// `sqlite3 DB` holding the store's write lock (BEGIN IMMEDIATE) until `release()`, like a
    /// corpus command in the middle of a long transaction.
    final class WriteLock {
        let process = Process()
        let input = Pipe()

        init(_ db: String) throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
            process.arguments = [db]
            process.standardInput = input
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            // A write first, as a corpus writer's open does (GRDB writes to an empty WAL when it
            // opens a pool): the WAL is not empty while a corpus command holds the lock.
            input.fileHandleForWriting.write(Data("CREATE TABLE lock_probe (x); DROP TABLE lock_probe;\nBEGIN IMMEDIATE;\n".utf8))
            // Wait until the lock is really held: a write with no wait fails while it is. On a
            // loaded machine sqlite3 can take more than 10 s to get there; going on without the
            // lock let the command under test open the store while sqlite3 took it (a CI run
            // failed so), so the wait is long and not getting the lock is an error of its own.
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline {
                let probe = try TestSupport.runProcess(URL(fileURLWithPath: "/usr/bin/sqlite3"), [db, "BEGIN IMMEDIATE; ROLLBACK;"])
                if probe.status != 0 { return }
                Thread.sleep(forTimeInterval: 0.05)
            }
            release()
            throw LockNotTaken()
        }

        struct LockNotTaken: Error, CustomStringConvertible {
            var description: String { "sqlite3 did not take the store's write lock within 120 s" }
        }

        /// Ends sqlite3 (the transaction is rolled back).
        func release() {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
        }
    }

    static func csv(rows: Int, offset: Int, in dir: URL, name: String) throws -> String {
        var text = "question,answer\n"
        for i in offset..<(offset + rows) {
            text += "\"Question \(i): may I take medicine \(i % 31) with tea?\",\"Answer \(i): usually yes, two hours apart; medicine \(i % 31) binds iron.\"\n"
        }
        return try TestSupport.write(text, to: name, in: dir)
    }

    static func integrity(_ db: String) throws -> [String] {
        try CorpusStore(path: db).integrityProblems()
    }

    @Test func twoIngestsAtOnce() throws {
        let dir = try TestSupport.temporaryDirectory()
        let db = dir.appendingPathComponent("corpus.db").path
        #expect(try TestSupport.run(["init", "--db", db]).status == 0)
        let a = try Self.csv(rows: 40_000, offset: 0, in: dir, name: "a.csv")
        let b = try Self.csv(rows: 40_000, offset: 40_000, in: dir, name: "b.csv")
        let first = try Background(["ingest", a, "--db", db, "--json"])
        let second = try Background(["ingest", b, "--db", db, "--json"])
        let r1 = try first.wait(), r2 = try second.wait()
        #expect(r1.status == 0, "\(r1.stderr)")
        #expect(r2.status == 0, "\(r2.stderr)")
        let sources = try #require(try TestSupport.run(["sources", "--db", db, "--json"]).json() as? [[String: Any]])
        #expect(sources.count == 2)
        #expect(sources.allSatisfy { $0["records"] as? Int == 40_000 && $0["rows"] as? Int == 40_000 }, "\(sources)")
        #expect(try Self.integrity(db).isEmpty)
    }

    @Test func ingestAndCheckAtOnce() throws {
        let dir = try TestSupport.temporaryDirectory()
        let db = dir.appendingPathComponent("corpus.db").path
        #expect(try TestSupport.run(["init", "--db", db]).status == 0)
        #expect(try TestSupport.run(["ingest", try Self.csv(rows: 20_000, offset: 0, in: dir, name: "a.csv"), "--db", db]).status == 0)
        let b = try Self.csv(rows: 40_000, offset: 20_000, in: dir, name: "b.csv")
        let ingest = try Background(["ingest", b, "--db", db])
        let check = try Background(["check", "--db", db, "--json"])
        let ri = try ingest.wait(), rc = try check.wait()
        #expect(ri.status == 0, "\(ri.stderr)")
        #expect(rc.status == 0, "\(rc.stderr)")
        // The check judged the records it read (20,000, or all 60,000 if the ingest committed
        // first), every check of its configuration the same number of them.
        let judged = (try rc.json() as? [String: Any])?["records"] as? Int
        #expect(judged == 20_000 || judged == 60_000, "\(rc.stdout)")
        let store = try CorpusStore(path: db)
        let hash = (try rc.json() as? [String: Any])?["config_hash"] as? String ?? ""
        let perCheck = try store.checkSummary(configHash: hash).map(\.checked)
        #expect(Set(perCheck) == [judged ?? -1], "\(perCheck)")
        #expect(try store.integrityProblems().isEmpty)
    }

    @Test func aWriterThatWaitsTooLongFailsClearlyAndReadersGoOn() throws {
        let (db, _) = try TestSupport.exampleStore()
        let dir = try TestSupport.temporaryDirectory()
        let input = try Self.csv(rows: 100, offset: 0, in: dir, name: "more.csv")
        let lock = try WriteLock(db)
        defer { lock.release() }

        // Readers do not wait for the writer (WAL): they see the last committed state.
        let started = Date()
        let status = try TestSupport.run(["status", "--db", db, "--json"])
        #expect(status.status == 0, "\(status.stderr)")
        #expect((try status.json() as? [String: Any])?["records"] as? Int == 26)
        #expect(Date().timeIntervalSince(started) < 5)

        let busy = try TestSupport.run(["ingest", input, "--db", db], environment: ["CORPUS_BUSY_TIMEOUT": "1"])
        #expect(busy.status == 4, "\(busy.stderr)")
        #expect(busy.stderr.contains("the store is busy: another corpus command"), "\(busy.stderr)")
        #expect(busy.stderr.contains("run it again when the other command has finished"))
        let forget = try TestSupport.run(["forget", "1", "--reason", "test", "--db", db], environment: ["CORPUS_BUSY_TIMEOUT": "1"])
        #expect(forget.status == 4, "\(forget.stderr)")
        #expect(forget.stderr.contains("the store is busy"))

        lock.release()
        let again = try TestSupport.run(["ingest", input, "--db", db])
        #expect(again.status == 0, "\(again.stderr)")
        #expect((try TestSupport.run(["status", "--db", db, "--json"]).json() as? [String: Any])?["records"] as? Int == 126)
        #expect(try Self.integrity(db).isEmpty)
    }

    @Test func readersSeeWholeFilesOnly() throws {
        let dir = try TestSupport.temporaryDirectory()
        let db = dir.appendingPathComponent("corpus.db").path
        #expect(try TestSupport.run(["init", "--db", db]).status == 0)
        let files = try (0..<3).map { try Self.csv(rows: 30_000, offset: $0 * 30_000, in: dir, name: "part\($0).csv") }
        let ingest = try Background(["ingest"] + files + ["--db", db])
        var seen: Set<Int> = []
        while ingest.process.isRunning {
            let result = try TestSupport.run(["status", "--db", db, "--json"])
            guard result.status == 0, let status = try result.json() as? [String: Any] else {
                Issue.record("status failed during the ingest: \(result.stderr)")
                break
            }
            let sources = status["sources"] as? Int ?? -1, records = status["records"] as? Int ?? -1
            #expect(records == sources * 30_000, "a reader saw \(records) records in \(sources) sources: part of a file")
            seen.insert(sources)
        }
        #expect(try ingest.wait().status == 0)
        #expect(seen.isSubset(of: [0, 1, 2, 3]))
        #expect(try Self.integrity(db).isEmpty)
    }

    @Test(.needsTestModel) func trainAndForgetAtOnce() throws {
        let model = try TestInputs.model()
        let (db, dir) = try TrainTests.snapshotStore()
        let out = dir.appendingPathComponent("adapter").path
        let train = try Background(["train", "demo", "--model", model, "--db", db, "--max-steps", "3", "--batch-tokens", "256",
                                    "--max-len", "128", "--eval-every", "1", "--seed", "3", "--out", out, "--json"])
        // Withdraw a member of the snapshot while the run trains on it.
        Thread.sleep(forTimeInterval: 1)
        let forget = try TestSupport.run(["forget", "3", "--reason", "withdrawn during training", "--db", db, "--json"])
        #expect(forget.status == 0, "\(forget.stderr)")
        let result = try train.wait()
        #expect(result.status == 0, "\(result.stderr)")
        let run = try #require(try result.json() as? [String: Any])
        #expect(run["status"] as? String == "finished")
        // The withdrawal names the snapshot; the adapter is on record and unchanged.
        #expect(try TestSupport.run(["lineage", "adapter", out, "--verify", "--db", db]).status == 0)
        let withdrawn = try #require(try forget.json() as? [String: Any])
        #expect((withdrawn["withdrawn"] as? [Int])?.contains(3) == true)
        #expect(try Self.integrity(db).isEmpty)
    }
}
