import CorpusDB
import Foundation
import TestSupport
import Testing

/// `corpus train` end to end with the real SmolLM2 on the bundled examples: the run and its
/// adapter on record, the PEFT files, determinism across processes, an exact resume, lineage,
/// forget, merge and --adapter.
@Suite("corpus train, runs, lineage adapter, merge", .serialized)
struct TrainTests {
    /// The example store with checks and a snapshot `demo` (20 train, 4 eval).
    static func snapshotStore() throws -> (db: String, dir: URL) {
        let (db, dir) = try TestSupport.exampleStore()
        #expect(try TestSupport.run(["check", "--db", db]).status == 0)
        #expect(try TestSupport.run(["snapshot", "create", "demo", "--eval-ratio", "0.2", "--db", db]).status == 0)
        return (db, dir)
    }

    /// The safetensors header of a file: tensor names (without __metadata__) and the metadata.
    static func safetensorsHeader(_ path: String) throws -> (names: [String], metadata: [String: String]) {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        let header = try #require(try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any])
        return (header.keys.filter { $0 != "__metadata__" }.sorted(), header["__metadata__"] as? [String: String] ?? [:])
    }

    /// The tensor bytes of a safetensors file (everything after the header).
    static func tensorBytes(_ path: String) throws -> Data {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        return data.subdata(in: (8 + n)..<data.count)
    }

