import CorpusDB
import Foundation
import TestSupport
import Testing

/// `corpus train --method grpo` end to end on the real SmolLM2 and a few questions with checkable
/// answers: seeded reruns, metrics per step, TensorBoard files, lineage, and the bad inputs the
/// issue names (a pattern that does not compile, a reward program that crashes, hangs or prints a
/// non-number, a reference an extract: pattern cannot read).
@Suite("corpus train --method grpo", .serialized)
struct GRPOTests {
    static let questionsJSONL = [
        #"{"question":"计算：12 + 30 = ？","answer":"12 + 30 = 42"}"#,
        #"{"question":"计算：25 + 17 = ？","answer":"25 + 17 = 42"}"#,
        #"{"question":"患者每次服用2片，每天3次，一天一共多少片？","answer":"2 × 3 = 6片"}"#,
        #"{"question":"布洛芬每片200毫克，一次吃2片，一次一共多少毫克？","answer":"200 × 2 = 400毫克"}"#,
        #"{"question":"计算：50 - 18 = ？","answer":"50 - 18 = 32"}"#,
        #"{"question":"计算：9 + 8 = ？","answer":"9 + 8 = 17"}"#,
    ].joined(separator: "\n") + "\n"

    static func store() throws -> (db: String, dir: URL) {
        let dir = try TestSupport.temporaryDirectory("corpus-grpo")
        let db = dir.appendingPathComponent("corpus.db").path
        let file = try TestSupport.write(questionsJSONL, to: "questions.jsonl", in: dir)
        #expect(try TestSupport.run(["init", "--db", db]).status == 0)
        #expect(try TestSupport.run(["ingest", file, "--db", db]).status == 0)
        let snapshot = try TestSupport.run(["snapshot", "create", "q", "--checks", "none", "--eval-ratio", "0.34", "--db", db])
        #expect(snapshot.status == 0, "\(snapshot.stderr)")
        return (db, dir)
    }

    static let grpo = ["--method", "grpo", "--num-generations", "3", "--prompts-per-step", "2", "--max-new-tokens", "12", "--max-steps", "2",
                       "--rank", "4", "--alpha", "8", "--eval-every", "1", "--seed", "7"]

