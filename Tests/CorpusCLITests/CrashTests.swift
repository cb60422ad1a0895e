import CorpusDB
import Foundation
import TestSupport
import Testing

/// `corpus train` killed with SIGKILL (no chance to write anything): the run shows as `killed`,
/// not `running`; `--resume` from its last checkpoint ends with the adapter an uninterrupted run
/// writes; a run another live process is training cannot be resumed (docs/RELIABILITY.md, "Crash
/// consistency"). scripts/crash-harness.py kills every writing command at random moments.
@Suite("SIGKILL and resume", .serialized)
struct CrashTests {
    static func trainOptions(_ model: String, db: String) -> [String] {
        ["demo", "--model", model, "--db", db, "--max-steps", "4", "--batch-tokens", "256", "--max-len", "128",
         "--eval-every", "2", "--checkpoint-every", "1", "--seed", "3"]
    }

    /// Waits until `checkpoint`'s trainer_state.json says `step` or more (or `process` ended).
    static func waitForCheckpoint(_ checkpoint: String, step: Int, while process: Process) {
        let deadline = Date().addingTimeInterval(600)
        while process.isRunning && Date() < deadline {
            if let data = FileManager.default.contents(atPath: checkpoint + "/trainer_state.json"),
               let state = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
               let at = state["step"] as? Int, at >= step {
                return
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    static func statuses(_ db: String) throws -> [String] {
        let runs = try #require(try TestSupport.run(["runs", "list", "--db", db, "--json"]).json() as? [[String: Any]])
        return runs.compactMap { $0["status"] as? String }
    }

    @Test(.needsTestModel) func killedTrainResumesToTheSameAdapter() throws {
        let model = try TestInputs.model()
        let (db, dir) = try TrainTests.snapshotStore()
        let options = Self.trainOptions(model, db: db)
        let a = dir.appendingPathComponent("a").path, b = dir.appendingPathComponent("b").path

        let whole = try TestSupport.run(["train"] + options + ["--out", a])
        #expect(whole.status == 0, "\(whole.stderr)")

        // Run 2, killed after its second checkpoint.
        let killed = try ConcurrencyTests.Background(["train"] + options + ["--out", b])
        Self.waitForCheckpoint(b + "/checkpoint", step: 2, while: killed.process)
        #expect(killed.process.isRunning, "the run ended before it could be killed")
        kill(killed.process.processIdentifier, SIGKILL)
        _ = try killed.wait()
        #expect(try Self.statuses(db) == ["finished", "killed"])
        let shown = try TestSupport.run(["runs", "show", "2", "--db", db])
        #expect(shown.stdout.contains("ended without recording an outcome"), "\(shown.stdout)")
        #expect(!FileManager.default.fileExists(atPath: b + "/adapter_model.safetensors"))

        let stale = dir.appendingPathComponent("stale-checkpoint").path
        try FileManager.default.copyItem(atPath: b + "/checkpoint", toPath: stale)
        let resumed = try TestSupport.run(["train"] + options + ["--resume", b + "/checkpoint"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(try Self.statuses(db) == ["finished", "finished"])
        // The same adapter as the uninterrupted run 1, byte for byte.
        #expect(try ContentHash.sha256Hex(fileAt: a + "/adapter_model.safetensors") == ContentHash.sha256Hex(fileAt: b + "/adapter_model.safetensors"))
        #expect(try CorpusStore(path: db).integrityProblems().isEmpty)

        // A finished run is not resumed again (a checkpoint a kill left behind is stale).
        let again = try TestSupport.run(["train"] + options + ["--resume", stale])
        #expect(again.status == 3, "\(again.stderr)")
        #expect(again.stderr.contains("run 2 is finished"), "\(again.stderr)")
    }

    @Test(.needsTestModel) func aRunBeingTrainedCannotBeResumedTwice() throws {
        let model = try TestInputs.model()
        let (db, dir) = try TrainTests.snapshotStore()
        let options = Self.trainOptions(model, db: db)
        let out = dir.appendingPathComponent("c").path
        let first = try ConcurrencyTests.Background(["train"] + options + ["--out", out, "--max-steps", "12"])
        Self.waitForCheckpoint(out + "/checkpoint", step: 1, while: first.process)
        #expect(first.process.isRunning)
        #expect(try Self.statuses(db) == ["running"])
        let second = try TestSupport.run(["train"] + options + ["--max-steps", "12", "--resume", out + "/checkpoint"])
        #expect(second.status == 3, "\(second.stderr)")
        #expect(second.stderr.contains("run 1 is being trained by process \(first.process.processIdentifier)"), "\(second.stderr)")
        kill(first.process.processIdentifier, SIGKILL)
        _ = try first.wait()
        #expect(try Self.statuses(db) == ["killed"])
    }
}