    @Test(.needsTestModel) func trainResumeLineageForgetMerge() throws {
        let model = try TestInputs.model()
        let (db, dir) = try Self.snapshotStore()
        let options = ["demo", "--model", model, "--db", db, "--max-steps", "3", "--batch-tokens", "256", "--max-len", "128",
                       "--eval-every", "2", "--seed", "3"]
        let a = dir.appendingPathComponent("a").path, b = dir.appendingPathComponent("b").path

        let first = try TestSupport.run(["train"] + options + ["--out", a, "--json"])
        #expect(first.status == 0, "\(first.stderr)")
        let run = try #require(first.json() as? [String: Any])
        #expect(run["id"] as? Int == 1)
        #expect(run["snapshot"] as? String == "demo@1")
        #expect((run["snapshot_hash"] as? String)?.count == 64)
        #expect(run["model"] as? String == model)
        #expect(run["adapter_path"] as? String == a)
        #expect(run["steps"] as? Int == 3)
        #expect(run["status"] as? String == "finished")
        let loss = try #require(run["final_loss"] as? Double), evalLoss = try #require(run["final_eval_loss"] as? Double)
        #expect(loss > 0.5 && loss < 6)
        #expect(evalLoss > 0.5 && evalLoss < 6)
        #expect((run["tokens_per_second"] as? Double ?? 0) > 0)
        let sha = try #require(run["adapter_sha256"] as? String)
        let weights = a + "/adapter_model.safetensors"
        #expect(try ContentHash.sha256Hex(fileAt: weights) == sha)
        #expect(first.stderr.contains("eval loss before training"))

        // PEFT's files: 30 layers × 7 projections × (A, B), lineage in the metadata, nothing else.
        let header = try Self.safetensorsHeader(weights)
        #expect(header.names.count == 420)
        #expect(header.names.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"))
        #expect(header.names.contains("base_model.model.model.layers.29.mlp.down_proj.lora_B.weight"))
        #expect(header.names.allSatisfy { $0.hasPrefix("base_model.model.model.layers.") && ($0.hasSuffix(".lora_A.weight") || $0.hasSuffix(".lora_B.weight")) })
        // Only content-derived lineage: no run id, no snapshot name (docs/RELIABILITY.md).
        #expect(header.metadata["corpus.run_id"] == nil)
        #expect(header.metadata["corpus.snapshot_hash"] == run["snapshot_hash"] as? String)
        #expect(Set(header.metadata.keys) == ["format", "corpus.snapshot_hash", "corpus.model_sha256", "corpus.training_sha256", "corpus.version"])
        #expect(header.metadata["corpus.training_sha256"]?.count == 64)
        let config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: a + "/adapter_config.json"))) as? [String: Any])
        #expect(config["peft_type"] as? String == "LORA")
        #expect(config["task_type"] as? String == "CAUSAL_LM")
        #expect(config["r"] as? Int == 16)
        #expect(config["lora_alpha"] as? Int == 32)
        #expect(config["target_modules"] as? [String] == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"])

        // The same run in two sessions (stop after one step, resume): the same adapter, bit for bit.
        let stopped = try TestSupport.run(["train"] + options + ["--out", b, "--stop-after", "1"])
        #expect(stopped.status == 0, "\(stopped.stderr)")
        #expect(stopped.stderr.contains("stopped after step 1 of 3"))
        #expect(FileManager.default.fileExists(atPath: b + "/checkpoint/optimizer.safetensors"))
        let resumed = try TestSupport.run(["train"] + options + ["--resume", b + "/checkpoint", "--json"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let second = try #require(resumed.json() as? [String: Any])
        #expect(second["id"] as? Int == 2)
        // Run 2 (stopped and resumed) wrote the same file as run 1, SHA-256 and all.
        #expect(try ContentHash.sha256Hex(fileAt: b + "/adapter_model.safetensors") == sha)
        #expect(second["adapter_sha256"] as? String == sha)
        #expect(try Data(contentsOf: URL(fileURLWithPath: b + "/adapter_config.json")) == Data(contentsOf: URL(fileURLWithPath: a + "/adapter_config.json")))
        #expect(second["final_loss"] as? Double == loss)
        #expect(second["final_eval_loss"] as? Double == evalLoss)
        #expect(!FileManager.default.fileExists(atPath: b + "/checkpoint"))
        // Other options do not resume someone else's checkpoint.
        let again = try TestSupport.run(["train"] + options + ["--out", dir.appendingPathComponent("c").path, "--stop-after", "1"])
        #expect(again.status == 0)
        let refused = try TestSupport.run(["train", "demo", "--model", model, "--db", db, "--max-steps", "3", "--batch-tokens", "256",
                                           "--max-len", "128", "--seed", "4", "--resume", dir.appendingPathComponent("c/checkpoint").path])
        #expect(refused.status == 3)
        #expect(refused.stderr.contains("written under other training settings"))

        // runs list/show and the loss curve.
        let runs = try #require(try TestSupport.run(["runs", "list", "--db", db, "--json"]).json() as? [[String: Any]])
        #expect(runs.map { $0["status"] as? String } == ["finished", "finished", "interrupted"])
        let shown = try #require(try TestSupport.run(["runs", "show", "1", "--db", db, "--json"]).json() as? [String: Any])
        let curve = try #require(shown["loss_curve"] as? [[String: Any]])
        #expect(curve.map { $0["step"] as? Int } == [1, 2, 3])
        #expect(curve.map { $0["eval_loss"] != nil } == [false, true, true])

        // Lineage from the adapter to the source files, with the weights verified.
        let lineage = try TestSupport.run(["lineage", "adapter", a, "--verify", "--db", db, "--json"])
        #expect(lineage.status == 0, "\(lineage.stderr)")
        let l = try #require(lineage.json() as? [String: Any])
        #expect(l["intact"] as? Bool == true)
        let sources = try #require(l["sources"] as? [[String: Any]])
        #expect(sources.map { $0["sha256"] as? String } == ["fb10aace00aa196fd852218bc7117dd99b18bf27282250aef3c7aa5686ec3467",
                                                             "c1a2c375ad098b6498d7b635ccf40c3a2dd53c9064c98605f8397e91382a8600"])
        #expect(sources.map { $0["train"] as? Int } == [13, 7])

        // A changed weights file fails verification (exit 6).
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: b + "/adapter_model.safetensors"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([0]))
        try handle.close()
        #expect(try TestSupport.run(["lineage", "adapter", b, "--verify", "--db", db]).status == 6)

        // The adapter in use, and folded into a full model.
        let answer = try TestSupport.run(["generate", "--model", model, "--adapter", a, "--max-tokens", "8", "What is the capital of France?"])
        #expect(answer.status == 0, "\(answer.stderr)")
        #expect(!answer.stdout.isEmpty)
        let merged = dir.appendingPathComponent("merged").path
        let merge = try TestSupport.run(["merge", "--adapter", a, "--out", merged, "--db", db, "--json"])
        #expect(merge.status == 0, "\(merge.stderr)")
        #expect((try merge.json() as? [String: Any])?["merged_tensors"] as? Int == 210)
        #expect(FileManager.default.fileExists(atPath: merged + "/model.safetensors"))
        #expect(FileManager.default.fileExists(atPath: merged + "/config.json"))
        #expect(try Self.safetensorsHeader(merged + "/model.safetensors").metadata["corpus.adapter.sha256"] == sha)

        // A removal request names every adapter trained on the record.
        let forget = try #require(try TestSupport.run(["forget", "1", "--reason", "test", "--db", db, "--json"]).json() as? [String: Any])
        let adapters = try #require(forget["adapters"] as? [[String: Any]])
        #expect(adapters.map { $0["path"] as? String } == [a, b])
    }
}