    @Test(.needsTestModel) func seededRunsAreIdenticalWithMetricsLogsAndLineage() throws {
        let model = try TestInputs.model()
        let (db, dir) = try Self.store()
        let rewards = ["--reward", #"extract:=\s*(\d+)"#, "--reward", #"regex:=\s*\d+"#, "--reward-weights", "1,0.5"]
        let a = dir.appendingPathComponent("a").path, b = dir.appendingPathComponent("b").path
        let first = try TestSupport.run(["train", "q", "--model", model, "--db", db, "--out", a, "--json"] + Self.grpo + rewards)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stderr.contains("eval reward before training: "))
        let second = try TestSupport.run(["train", "q", "--model", model, "--db", db, "--out", b, "--json"] + Self.grpo + rewards)
        #expect(second.status == 0, "\(second.stderr)")
        let runA = try #require(try first.json() as? [String: Any]), runB = try #require(try second.json() as? [String: Any])
        // Sampling is seeded by the run's seed, the step, the prompt and the answer: the same adapter, byte for byte.
        #expect(try ContentHash.sha256Hex(fileAt: a + "/adapter_model.safetensors") == ContentHash.sha256Hex(fileAt: b + "/adapter_model.safetensors"))
        #expect(runA["adapter_sha256"] as? String == runB["adapter_sha256"] as? String)
        #expect(runA["status"] as? String == "finished" && runA["steps"] as? Int == 2)

        let shown = try #require(try TestSupport.run(["runs", "show", "\(runA["id"] as? Int ?? 0)", "--db", db, "--json"]).json() as? [String: Any])
        let curve = try #require(shown["loss_curve"] as? [[String: Any]])
        let metrics = try #require(curve.first?["metrics"] as? [String: Double])
        for key in ["reward", "reward_std", "kl", "completions/mean_length", "clip_ratio/region_mean", "rewards/extract/mean", "rewards/extract/std",
                    "rewards/regex/mean", "rewards/regex/std", "eval/reward", "eval/rewards/extract/mean"] {
            #expect(metrics[key] != nil, "\(key) missing from \(metrics.keys.sorted())")
        }
        // Step 1 starts from a fresh adapter, the reference itself: KL 0 exactly.
        #expect(metrics["kl"] == 0)
        let reward = try #require(metrics["reward"])
        #expect(abs(reward - (try #require(metrics["rewards/extract/mean"])) - 0.5 * (try #require(metrics["rewards/regex/mean"]))) < 1e-12)
        #expect((try #require(metrics["completions/mean_length"])) <= 12)

        // TensorBoard files beside the adapter, read back by TensorBoard when a Python with it is there.
        let logs = URL(fileURLWithPath: a).appendingPathComponent("tensorboard")
        let files = try FileManager.default.contentsOfDirectory(atPath: logs.path)
        #expect(files.count == 1 && files[0].hasPrefix("events.out.tfevents."))
        if let python = TensorBoardReader.python {
            let read = try TensorBoardReader.read(directory: logs, python: python)
            let losses = curve.compactMap { $0["loss"] as? Double }
            #expect(read.scalars["train/loss"]?.map { $0[1] } == losses.map { Int64(Float($0).bitPattern) })
            #expect(read.scalars["train/reward"]?.count == 2 && read.scalars["eval/reward"]?.map { $0[0] } == [0, 1, 2])
        }

        let lineage = try TestSupport.run(["lineage", "adapter", a, "--db", db])
        #expect(lineage.stdout.contains(#"method grpo (beta 0.04), rewards 1.0×extract:=\s*(\d+) + 0.5×regex:=\s*\d+, 3 answers per prompt at temperature 1.0, reference: the base model (adapter switched off)"#),
                "\(lineage.stdout)")
    }

    @Test(.needsTestModel) func badRewardsAreClearErrors() throws {
        let model = try TestInputs.model()
        let (db, dir) = try Self.store()
        func train(_ extra: [String]) throws -> CommandResult {
            try TestSupport.run(["train", "q", "--model", model, "--db", db, "--out", dir.appendingPathComponent(UUID().uuidString).path] + Self.grpo + extra)
        }
        let pattern = try train(["--reward", "regex:(unclosed"])
        #expect(pattern.status == 64 && pattern.stderr.contains("does not compile"), "\(pattern.stderr)")
        let unreadable = try train(["--reward", #"extract:答案：(\d+)"#])
        #expect(unreadable.status == 3 && unreadable.stderr.contains("the pattern finds nothing in the reference answer of record"), "\(unreadable.stderr)")

        let crash = dir.appendingPathComponent("crash.sh").path
        try "#!/bin/sh\necho 'scorer broke' >&2\nexit 2\n".write(toFile: crash, atomically: true, encoding: .utf8)
        let crashed = try train(["--reward", "cmd:sh \(crash)"])
        #expect(crashed.status != 0 && crashed.stderr.contains("reward program 'sh \(crash)': exited with status 2; its standard error ends: scorer broke"), "\(crashed.stderr)")
        let words = try train(["--reward", "cmd:sed 's/.*/good/'"])
        #expect(words.status != 0 && words.stderr.contains("line 1 of its output is 'good', not a number"), "\(words.stderr)")
        let hang = try train(["--reward", "cmd:sleep 30", "--reward-timeout", "1"])
        #expect(hang.status != 0 && hang.stderr.contains("did not finish within 1 s"), "\(hang.stderr)")
        // Each of those runs is on record as failed, with no adapter.
        let runs = try #require(try TestSupport.run(["runs", "list", "--db", db, "--json"]).json() as? [[String: Any]])
        #expect(runs.count == 3 && runs.allSatisfy { $0["status"] as? String == "failed" && $0["adapter_path"] is NSNull })
    }
}
